/**
 * Fuzzing the profiler's edges with a seeded generator (same seed, same cases): random and mutated trace
 * events go to the readers (wire decoder, JSON-lines reader) and to a running server (ingest frames,
 * uploads). The property: nothing kills the process, every refusal is a typed InputError with a code and a
 * subject (or a typed error reply / 4xx from the server), whatever is accepted can be stored, summarised,
 * re-encoded and replayed, and afterwards the server still answers /api/runs and restarts on its data dir.
 */
import fs from 'node:fs';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../dist/profiler-ui/server/run-store.js';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import { SparseVilaError } from '../dist/src/errors.js';
import { parseTrace, serializeEvent, type TraceEvent } from '../dist/src/trace/index.js';
import { decodeBatch, encodeBatch, unpackBatch } from '../dist/src/trace/wire.js';
import { tempDir } from './helpers/temp.js';
import { deepJson, openIngest, runsStatus, syntheticRun, until } from './helpers/profiler.js';
import { seededRandom } from '../dist/src/seeded-random.js';

const SEED = Number(process.env.SPARSEVILA_FUZZ_SEED ?? 22);
const READER_CASES = 4000;
const FRAMES = 600;
const UPLOADS = 120;

class Gen {
  constructor(readonly rand: () => number) {}
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  /** A value of any JSON kind, sometimes hostile (huge, deep, odd numbers, odd text). */
  value(depth = 0): unknown {
    switch (this.int(depth > 2 ? 6 : 9)) {
      case 0:
        return this.pick([0, -1, 1.5, 1e308, -0, 2 ** 31, Number.MAX_SAFE_INTEGER, 3]);
      case 1:
        return this.pick(['', 'x', '\u0000', '\ud800', 'é🙂', '"}', '</script>', 'a'.repeat(this.int(5000))]);
      case 2:
        return null;
      case 3:
        return this.rand() < 0.5;
      case 4:
        return undefined;
      case 5:
        return this.int(100);
      case 6:
        return Array.from({ length: this.int(5) }, () => this.value(depth + 1));
      case 7:
        return Object.fromEntries(
          Array.from({ length: this.int(5) }, (_, i) => [this.pick(['a', 'run', 'type', '__proto__', 'constructor', `k${i}`]), this.value(depth + 1)]),
        );
      default:
        return this.pick([{ $f32: 'AAAA' }, { $i32: '!!!!' }, { $pairs: 'AAAAAAAAAAA=' }, { $f32: 5 }, [1, 2, 'x'], [{ image: 0, token: 1.5 }]]);
    }
  }
}

/** A valid event of a random type (the engine's shapes), for mutation. */
function validEvent(g: Gen, run: string): Record<string, unknown> {
  const base = { run, t: g.int(1000) };
  switch (g.int(11)) {
    case 0:
      return { ...(syntheticRun(run)[0] as unknown as Record<string, unknown>), label: 'dense', ...base };
    case 1:
      return { ...base, type: 'turn.start', turn: 0, text: 'what is this?', images: 1 };
    case 2:
      return { ...base, type: 'image', turn: 0, image: 0, width: 8, height: 8, jpeg: '/9j/4AAQ' };
    case 3:
      return { ...base, type: 'span', turn: 0, stage: 'prefill', start: 1, duration: 2, detail: { tokens: 5 } };
    case 4:
      return { ...base, type: 'salience', turn: 0, image: 0, source: 'cls', grid: { rows: 2, cols: 2 }, leading: 0, scores: [0.1, 0.2, 0.3, 0.4] };
    case 5:
      return { ...base, type: 'kept', turn: 0, image: 0, total: 4, kept: [0, 2] };
    case 6:
      return { ...base, type: 'retrieval', turn: 0, layer: 1, candidates: [{ image: 0, token: 0 }], scores: [0.5], retrieved: [0] };
    case 7:
      return { ...base, type: 'decode.step', turn: 0, step: 0, ms: 1.5, attended: 10, visualAttended: 4 };
    case 8:
      return { ...base, type: 'token', turn: 0, step: 0, id: 5, text: 'x' };
    case 9:
      return { ...base, type: 'turn.end', turn: 0, answer: 'x', stopReason: 'eos', metrics: { prefillMs: 3 } };
    default:
      return { ...base, type: 'fidelity', turn: 0, metrics: { agreement: 1, topk: [1, 0.5], kl: null } };
  }
}

