/**
 * The live profiler server: HTTP routes, and two WebSocket endpoints upgraded on the same port —
 * `/ws/ingest` for producers and `/ws/live` for pages. See profiler-ui/protocol.md for the contract.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { InputError } from '../../src/errors.js';
import { readTrace } from '../../src/trace/jsonl-sink.js';
import type { TraceEvent } from '../../src/trace/schema.js';
import { encodeBatch } from '../../src/trace/wire.js';
import { HostCheck, TokenAuth, checkToken, cookieName, interfaceAddresses, isLoopback, isWildcard, randomToken, sameOrigin } from './auth.js';
import { createApp } from './http.js';
import { Ingest, eventsMessage } from './ingest.js';
import { LiveHub } from './live-hub.js';
import { profilerPaths, type ProfilerPaths } from './paths.js';
import type { LiveMessage } from './protocol.js';
import { RunStore, type RunSummary } from './run-store.js';

export interface ProfilerOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1: traces hold prompts and images; expose them deliberately. */
  host?: string;
  /** Default: a fresh random token. A chosen one must have at least 16 characters. */
  token?: string;
  /**
   * Host header names accepted besides the loopback names and the bound host (`*`: any). Requests naming
   * another host get 403, which stops DNS-rebinding pages (as Jupyter's allow_remote_access does).
   */
  allowHosts?: string[];
  /** Runs are appended here as JSONL and reloaded at start; default: memory only. */
  dataDir?: string;
  /** Saved JSONL traces to load at start (not copied into the data dir). */
  load?: string[];
  maxRuns?: number;
  maxEventsPerRun?: number;
  maxStoredBytes?: number;
  /** Most run files kept in the data dir (default 500); the oldest are removed. */
  maxDiskRuns?: number;
  /** Most bytes of run files kept in the data dir (default 2 GiB); the oldest are removed. */
  maxDiskBytes?: number;
  /** Largest ingest frame (default 16 MiB); bigger ones close that connection with 1009. */
  maxIngestPayload?: number;
  /** Per-page socket backlog past which messages for that page are dropped (default 4 MiB). */
  maxLiveBufferedBytes?: number;
  maxUploadBytes?: number;
  /** Where non-fatal problems are reported (default: stderr). */
  log?: (message: string) => void;
  paths?: Partial<ProfilerPaths>;
}

export interface ProfilerStats {
  runs: number;
  liveClients: number;
  ingestConnections: number;
  rejectedBatches: number;
  droppedLiveMessages: number;
  uptimeMs: number;
}

export interface ProfilerServer {
  /** The page, with the token: what to open (or print). */
  url: string;
  /** The page by every address it is served on (one for a specific bind, each interface for a wildcard). */
  urls: string[];
  /** Where producers connect: `new WebSocketSink(server.ingestUrl)`. */
  ingestUrl: string;
  token: string;
  port: number;
  host: string;
  /** Feed an event from this process (validated; throws InputError if it is not a trace event). */
  ingest(event: TraceEvent): void;
  /** In-process runs are finished: they stop being live. */
  endInProcess(): void;
  runs(): RunSummary[];
  stats(): ProfilerStats;
  /** Per live page: bytes waiting in its socket and messages dropped for it. */
  liveClients(): { buffered: number; droppedTotal: number }[];
  close(): Promise<void>;
}

