/** `sparsevila profile`: the live profiler server, serving until interrupted. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ProfilerServer } from '../../profiler-ui/server/server.js';
import { InputError } from '../errors.js';
import { parseInteger } from './options.js';

const DEFAULT_PORT = 8765;
/** Without --port, try this many ports from the default, as Jupyter does. */
const PORT_TRIES = 10;

export const PROFILE_HELP = `Usage: sparsevila profile [--port N] [--host H] [--open] [--data-dir DIR] [--load FILE.jsonl …]

Starts the live profiler: a web page showing runs as they happen (stage timeline, salience and retention
maps, retrieval per layer, decode steps) and saved traces. Prints the page's URL with its access token
and serves until Ctrl-C. Engine processes stream to it with
  new Tracer([new WebSocketSink('ws://HOST:PORT/ws/ingest?token=TOKEN')])

Options:
  --port N         port (default ${DEFAULT_PORT}, or the next free one of ${PORT_TRIES}; 0 picks any free port)
  --host H         interface to bind (default 127.0.0.1; traces hold prompts and images — bind wider deliberately)
  --open           open the page in a browser (xdg-open)
  --data-dir DIR   where runs are saved as JSONL and reloaded from at start
                   (default $SPARSEVILA_TRACES or ~/.cache/sparsevila/traces)
  --load FILE      load a saved JSONL trace (repeatable)
  --token T        use this access token instead of a random one
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
    },
    strict: true,
  });
  const port = values.port === undefined ? undefined : parseInteger(values.port, '--port');
  if (port !== undefined && (port < 0 || port > 65535)) throw new InputError('OPTION_INVALID', `--port must be 0–65535, got ${port}`, { subject: '--port' });
  for (const file of values.load ?? []) {
    if (!fs.existsSync(file)) throw new InputError('OPTION_INVALID', `--load ${file}: no such file`, { subject: file });
  }
  const dataDir = values['data-dir'] ?? process.env.SPARSEVILA_TRACES ?? path.join(os.homedir(), '.cache', 'sparsevila', 'traces');
  const options = { host: values.host, dataDir, load: values.load, token: values.token };

  // Loaded here, not at CLI start: the other commands need no web server.
  const { startProfiler } = await import('../../profiler-ui/server/server.js');
  const server = await startOnFreePort(port, (p) => startProfiler({ ...options, port: p }));
  process.stdout.write(
    `SparseVILA profiler: ${server.runs().length} saved runs from ${dataDir}\n` +
      `Open the page:\n    ${server.url}\n` +
      `Stream a run to it:\n    new Tracer([new WebSocketSink('${server.ingestUrl}')])\n` +
      `Ctrl-C stops it.\n`,
  );
  if (values.open) openBrowser(server.url);

  await untilInterrupted();
  process.stdout.write('\nstopping the profiler\n');
  await server.close();
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
