/** `sparsevila profile`: the live profiler server, serving until interrupted. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { listRunFiles, runFileName } from '../../profiler-ui/server/run-files.js';
import type { ProfilerServer } from '../../profiler-ui/server/server.js';
import { InputError } from '../errors.js';
import { checkProfiler, profilerEndpoints, type ProfilerEndpoints } from '../trace/profiler-url.js';
import type { WebSocketSink } from '../trace/ws-sink.js';
import { parseInteger } from './options.js';

const DEFAULT_PORT = 8765;
/** Without --port, try this many ports from the default, as Jupyter does. */
const PORT_TRIES = 10;

export const PROFILE_HELP = `Usage: sparsevila profile [--port N] [--host H] [--open] [--data-dir DIR] [--load FILE.jsonl …] [--token T]
                         [--allow-host NAME …] [--max-disk-runs N] [--max-disk-mb N]

Starts the live profiler: a web page showing runs as they happen (stage timeline, salience and retention
maps, retrieval per layer, decode steps) and saved traces. Prints the page's URL with its access token
and serves until Ctrl-C. Engine processes stream to it with
  new Tracer([new WebSocketSink('ws://HOST:PORT/ws/ingest?token=TOKEN')])

Options:
  --port N         port (default ${DEFAULT_PORT}, or the next free one of ${PORT_TRIES}; 0 picks any free port)
  --host H         interface to bind (default 127.0.0.1; traces hold prompts and images — bind wider deliberately:
                   a non-loopback bind is warned about and every address it serves is printed)
  --open           open the page in a browser (xdg-open)
  --data-dir DIR   where runs are saved as JSONL and reloaded from at start
                   (default $SPARSEVILA_TRACES or ~/.cache/sparsevila/traces)
  --load FILE      load a saved JSONL trace (repeatable)
  --token T        use this access token (at least 16 characters) instead of a random one
  --allow-host NAME  also accept requests whose Host header is NAME (repeatable; * accepts any). By default
                   only loopback names and the bound host are accepted, which stops DNS-rebinding pages
  --max-disk-runs N  keep at most N runs in the data dir, removing the oldest (default 500)
  --max-disk-mb N  keep at most N MiB of runs in the data dir, removing the oldest (default 2048)
`;

export async function runProfile(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      open: { type: 'boolean' },
      'data-dir': { type: 'string' },
      load: { type: 'string', multiple: true },
      token: { type: 'string' },
      'allow-host': { type: 'string', multiple: true },
      'max-disk-runs': { type: 'string' },
      'max-disk-mb': { type: 'string' },
    },
    strict: true,
  });
  const port = values.port === undefined ? undefined : parseInteger(values.port, '--port');
  if (port !== undefined && (port < 0 || port > 65535)) throw new InputError('OPTION_INVALID', `--port must be 0–65535, got ${port}`, { subject: '--port' });
  for (const file of values.load ?? []) {
    if (!fs.existsSync(file)) throw new InputError('OPTION_INVALID', `--load ${file}: no such file`, { subject: file });
  }
  const dataDir = values['data-dir'] ?? defaultDataDir();
  const maxDiskRuns = positive(values['max-disk-runs'], '--max-disk-runs');
  const maxDiskMb = positive(values['max-disk-mb'], '--max-disk-mb');
  const options = {
    host: values.host,
    dataDir,
    load: values.load,
    token: values.token,
    allowHosts: values['allow-host'],
    maxDiskRuns,
    maxDiskBytes: maxDiskMb === undefined ? undefined : maxDiskMb * 1024 * 1024,
  };

  // Loaded here, not at CLI start: the other commands need no web server.
  const { startProfiler } = await import('../../profiler-ui/server/server.js');
  const server = await startOnFreePort(port, (p) => startProfiler({ ...options, port: p }));
  // Listening before the banner says Ctrl-C stops it: a Ctrl-C right after it must still close the server.
  const interrupted = untilInterrupted();
  process.stdout.write(
    `SparseVILA profiler: ${loadedRuns(server, dataDir, values.load ?? [])}\n` +
      `Open the page:\n${server.urls.map((u) => `    ${u}\n`).join('')}` +
      `Stream a run to it:\n    new Tracer([new WebSocketSink('${server.ingestUrl}')])\n` +
      `Ctrl-C stops it.\n`,
  );
  if (values.open) openBrowser(server.url);

  await interrupted;
  process.stdout.write('\nstopping the profiler\n');
  await server.close();
}

