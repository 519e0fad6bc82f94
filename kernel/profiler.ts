/**
 * Attaching a notebook to the live profiler (profiler-ui/protocol.md). Either to one already running —
 * given the URL it printed (`http://127.0.0.1:PORT/?token=T`), its ingest URL, or $SPARSEVILA_PROFILER_URL —
 * over a `WebSocketSink`, or to one started inside the kernel process with `startProfiler`, fed directly
 * through `server.ingest(event)`. Either way the notebook gets a `NotebookTrace`: every chat made with
 * `trace.tracer()` shows up as its own run in the profiler and stays in memory for the show functions.
 */
import type { ProfilerOptions, ProfilerServer } from '../profiler-ui/server/server.js';
import type { TraceSink } from '../src/index.js';
import { checkProfiler, profilerEndpoints } from '../src/trace/profiler-url.js';
import { WebSocketSink } from '../src/trace/ws-sink.js';
import { esc } from './render/markup.js';
import { show } from './display.js';
import { NotebookTrace } from './trace.js';

export type { ProfilerServer };
/** The page and ingest URLs for a profiler URL (page or ingest form), with the token. */
export { profilerEndpoints };

export interface AttachProfilerOptions {
  /**
   * A running profiler: the page URL it printed (http://host:port/?token=T) or its ingest URL
   * (ws://host:port/ws/ingest). Default $SPARSEVILA_PROFILER_URL; without either, a profiler is started
   * in this process.
   */
  url?: string;
  /** The token, when the URL does not carry it. */
  token?: string;
  /** Options for the in-process server (port, host, dataDir, …), passed to `startProfiler`. */
  server?: ProfilerOptions;
  /** Print and display the profiler's URL as a link (default true). */
  announce?: boolean;
  /** Events kept in memory for the show functions (default 200 000). */
  maxEvents?: number;
}

export class ProfilerTrace extends NotebookTrace {
  constructor(
    /** The profiler page, with its token. */
    readonly url: string,
    /** The sink events go to: a WebSocketSink (remote) or the server's ingest (in-process). */
    readonly sink: TraceSink,
    /** The in-process server, when this notebook hosts it. */
    readonly server: ProfilerServer | null,
    maxEvents?: number,
  ) {
    super({ forward: [sink], maxEvents });
  }

  /** Flushes what is queued for the profiler, and stops the in-process server if there is one. */
  override async close(): Promise<void> {
    await super.close();
    this.server?.endInProcess();
    await this.server?.close();
  }
}

type StartProfiler = (options?: ProfilerOptions) => Promise<ProfilerServer>;

/**
 * `startProfiler` from the compiled server (dist/profiler-ui/server/server.js), loaded only when a notebook
 * hosts a profiler: importing the kernel does not load express and the web server.
 */
async function loadStartProfiler(): Promise<StartProfiler> {
  const where = new URL('../profiler-ui/server/server.js', import.meta.url);
  let mod: { startProfiler?: StartProfiler };
  try {
    mod = await import(where.href);
  } catch (err) {
    throw new Error(`the profiler server is not built (${where.pathname}): run \`npm run build\` first (${(err as Error).message})`);
  }
  if (typeof mod.startProfiler !== 'function') throw new Error(`${where.pathname} does not export startProfiler()`);
  return mod.startProfiler;
}

/**
 * Connects this notebook's chats to the live profiler (a running one is checked first: an InputError names
 * a URL where none answers, or one that refuses the token). Pass `trace.tracer()` to each `model.chat`, and the
 * trace itself to the show functions; `await trace.close()` at the end flushes (and stops an in-process server).
 */
export async function attachProfiler(options: AttachProfilerOptions = {}): Promise<ProfilerTrace> {
  const url = options.url ?? process.env.SPARSEVILA_PROFILER_URL;
  let trace: ProfilerTrace;
  if (url) {
    const ends = profilerEndpoints(url, options.token, options.url ? 'url' : '$SPARSEVILA_PROFILER_URL');
    // A wrong URL or token fails here, naming it, instead of every event being dropped unseen.
    await checkProfiler(ends, { subject: options.url ? 'url' : '$SPARSEVILA_PROFILER_URL' });
    trace = new ProfilerTrace(ends.page, new WebSocketSink(ends.ingest), null, options.maxEvents);
  } else {
    const startProfiler = await loadStartProfiler();
    const server = await startProfiler(options.server ?? {});
    trace = new ProfilerTrace(server.url, { write: (e) => server.ingest(e) }, server, options.maxEvents);
  }
  if (options.announce ?? true) {
    console.log(`profiler: ${trace.url}${trace.server ? ' (running in this kernel)' : ''}`);
    show('html', `<p>Live profiler: <a href="${esc(trace.url)}" target="_blank" rel="noopener">${esc(trace.url)}</a></p>`);
  }
  return trace;
}
