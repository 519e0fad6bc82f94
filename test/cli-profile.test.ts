/**
 * The CLI and a live profiler, run as a user runs them (child processes of bin/sparsevila.js): `ask --profile URL`
 * streams its run to a running profiler, and refuses, naming the URL, when none answers there or the token is
 * wrong; `sparsevila demo` (npm start) keeps its runs in the profiler's data dir, so they outlive its Ctrl-C; and
 * `sparsevila profile` says how many runs it found there and how many came from --load files.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFileName } from '../dist/profiler-ui/server/run-files.js';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import { readTrace } from '../dist/src/trace/index.js';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';
import { BIN, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/engine.js';
import { until } from './helpers/profiler.js';

const TINY = path.join(REPO_ROOT, 'src', 'models', 'tiny-random-llava');
const ours = { SPARSEVILA_CACHE: tempDir('cli-profile-graphs'), SPARSEVILA_TRACES: tempDir('cli-profile-default-traces') };
const env = { ...process.env, ...ours };

const cli = (args: string[]) => runCli(args, ours);

/** A long-running command: its output so far, a wait for a line, Ctrl-C, and its exit. */
function start(args: string[]) {
  const child = spawn('node', [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | string | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return {
    output: () => ({ stdout, stderr }),
    waitFor: (re: RegExp, timeoutMs: number) => until(`${re} in the output of sparsevila ${args[0]}:\n${stdout}\n${stderr}`, () => re.test(stdout), timeoutMs),
    interrupt: async () => {
      child.kill('SIGINT');
      return exited;
    },
  };
}

const ask = (...extra: string[]) =>
  cli(['ask', '--model', TINY, '--image', path.join(TINY, 'image.png'), '--prompt', 'What is shown?', '--max-new-tokens', '4', '--threads', '1', ...extra]);

describe('sparsevila ask --profile URL', () => {
  let server: ProfilerServer;
  const dataDir = tempDir('ask-profile-runs');
  beforeAll(async () => {
    server = await startProfiler({ port: 0, dataDir, log: () => undefined });
  });
  afterAll(() => server.close());

  it('streams the run to the running profiler: it lists the run, with every event, and saves it in its data dir', async () => {
    const r = await ask('--profile', server.url);
    expect(r.code, r.stderr).toBe(0);
    const m = r.stderr.match(/\[profiler: (\d+) events of run (\S+) streamed to (\S+)\]\n/)!;
    expect(m, r.stderr).not.toBeNull();
    const [, sent, run, link] = m;
    expect(link).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}#/run/${run}`);
    await until('the run to end', () => server.runs().some((s) => s.run === run && !s.live));
    const summary = server.runs().find((s) => s.run === run)!;
    expect(summary).toMatchObject({ events: Number(sent), turns: 1, source: 'live' });
    const saved = await readTrace(path.join(dataDir, runFileName(run!)));
    expect(saved).toHaveLength(Number(sent));
    expect(saved.map((e) => e.type)).toContain('turn.end');
  });

  it('no profiler at the URL, a wrong token, or no URL at all: an error naming the URL, before the model loads', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const nobody = await ask('--profile', `http://127.0.0.1:${closed}/?token=abcdefghijklmnopqrstuvwxyz`);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toContain(`no profiler at http://127.0.0.1:${closed}/?token=…: nothing is listening there`);
    expect(nobody.stderr).not.toContain('abcdefghijklmnop');
    const wrong = await ask('--profile', `http://127.0.0.1:${server.port}/?token=${'x'.repeat(24)}`);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(`no profiler at http://127.0.0.1:${server.port}/?token=…: it refused the token (HTTP 401)`);
    const bad = await ask('--profile', 'localhost:8765');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/OPTION_INVALID.*profiler URL localhost:8765 must start with http:\/\//);
    const garbage = await ask('--profile', 'not a url');
    expect(garbage.stderr).toContain('profiler URL "not a url" is not a URL');
    // Refused up front: no model was loaded, no answer streamed.
    for (const r of [nobody, wrong, bad, garbage]) expect(r.stdout).toBe('');
  });
});

describe('sparsevila demo (npm start) and sparsevila profile', () => {
  it("keeps the demo's runs in the profiler's data dir past Ctrl-C; profile finds them there and counts --load runs apart", async () => {
    const dataDir = tempDir('demo-runs');
    const demo = start(['demo', '--threads', '1', '--port', '0', '--data-dir', dataDir]);
    await demo.waitFor(/serving the profiler until Ctrl-C/, 300_000);
    expect(demo.output().stdout).toMatch(new RegExp(`^profiler: http://127\\.0\\.0\\.1:\\d+/\\?token=\\S+ \\(runs saved in ${dataDir}\\)$`, 'm'));
    expect(await demo.interrupt(), `demo: ${demo.output().stderr}`).toBe(0);
    // One run per policy and conversation, each complete: every turn it asked ended.
    const files = fs.readdirSync(dataDir).filter((f) => f.endsWith('.jsonl'));
    // A conversation's header names one run; the long video's runs every policy it lists ("dense vs sparsevila").
    const headers = demo.output().stdout.match(/^== .*$/gm)!;
    expect(headers.some((h) => h.includes('long video'))).toBe(true);
    expect(files).toHaveLength(headers.reduce((n, h) => n + (h.includes('long video') ? h.split(' vs ').length : 1), 0));
    for (const f of files) {
      const events = await readTrace(path.join(dataDir, f));
      const types = events.map((e) => e.type);
      expect(types[0], f).toBe('run.start');
      expect(types.filter((t) => t === 'turn.end').length, f).toBe(types.filter((t) => t === 'turn.start').length);
    }

    const one = path.join(dataDir, files[0]!);
    const again = start(['profile', '--port', '0', '--data-dir', dataDir]);
    await again.waitFor(/Ctrl-C stops it/, 60_000);
    expect(again.output().stdout).toContain(`SparseVILA profiler: ${files.length} saved runs in ${dataDir}\n`);
    expect(await again.interrupt(), `profile: ${again.output().stderr}`).toBe(0);

    // Ctrl-C mid-conversation: the server closes first, so the run's file holds every event up to then.
    const midway = tempDir('demo-interrupted');
    const cut = start(['demo', '--threads', '1', '--port', '0', '--data-dir', midway]);
    await cut.waitFor(/turn 1 assistant: /, 300_000);
    expect(await cut.interrupt()).toBe('SIGINT');
    const [partial] = fs.readdirSync(midway);
    const events = await readTrace(path.join(midway, partial!));
    expect(events[0]!.type).toBe('run.start');
    expect(events.map((e) => e.type)).toContain('turn.end');

    const empty = tempDir('empty-runs');
    const loaded = start(['profile', '--port', '0', '--data-dir', empty, '--load', one]);
    await loaded.waitFor(/Ctrl-C stops it/, 60_000);
    expect(loaded.output().stdout).toContain(`SparseVILA profiler: no saved runs in ${empty}; 1 run from ${one}\n`);
    expect(await loaded.interrupt(), `profile --load: ${loaded.output().stderr}`).toBe(0);
  });
});
