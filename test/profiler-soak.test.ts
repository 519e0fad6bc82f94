/**
 * A soak of the profiler as `sparsevila profile` runs it (a child process, loopback only): 20 producers
 * streaming runs and 20 pages watching, one of which never reads, for a bounded time
 * (SPARSEVILA_SOAK_S seconds, default 8, at most 20). The properties: the server never exits, its peak RSS
 * (VmHWM) stays under a bound, it answers /api/runs throughout, and every run's events are on disk intact —
 * each data-dir file holds exactly the events its producer sent, in order. Drops to pages are allowed (the
 * stuck page's, once its socket is full) and reported.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { WebSocketSink, readTrace, serializeEvent, type TraceEvent } from '../dist/src/trace/index.js';
import { tempDir } from './helpers/temp.js';
import { sleep, syntheticRun, until } from './helpers/profiler.js';

const SECONDS = Math.min(20, Number(process.env.SPARSEVILA_SOAK_S ?? 8));
const PRODUCERS = 20;
const PAGES = 20;
/** Peak server RSS allowed: the server's memory caps, not the amount streamed, must bound it. */
const MAX_RSS_MB = 400;
const BIN = path.join(import.meta.dirname, '..', 'bin', 'sparsevila.js');

/** Peak and current resident set of a process, in MiB (Linux /proc). */
function rssMb(pid: number): { peak: number; now: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** One producer's next few events: a run's start, then turns of salience, decode steps and tokens. */
function* producerEvents(run: string): Generator<TraceEvent> {
  const [start, , , end] = syntheticRun(run);
  yield start!;
  let t = 1;
  for (let turn = 0; ; turn++) {
    yield { run, t: t++, type: 'turn.start', turn, text: `question ${turn}`, images: 1 } as TraceEvent;
    // Float32 values: the wire packs scores as Float32, and the disk must hold exactly what was sent.
    const scores = Array.from({ length: 1024 }, (_, i) => Math.fround(((i * 7 + turn) % 101) / 101));
    yield { run, t: t++, type: 'salience', turn, image: 0, source: 'cls', grid: { rows: 32, cols: 32 }, leading: 0, scores } as TraceEvent;
    for (let step = 0; step < 16; step++) {
      yield { run, t: t++, type: 'decode.step', turn, step, ms: 1 + step / 8, attended: 300 + step, visualAttended: 256 } as TraceEvent;
      yield { run, t: t++, type: 'token', turn, step, id: step, text: `w${step} ` } as TraceEvent;
    }
    yield { ...end!, t: t++, turn } as TraceEvent;
  }
}

describe('profiler soak', () => {
  it(`${PRODUCERS} producers and ${PAGES} pages (one never reading) for ${SECONDS} s: no crash, bounded RSS, every run intact on disk`, async () => {
    const dataDir = tempDir('soak-data');
    const token = 'soak-test-token-0123456789';
    const server = spawn('node', [BIN, 'profile', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--token', token], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    server.stdout.on('data', (d) => (stdout += String(d)));
    server.stderr.on('data', (d) => (stderr += String(d)));
    const sockets: WebSocket[] = [];
    try {
      await until('the server', () => /127\.0\.0\.1:\d+\/\?token=/.test(stdout) || server.exitCode !== null, 15_000);
      expect(server.exitCode, stderr).toBeNull();
      const port = Number(/127\.0\.0\.1:(\d+)\//.exec(stdout)![1]);
      const base = `127.0.0.1:${port}`;

      // Pages: 19 read everything; the last never reads (its socket paused), so the server must drop for it.
      const received = new Array<number>(PAGES).fill(0);
      let pageErrors = 0;
      for (let i = 0; i < PAGES; i++) {
        const ws = new WebSocket(`ws://${base}/ws/live?token=${token}`);
        ws.on('message', () => received[i]!++);
        ws.on('error', () => pageErrors++);
        await new Promise((resolve) => ws.once('open', resolve));
        if (i === PAGES - 1) (ws as unknown as { _socket: { pause(): void } })._socket.pause();
        sockets.push(ws);
      }

      // Producers: each streams its own run at a steady rate until the time is up.
      const sent = new Map<string, TraceEvent[]>();
      const sinks: WebSocketSink[] = [];
      let peak = 0;
      let listed = 0;
      const end = Date.now() + SECONDS * 1000;
      // Meanwhile: the server's peak RSS, and /api/runs answering, every 250 ms.
      const watch = (async () => {
        while (Date.now() < end) {
          peak = Math.max(peak, rssMb(server.pid!).peak);
          const res = await fetch(`http://${base}/api/runs?token=${token}`);
          if (res.status !== 200) throw new Error(`/api/runs answered ${res.status}`);
          await res.arrayBuffer();
          listed++;
          await sleep(250);
        }
      })();
      await Promise.all(
        Array.from({ length: PRODUCERS }, async (_, p) => {
          const run = `soak-${p}`;
          const sink = new WebSocketSink(`ws://${base}/ws/ingest?token=${token}`, { batchMs: 20 });
          sinks.push(sink);
          const events = producerEvents(run);
          const list: TraceEvent[] = [];
          sent.set(run, list);
          while (Date.now() < end) {
            for (let i = 0; i < 10; i++) {
              const e = events.next().value as TraceEvent;
              list.push(e);
              sink.write(e);
            }
            await sleep(20);
          }
          await sink.close();
          expect(sink.dropped).toBe(0);
        }),
      );
      await watch;
      expect(server.exitCode, stderr).toBeNull();
      const rss = rssMb(server.pid!);
      peak = Math.max(peak, rss.peak);

      // Every run's file holds exactly what its producer sent, in order.
      const health = await (await fetch(`http://${base}/api/health?token=${token}`)).json();
      let total = 0;
      for (const [run, list] of sent) {
        const file = path.join(dataDir, `${run}.jsonl`);
        await until(`${run} on disk`, () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').length - 1 === list.length, 20_000);
        const back = await readTrace(file);
        expect(back.map((e) => serializeEvent(e))).toEqual(list.map((e) => serializeEvent(e)));
        total += list.length;
      }
      console.log(
        `soak: ${SECONDS} s, ${PRODUCERS} producers, ${PAGES} pages; ${total} events sent, all on disk intact; server peak RSS ${peak.toFixed(0)} MiB ` +
          `(now ${rss.now.toFixed(0)}); dropped live messages ${health.droppedLiveMessages} (stuck page); /api/runs answered ${listed}x; ` +
          `messages per reading page ${Math.min(...received.slice(0, -1))}–${Math.max(...received.slice(0, -1))}`,
      );
      expect(pageErrors).toBe(0);
      expect(listed).toBeGreaterThan(0);
      expect(peak).toBeLessThan(MAX_RSS_MB);
      expect(health.rejectedBatches).toBe(0);
    } finally {
      for (const ws of sockets) ws.terminate();
      server.kill('SIGTERM');
      await new Promise((resolve) => (server.exitCode === null ? server.once('exit', resolve) : resolve(null)));
    }
    expect(server.exitCode ?? 0, stderr).toBe(0);
  }, 60_000);
});