/** One mutation of a valid event: a field dropped, replaced, nested deep, or the type changed. */
function mutate(g: Gen, e: Record<string, unknown>): unknown {
  const out: Record<string, unknown> = { ...e };
  const keys = Object.keys(out);
  switch (g.int(7)) {
    case 0:
      delete out[g.pick(keys)];
      return out;
    case 1:
      out[g.pick(keys)] = g.value();
      return out;
    case 2:
      out.type = g.pick(['token', 'image', 'run.start', 'span', 'retrieval', 'bogus', '', 5]);
      return out;
    case 3:
      out[g.pick(keys)] = JSON.parse(deepJson(10 + g.int(200)));
      return out;
    case 4:
      if (out.model && typeof out.model === 'object') out.model = { ...(out.model as object), [g.pick(['dir', 'layers', 'text'])]: g.value() };
      else out[g.pick(keys)] = [g.value(), g.value()];
      return out;
    case 5:
      return g.value();
    default:
      return e; // unchanged: the valid path is fuzzed too
  }
}

/** Wire text of a few events, sometimes with its bytes cut or flipped. */
function frameText(g: Gen, run: string): string {
  // Each event is mutated half the time, so that about a tenth of batches (1–4 events) stays valid.
  const events = Array.from({ length: 1 + g.int(4) }, () => (g.rand() < 0.5 ? mutate(g, validEvent(g, run)) : validEvent(g, run)));
  let text = JSON.stringify({ v: g.rand() < 0.95 ? 1 : g.value(), events }) ?? 'null';
  const r = g.rand();
  if (r < 0.1) text = text.slice(0, g.int(text.length));
  else if (r < 0.2) {
    const i = g.int(text.length);
    text = text.slice(0, i) + String.fromCharCode(g.int(128)) + text.slice(i + 1);
  } else if (r < 0.23)
    text = `{"v":1,"events":[{"type":"span","run":"${run}","t":1,"turn":0,"stage":"decode","start":0,"duration":1,"detail":${deepJson(3000)}}]}`;
  return text;
}

/** Whatever a reader accepted must be usable downstream: re-encoded, stored, summarised, serialised. */
function useAccepted(events: TraceEvent[], store: RunStore): void {
  decodeBatch(encodeBatch(events));
  for (const e of events) serializeEvent(e);
  store.add(events, {});
  JSON.stringify(store.summaries());
}

/** A typed error: a SparseVilaError with a code and a subject (checked without expect: thousands of cases). */
function isTypedError(err: unknown): boolean {
  return err instanceof SparseVilaError && err.code === 'OPTION_INVALID' && typeof err.subject === 'string' && err.subject.length > 0;
}

describe('fuzzing the trace readers', () => {
  it(`${READER_CASES} random and mutated events and batches: each accepted and usable, or a typed error`, () => {
    const g = new Gen(seededRandom(SEED));
    const store = new RunStore({ maxRuns: 5 });
    let accepted = 0;
    let refused = 0;
    const untyped: unknown[] = [];
    for (let i = 0; i < READER_CASES; i++) {
      const run = `fuzz-${i % 7}`;
      const text = frameText(g, run);
      const reader = i % 2 === 0 ? () => decodeBatch(text) : () => parseTrace(jsonLines(text), `case-${i}.jsonl`);
      let events: TraceEvent[];
      try {
        events = reader();
      } catch (err) {
        if (!isTypedError(err)) untyped.push(err);
        refused++;
        continue;
      }
      useAccepted(events, store);
      accepted++;
    }
    console.log(`reader fuzz (seed ${SEED}): ${READER_CASES} cases, ${accepted} accepted, ${refused} refused with typed errors`);
    expect(untyped).toEqual([]);
    expect(accepted).toBeGreaterThan(READER_CASES / 20);
    expect(refused).toBeGreaterThan(READER_CASES / 2);
  });
});

