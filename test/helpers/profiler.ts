/** Shared by the profiler's hostile-input, fuzz and soak tests: a synthetic run, raw sockets, waiting. */
import WebSocket from 'ws';
import type { ProfilerServer } from '../../dist/profiler-ui/server/server.js';
import type { TraceEvent } from '../../dist/src/trace/index.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A valid four-event run: run.start, turn.start, one token, turn.end. */
export function syntheticRun(run: string, t0 = 0): TraceEvent[] {
  return [
    {
      run,
      t: t0,
      type: 'run.start',
      version: 1,
      model: { dir: '/m/synthetic', vision: 'siglip', text: 'qwen2', layers: 2, heads: 2, kvHeads: 1, imageTokens: 16 },
      policy: { method: 'dense' },
      options: {},
    },
    { run, t: t0 + 1, type: 'turn.start', turn: 0, text: 'hi', images: 0 },
    { run, t: t0 + 2, type: 'token', turn: 0, step: 0, id: 5, text: 'x' },
    { run, t: t0 + 3, type: 'turn.end', turn: 0, answer: 'x', stopReason: 'eos', metrics: {} },
  ] as TraceEvent[];
}

/** `{a:{a:{…}}}` nested `depth` deep, built without recursion. */
export function deepObject(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < depth; i++) value = { a: value };
  return value;
}

/** JSON text of `{"a":{"a":…1…}}` nested `depth` deep: deeper than JSON.stringify itself can write. */
export function deepJson(depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{"leaf":1' + '}'.repeat(depth);
}

/** A raw ingest connection, keeping what the server says. */
export async function openIngest(server: ProfilerServer): Promise<{ ws: WebSocket; said: string[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws/ingest?token=${server.token}`);
  const said: string[] = [];
  ws.on('message', (d) => said.push(String(d)));
  ws.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, said, closed };
}

/** The status of GET /api/runs: the server is up and its run list serialises. */
export async function runsStatus(server: ProfilerServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/runs?token=${server.token}`);
  await res.arrayBuffer();
  return res.status;
}
