/**
 * The profiler against hostile or careless clients (issue 22): every event is checked against the schema
 * where it enters (ingest, upload, --load, data-dir reload) with a typed error back; payload depth and size
 * are bounded; the run store on disk is bounded and uploads cannot overwrite a live run; the token, the
 * bound interface and the Host header are checked. After each refusal the server still answers.
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import { InputError } from '../dist/src/errors.js';
import { parseTrace, serializeEvent, type TraceEvent } from '../dist/src/trace/index.js';
import { decodeBatch, encodeBatch, validateEvent } from '../dist/src/trace/wire.js';
import { tempDir } from './helpers/temp.js';
import { thrown } from './helpers/thrown.js';
import { deepJson, deepObject, openIngest, runsStatus, syntheticRun, until } from './helpers/profiler.js';

const base = (run: string) => syntheticRun(run);

/** Events that pass the old shallow checks but lack a field the server or page reads. */
const HOLLOW: Record<string, unknown>[] = [
  { type: 'token', run: 'h', t: 1, turn: 0, step: 0, id: 1 },
  { type: 'image', run: 'h', t: 1, turn: 0, image: 0, width: 4, height: 4 },
  { type: 'run.start', run: 'h', t: 0, version: 1 },
  { type: 'run.start', run: 'h', t: 0, version: 1, model: { dir: 5 }, policy: { method: 'dense' }, options: {} },
  { type: 'turn.start', run: 'h', t: 1, turn: 0, images: 0 },
  { type: 'turn.end', run: 'h', t: 1, turn: 0, stopReason: 'eos', metrics: {} },
  { type: 'span', run: 'h', t: 1, turn: 0, stage: 'nowhere', start: 0, duration: 1 },
  { type: 'span', run: 'h', t: 1, turn: 0, stage: 'decode', start: 0, duration: 1, detail: { a: 'x' } },
  { type: 'salience', run: 'h', t: 1, turn: 0, image: 0, source: 'cls', leading: 0, scores: [] },
  { type: 'kept', run: 'h', t: 1, turn: 0, image: 0, kept: [1] },
  { type: 'retrieval', run: 'h', t: 1, turn: 0, candidates: [], scores: [], retrieved: [] },
  { type: 'decode.step', run: 'h', t: 1, turn: 0, step: 0, ms: 1, attended: 1 },
  { type: 'fidelity', run: 'h', t: 1, turn: 0, metrics: { a: 'x' } },
];

function expectTyped(err: unknown, pattern: RegExp): void {
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).code).toBe('OPTION_INVALID');
  expect((err as InputError).subject).toBeTruthy();
  expect((err as Error).message).toMatch(pattern);
}