/** The events of wire text as JSON lines (or the text itself when it is not a batch). */
function jsonLines(text: string): string {
  try {
    const batch = JSON.parse(text) as { events?: unknown };
    if (Array.isArray(batch?.events)) return batch.events.map((e) => JSON.stringify(e) ?? 'null').join('\n');
  } catch {
    // not JSON: the reader gets the raw text
  }
  return text;
}

describe('fuzzing a running server', () => {
  let server: ProfilerServer;
  const dataDir = tempDir('fuzz-data');

  beforeAll(async () => {
    server = await startProfiler({ dataDir, maxRuns: 20, maxDiskRuns: 30, log: () => undefined });
  });
  afterAll(async () => {
    await server?.close();
  });

  it(`${FRAMES} ingest frames and ${UPLOADS} uploads: typed refusals, the server answers and restarts`, async () => {
    const g = new Gen(seededRandom(SEED + 1));
    const ingest = await openIngest(server);
    const page = new WebSocket(`ws://127.0.0.1:${server.port}/ws/live?token=${server.token}`);
    const pageMessages: any[] = [];
    page.on('message', (d) => pageMessages.push(JSON.parse(String(d))));
    await new Promise((resolve) => page.once('open', resolve));

    let expectedRejections = 0;
    for (let i = 0; i < FRAMES; i++) {
      const text = frameText(g, `live-${i % 9}`);
      let ok = true;
      try {
        decodeBatch(text);
      } catch {
        ok = false;
      }
      if (!ok) expectedRejections++;
      ingest.ws.send(text);
    }
    await until('every bad frame answered', () => ingest.said.length === expectedRejections, 20_000);
    for (const reply of ingest.said) expect(JSON.parse(reply)).toMatchObject({ kind: 'error', message: expect.stringMatching(/^wire batch/) });
    expect(server.stats().rejectedBatches).toBe(expectedRejections);

    const statuses = new Map<number, number>();
    for (let i = 0; i < UPLOADS; i++) {
      const body = jsonLines(frameText(g, `up-${i % 11}`));
      const res = await fetch(`http://127.0.0.1:${server.port}/api/traces?token=${server.token}`, { method: 'POST', body });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const json = (await res.json()) as { error?: string; runs?: string[] };
      if (res.status !== 200) expect(json.error).toEqual(expect.any(String));
    }
    console.log(
      `server fuzz (seed ${SEED + 1}): ${FRAMES} frames (${expectedRejections} refused), ${UPLOADS} uploads (status: ${JSON.stringify(Object.fromEntries(statuses))})`,
    );
    expect([...statuses.keys()].every((s) => s === 200 || s === 400 || s === 409)).toBe(true);

    // Everything stored replays and decodes; the run list serialises.
    expect(await runsStatus(server)).toBe(200);
    for (const { run } of server.runs()) {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/runs/${encodeURIComponent(run)}/events?token=${server.token}`);
      expect(res.status).toBe(200);
      decodeBatch(await res.text());
      page.send(JSON.stringify({ kind: 'replay', run }));
    }
    await until('replays', () => pageMessages.filter((m) => m.kind === 'replay').length === server.runs().length, 20_000);
    for (const m of pageMessages) if (m.kind === 'events' || m.kind === 'replay') unpackBatch(m.batch);
    ingest.ws.terminate();
    page.terminate();

    // A second server on the same data dir starts, skipping nothing (only accepted events were saved).
    await until('files closed', () => server.runs().every((r) => !r.live));
    const skipped: string[] = [];
    const again = await startProfiler({ dataDir, log: (m) => skipped.push(m) });
    try {
      expect(await runsStatus(again)).toBe(200);
      expect(skipped.filter((m) => /skipping/.test(m))).toEqual([]);
      expect(fs.readdirSync(dataDir).length).toBeLessThanOrEqual(30);
    } finally {
      await again.close();
    }
  });
});