/** Where the profiler keeps its runs unless told otherwise: $SPARSEVILA_TRACES, else ~/.cache/sparsevila/traces. */
export function defaultDataDir(): string {
  return process.env.SPARSEVILA_TRACES || path.join(os.homedir(), '.cache', 'sparsevila', 'traces');
}

const runs = (n: number) => (n === 0 ? 'no saved runs' : n === 1 ? '1 saved run' : `${n} saved runs`);

/**
 * What the server loaded: the runs whose files are in the data dir, and the rest from --load files. (A --load
 * run whose id has a file in the data dir replaced that run, and counts as the data dir's.)
 */
function loadedRuns(server: ProfilerServer, dataDir: string, load: string[]): string {
  const files = new Set(listRunFiles(dataDir, () => undefined).map((f) => path.basename(f.file)));
  const all = server.runs();
  const saved = all.filter((r) => files.has(runFileName(r.run))).length;
  const fromLoad = all.length - saved;
  const loaded = load.length ? `; ${fromLoad} run${fromLoad === 1 ? '' : 's'} from ${load.length === 1 ? load[0] : `${load.length} --load files`}` : '';
  return `${runs(saved)} in ${dataDir}${loaded}`;
}

/**
 * The running profiler at `url` (`ask --profile URL`), checked to answer there and take the token: an
 * InputError names the URL otherwise, before any work is done. Stream to it with `new WebSocketSink(ends.ingest)`.
 */
export async function checkedProfiler(url: string, flag = '--profile'): Promise<ProfilerEndpoints> {
  const ends = profilerEndpoints(url, undefined, flag);
  await checkProfiler(ends, { subject: flag });
  return ends;
}

/** The line `ask --profile` ends with: where the run is on the page, and what did not get there. */
export function profiledRun(ends: ProfilerEndpoints, sink: WebSocketSink, run: string): string {
  const page = new URL(ends.page);
  page.hash = `#/run/${encodeURIComponent(run)}`;
  const missed = sink.dropped ? `; ${sink.dropped} events did not reach it${sink.error ? ` (${sink.error.message})` : ''}` : '';
  return `[profiler: ${sink.sent} events of run ${run} streamed to ${page}${missed}]\n`;
}

function positive(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseInteger(value, flag);
  if (n < 1) throw new InputError('OPTION_INVALID', `${flag} must be at least 1, got ${n}`, { subject: flag });
  return n;
}

export function untilInterrupted(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

/** The port given, or the first free one from the default, as Jupyter does. */
export async function startOnFreePort(port: number | undefined, start: (port: number) => Promise<ProfilerServer>): Promise<ProfilerServer> {
  if (port !== undefined) return start(port);
  for (let i = 0; ; i++) {
    try {
      return await start(DEFAULT_PORT + i);
    } catch (err) {
      const inUse = err instanceof InputError && /in use/.test(err.message);
      if (!inUse || i + 1 >= PORT_TRIES) throw err;
    }
  }
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && fs.existsSync(path.join(dir, command)));
}

function openBrowser(url: string): void {
  if (!onPath('xdg-open')) {
    process.stdout.write('(--open: xdg-open is not installed; open the URL above yourself)\n');
    return;
  }
  const child = spawn('xdg-open', [url], { detached: true, stdio: 'ignore' });
  child.on('error', (err) => process.stdout.write(`(--open: xdg-open failed: ${err.message}; open the URL above yourself)\n`));
  child.unref();
}