/** One raw HTTP GET with a chosen Host header (fetch does not let the caller set Host). */
function getWithHost(server: ProfilerServer, route: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: `${route}?token=${server.token}`, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('schema checks at the edge', () => {
  it('every reader refuses an event missing a field that is read, with a typed error', () => {
    for (const e of HOLLOW) {
      expectTyped(
        thrown(() => validateEvent(e)),
        new RegExp(String(e.type).replace('.', '\\.')),
      );
      expectTyped(
        thrown(() => decodeBatch(JSON.stringify({ v: 1, events: [e] }))),
        /wire batch/,
      );
      expectTyped(
        thrown(() => parseTrace(JSON.stringify(e) + '\n', 'hollow.jsonl')),
        /hollow\.jsonl, line 1/,
      );
    }
    // Every event of a real run still passes.
    expect(decodeBatch(encodeBatch(base('ok')))).toHaveLength(4);
  });

  it('refuses deep nesting and huge payloads before anything re-encodes them', () => {
    const span = { type: 'span', run: 'd', t: 1, turn: 0, stage: 'decode', start: 0, duration: 1, detail: deepObject(5000) };
    expectTyped(
      thrown(() => validateEvent(span)),
      /nest/,
    );
    const options = serializeEvent(base('d')[0]).replace('"options":{}', `"options":${deepJson(5000)}`);
    expectTyped(
      thrown(() => parseTrace(options, 'deep.jsonl')),
      /nest/,
    );
    // A long video's retrieval set as plain objects (a JSON-lines file) is within the bounds.
    const n = 200_000;
    const candidates = Array.from({ length: n }, (_, i) => ({ image: i >> 8, token: i & 255 }));
    const long = { type: 'retrieval', run: 'd', t: 1, turn: 0, layer: 3, candidates, scores: new Array(n).fill(0.5), retrieved: [0, 1] };
    expect(parseTrace(JSON.stringify(long), 'long.jsonl')[0]).toMatchObject({ type: 'retrieval' });
    const wide = { ...base('d')[0], options: { list: new Array(5_000_000).fill(0) } };
    expectTyped(
      thrown(() => validateEvent(wide)),
      /values/,
    );
    expectTyped(
      thrown(() => validateEvent({ ...base('d')[1], run: 'r'.repeat(5000) })),
      /run id/,
    );
  });
});

describe('the server under hostile input', () => {
  let server: ProfilerServer;
  const dataDir = tempDir('hostile-data');
  const logged: string[] = [];

  beforeAll(async () => {
    server = await startProfiler({ dataDir, maxDiskRuns: 4, log: (m) => logged.push(m) });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('one bad ingest frame gets an error reply; the connection and the server carry on', async () => {
    const ingest = await openIngest(server);
    for (const e of HOLLOW) ingest.ws.send(JSON.stringify({ v: 1, events: [e] }));
    ingest.ws.send(`{"v":1,"events":[{"type":"span","run":"d","t":1,"turn":0,"stage":"decode","start":0,"duration":1,"detail":${deepJson(5000)}}]}`);
    await until('error replies', () => ingest.said.length === HOLLOW.length + 1);
    for (const reply of ingest.said) expect(JSON.parse(reply)).toMatchObject({ kind: 'error', message: expect.stringMatching(/wire batch/) });
    // The same connection still delivers good events.
    ingest.ws.send(encodeBatch(base('after-bad')));
    await until('good run', () => server.runs().some((r) => r.run === 'after-bad' && r.events === 4));
    expect(server.runs().some((r) => r.run === 'h' || r.run === 'd')).toBe(false);
    expect(await runsStatus(server)).toBe(200);
    ingest.ws.terminate();
  });

  it('a bad upload is a 400 and never reaches the disk', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/traces?token=${server.token}`, {
      method: 'POST',
      body: '{"type":"run.start","run":"p","t":0,"version":1}\n',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/model/);
    expect(await runsStatus(server)).toBe(200);
    expect(fs.readdirSync(dataDir).some((f) => f.startsWith('p.'))).toBe(false);
  });

  it("an upload cannot overwrite a live run's id (409); the live run's file keeps its events", async () => {
    const ingest = await openIngest(server);
    ingest.ws.send(encodeBatch(base('live-one')));
    await until('live run', () => server.runs().some((r) => r.run === 'live-one' && r.events === 4 && r.live));
    const upload = base('live-one').slice(0, 2);
    const res = await fetch(`http://127.0.0.1:${server.port}/api/traces?token=${server.token}`, {
      method: 'POST',
      body: upload.map((e) => serializeEvent(e)).join('\n'),
    });
    expect(res.status).toBe(409);
    expect((await res.json()).error).toMatch(/live-one.*live/);
    expect(server.runs().find((r) => r.run === 'live-one')).toMatchObject({ live: true, events: 4, source: 'live' });
    ingest.ws.terminate();
    const file = path.join(dataDir, 'live-one.jsonl');
    await until('file complete', () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim().split('\n').length === 4);
  });

  it('the data dir keeps at most maxDiskRuns runs, the oldest removed first', async () => {
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/traces?token=${server.token}`, {
        method: 'POST',
        body: base(`disk-${i}`)
          .map((e) => serializeEvent(e))
          .join('\n'),
      });
      expect(res.status).toBe(200);
      await until(`disk-${i} saved`, () => fs.existsSync(path.join(dataDir, `disk-${i}.jsonl`)));
    }
    await until('pruned', () => fs.readdirSync(dataDir).filter((f) => f.endsWith('.jsonl')).length <= 4);
    const files = fs.readdirSync(dataDir).filter((f) => f.endsWith('.jsonl'));
    expect(files).toContain('disk-6.jsonl');
    expect(files).not.toContain('disk-0.jsonl');
  });
});

describe('a data dir with bad files', () => {
  it('starts, serves the good runs, and names each skipped file', async () => {
    const dir = tempDir('hostile-reload');
    fs.writeFileSync(
      path.join(dir, 'good.jsonl'),
      base('good')
        .map((e) => serializeEvent(e))
        .join('\n') + '\n',
    );
    fs.writeFileSync(path.join(dir, 'p.jsonl'), '{"type":"run.start","run":"p","t":0,"version":1}\n');
    fs.writeFileSync(path.join(dir, 'deep.jsonl'), serializeEvent(base('deep')[0]).replace('"options":{}', `"options":${deepJson(5000)}`) + '\n');
    fs.writeFileSync(path.join(dir, 'junk.jsonl'), '\u0000\u0001 not json\n');
    fs.mkdirSync(path.join(dir, 'folder.jsonl'));
    const logged: string[] = [];
    const server = await startProfiler({ dataDir: dir, log: (m) => logged.push(m) });
    try {
      expect(await runsStatus(server)).toBe(200);
      expect(server.runs().map((r) => r.run)).toEqual(['good']);
      for (const name of ['p.jsonl', 'deep.jsonl', 'junk.jsonl', 'folder.jsonl']) expect(logged.some((m) => m.includes(name) && /skipping/.test(m))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('--load of a bad file is a typed error naming it', async () => {
    const file = path.join(tempDir('hostile-load'), 'bad.jsonl');
    fs.writeFileSync(file, '{"type":"token","run":"x","t":1}\n');
    const err = await startProfiler({ load: [file], log: () => undefined }).then(
      (s) => s.close().then(() => null),
      (e: unknown) => e,
    );
    expectTyped(err, /bad\.jsonl, line 1/);
  });
});

describe('exposure', () => {
  it('refuses an empty or short token, naming --token', async () => {
    for (const token of ['', 'abc', 'short-token']) {
      const err = await startProfiler({ token, log: () => undefined }).then(
        (s) => s.close().then(() => null),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).subject).toBe('--token');
      expect((err as Error).message).toMatch(/--token/);
    }
  });

  it('answers 403 to a request or upgrade whose Host is not a bound name, unless allowed', async () => {
    const server = await startProfiler({ log: () => undefined });
    const allowing = await startProfiler({ allowHosts: ['profiler.example'], log: () => undefined });
    try {
      expect(await getWithHost(server, '/api/runs', `127.0.0.1:${server.port}`)).toBe(200);
      expect(await getWithHost(server, '/api/runs', `localhost:${server.port}`)).toBe(200);
      expect(await getWithHost(server, '/api/runs', `[::1]:${server.port}`)).toBe(200);
      expect(await getWithHost(server, '/api/runs', `rebound.example:${server.port}`)).toBe(403);
      expect(await getWithHost(allowing, '/api/runs', `profiler.example:${allowing.port}`)).toBe(200);
      expect(await getWithHost(allowing, '/api/runs', `other.example:${allowing.port}`)).toBe(403);
      const status = await new Promise<number | 'open'>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws/live?token=${server.token}`, { headers: { host: 'rebound.example' } });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve('open'));
        ws.on('error', () => undefined);
      });
      expect(status).toBe(403);
    } finally {
      await Promise.all([server.close(), allowing.close()]);
    }
  });

  it('warns loudly on a non-loopback bind and lists the real URLs', async () => {
    const logged: string[] = [];
    const server = await startProfiler({ host: '0.0.0.0', log: (m) => logged.push(m) });
    try {
      expect(logged.join('\n')).toMatch(/WARNING.*0\.0\.0\.0/s);
      expect(server.urls.length).toBeGreaterThan(0);
      for (const url of server.urls) expect(url).toContain(`:${server.port}/?token=`);
      // Reached by one of the machine's own addresses, the page answers: that name is bound.
      expect(await runsStatus(server)).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('sparsevila profile', () => {
  const BIN = path.join(import.meta.dirname, '..', 'bin', 'sparsevila.js');

  it('refuses a short --token before it starts, naming the flag', async () => {
    const child = spawn('node', [BIN, 'profile', '--port', '0', '--token', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/--token must be at least 16 characters/);
  });

  it('starts and serves on a data dir holding a bad file, and says which it skipped', async () => {
    const dir = tempDir('hostile-cli');
    fs.writeFileSync(path.join(dir, 'p.jsonl'), '{"type":"run.start","run":"p","t":0,"version":1}\n');
    fs.writeFileSync(
      path.join(dir, 'good.jsonl'),
      base('good')
        .map((e) => serializeEvent(e))
        .join('\n') + '\n',
    );
    const token = 'a-long-enough-test-token';
    const child = spawn('node', [BIN, 'profile', '--port', '0', '--data-dir', dir, '--token', token, '--max-disk-runs', '10'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    try {
      await until('the URL', () => /127\.0\.0\.1:\d+\/\?token=/.test(stdout) || child.exitCode !== null, 15_000);
      expect(child.exitCode, stderr).toBeNull();
      const port = Number(/127\.0\.0\.1:(\d+)\//.exec(stdout)![1]);
      const runs = await fetch(`http://127.0.0.1:${port}/api/runs?token=${token}`);
      expect(runs.status).toBe(200);
      expect((await runs.json()).map((r: { run: string }) => r.run)).toEqual(['good']);
      expect(stderr).toMatch(/skipping .*p\.jsonl/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