export async function startProfiler(options: ProfilerOptions = {}): Promise<ProfilerServer> {
  const host = options.host ?? '127.0.0.1';
  if (options.token !== undefined) checkToken(options.token);
  const token = options.token ?? randomToken();
  const log = options.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const startedAt = performance.now();
  const paths = profilerPaths(options.paths);

  const store = new RunStore({
    dataDir: options.dataDir,
    maxRuns: options.maxRuns,
    maxEventsPerRun: options.maxEventsPerRun,
    maxBytes: options.maxStoredBytes,
    maxDiskRuns: options.maxDiskRuns,
    maxDiskBytes: options.maxDiskBytes,
    log,
  });
  await store.loadDataDir();
  for (const file of options.load ?? []) store.load(await readTrace(file), { persist: false });

  const hub = new LiveHub({ maxBufferedBytes: options.maxLiveBufferedBytes });
  const ingest = new Ingest(store, hub);
  store.listen({
    run: (summary) => hub.broadcast(JSON.stringify({ kind: 'run', summary } satisfies LiveMessage)),
    evicted: (run) => hub.broadcast(JSON.stringify({ kind: 'evicted', run } satisfies LiveMessage)),
  });

  const stats = (): ProfilerStats => ({
    runs: store.size,
    liveClients: hub.size,
    ingestConnections: ingest.connectionCount,
    rejectedBatches: ingest.rejected,
    droppedLiveMessages: hub.droppedTotal,
    uptimeMs: Math.round(performance.now() - startedAt),
  });

  const server = http.createServer();
  const ingestWss = new WebSocketServer({ noServer: true, maxPayload: options.maxIngestPayload ?? 16 * 1024 * 1024, perMessageDeflate: false });
  const liveWss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false });
  ingestWss.on('connection', (ws: WebSocket) => ingest.accept(ws));
  liveWss.on('connection', (ws: WebSocket) => {
    hub.add(ws);
    hub.send(ws, JSON.stringify({ kind: 'hello', runs: store.summaries() } satisfies LiveMessage));
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => handleLiveMessage(ws, isBinary ? null : String(data)));
  });

  function handleLiveMessage(ws: WebSocket, text: string | null): void {
    let msg: { kind?: unknown; run?: unknown };
    try {
      msg = JSON.parse(text ?? 'null') as typeof msg;
    } catch {
      msg = {};
    }
    if (msg?.kind === 'replay' && typeof msg.run === 'string') {
      const events = store.events(msg.run);
      if (!events) hub.send(ws, JSON.stringify({ kind: 'error', run: msg.run, message: `no run ${JSON.stringify(msg.run)} in memory` } satisfies LiveMessage));
      else hub.send(ws, eventsMessage('replay', msg.run, encodeBatch(events)), [msg.run]);
      return;
    }
    hub.send(ws, JSON.stringify({ kind: 'error', message: 'expected {"kind":"replay","run":"<id>"}' } satisfies LiveMessage));
  }

  // Handlers go on after listen: the cookie name carries the port. No request can arrive in between.
  const port = await listen(server, options.port ?? 0, host);
  const auth = new TokenAuth(token, cookieName(port));
  const hosts = new HostCheck(host, options.allowHosts);
  server.on('request', createApp({ auth, hosts, store, paths, health: () => ({ ...stats() }), maxUploadBytes: options.maxUploadBytes }));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const pathname = new URL(req.url ?? '/', 'http://profiler.invalid').pathname;
    const wss = pathname === '/ws/ingest' ? ingestWss : pathname === '/ws/live' ? liveWss : null;
    if (!wss) return refuse(socket, 404, 'no WebSocket endpoint here: use /ws/live or /ws/ingest');
    if (!hosts.allows(req)) return refuse(socket, 403, hosts.refusal(req));
    if (!auth.check(req)) return refuse(socket, 401, 'missing or wrong profiler token (?token=, Bearer header, or the page cookie)');
    if (!sameOrigin(req)) return refuse(socket, 403, `foreign Origin ${req.headers.origin} may not connect`);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const urlName = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : urlName(host);
  const q = `token=${encodeURIComponent(token)}`;
  const addresses = isWildcard(host) ? interfaceAddresses().filter((a) => host === '::' || !a.includes(':')) : [host];
  const urls = addresses.map((a) => `http://${urlName(a)}:${port}/?${q}`);
  if (!isLoopback(host)) {
    log(
      `WARNING: the profiler is bound to ${host}, not loopback: anyone who can reach ${isWildcard(host) ? 'this machine' : host} on port ${port} ` +
        `and has the token can read every trace (prompts, answers, images). It is served at:\n${urls.map((u) => `    ${u}`).join('\n')}`,
    );
  }

  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost}:${port}/?${q}`,
    urls,
    ingestUrl: `ws://${urlHost}:${port}/ws/ingest?${q}`,
    token,
    port,
    host,
    ingest: (event) => ingest.ingest(event),
    endInProcess: () => ingest.endInProcess(),
    runs: () => store.summaries(),
    stats,
    liveClients: () => hub.stats(),
    close: () =>
      (closing ??= (async () => {
        ingest.close();
        hub.close();
        for (const ws of ingestWss.clients) ws.terminate();
        ingestWss.close();
        liveWss.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await store.close();
      })()),
  };
}

function refuse(socket: Duplex, status: 401 | 403 | 404, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status];
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new InputError(
          'OPTION_INVALID',
          err.code === 'EADDRINUSE'
            ? `port ${port} on ${host} is in use; choose another with --port (0 picks a free one)`
            : `cannot listen on ${host}:${port}: ${err.message}`,
          { subject: 'port', cause: err },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as { port: number }).port);
    });
  });
}
