/**
 * Streams trace events to a profiler server's ingest endpoint (`ws://host:port/ws/ingest?token=T`).
 *
 * The engine must never wait on, or fail because of, the profiler: `write` encodes the event (at once:
 * the engine may reuse arrays it passed, e.g. retrieval candidates) and appends it to a batch. Batches
 * are sent every `batchMs` or `batchEvents`; the queue is bounded in
 * bytes and a batch that does not fit is dropped and its events counted. The connection is reopened with
 * backoff while the run goes on; batches that were handed to a socket that then closed count as dropped.
 * `close()` flushes what it can within a timeout, then closes.
 */
import WebSocket from 'ws';
import { InputError } from '../errors.js';
import type { TraceEvent, TraceSink } from './schema.js';
import { encodeEvent, joinBatch } from './wire.js';

export interface WebSocketSinkOptions {
  /** Added as `?token=` when the URL has none. */
  token?: string;
  /** Send a batch at least this often while events arrive (default 50 ms). */
  batchMs?: number;
  /** Send a batch as soon as it has this many events (default 256). */
  batchEvents?: number;
  /** Drop batches rather than hold more than this many bytes of encoded text, queued or in the socket (default 32 MiB). */
  maxBufferedBytes?: number;
  /** Reconnect backoff: first delay, doubling up to `maxRetryMs` (defaults 100 ms and 5 s). */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** How long `close()` waits for queued batches to be sent (default 5 s). */
  closeTimeoutMs?: number;
}

interface Queued {
  text: string;
  events: number;
}

export class WebSocketSink implements TraceSink {
  readonly url: string;
  private readonly batchMs: number;
  private readonly batchEvents: number;
  private readonly maxBuffered: number;
  private readonly minRetry: number;
  private readonly maxRetry: number;
  private readonly closeTimeout: number;

  /** Encoded events of the batch being collected, and their total length. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private batchTimer: NodeJS.Timeout | null = null;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  /** Bytes handed to the socket whose send callback has not run yet. */
  private inFlightBytes = 0;
  private ws: WebSocket | null = null;
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | null = null;
  private settledListeners: (() => void)[] = [];

  private droppedCount = 0;
  private sentCount = 0;
  private failure: Error | null = null;
  private serverMessage: string | null = null;

  constructor(url: string, options: WebSocketSinkOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InputError('OPTION_INVALID', `profiler URL ${JSON.stringify(url)} is not a URL; expected ws://host:port/ws/ingest?token=…`, { subject: 'url' });
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw new InputError(
        'OPTION_INVALID',
        `profiler URL ${url} must start with ws:// or wss:// (the ingest endpoint, e.g. ws://127.0.0.1:8765/ws/ingest?token=…)`,
        {
          subject: 'url',
        },
      );
    }
    if (options.token && !parsed.searchParams.has('token')) parsed.searchParams.set('token', options.token);
    this.url = parsed.toString();
    this.batchMs = positive(options.batchMs, 50, 'batchMs');
    this.batchEvents = positive(options.batchEvents, 256, 'batchEvents');
    this.maxBuffered = positive(options.maxBufferedBytes, 32 * 1024 * 1024, 'maxBufferedBytes');
    this.minRetry = positive(options.minRetryMs, 100, 'minRetryMs');
    this.maxRetry = Math.max(this.minRetry, positive(options.maxRetryMs, 5000, 'maxRetryMs'));
    this.closeTimeout = positive(options.closeTimeoutMs, 5000, 'closeTimeoutMs');
    this.retryDelay = this.minRetry;
    this.connect();
  }

  /** Events that will not reach the server: buffer full, sent into a connection that broke, or written after close. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Events the socket has written out (the server may still reject a batch; see `lastServerMessage`). */
  get sent(): number {
    return this.sentCount;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** The latest connection error (the sink keeps retrying regardless). */
  get error(): Error | null {
    return this.failure;
  }

  /** The latest message from the server (it reports rejected batches as `{"kind":"error",…}`). */
  get lastServerMessage(): string | null {
    return this.serverMessage;
  }

  write(event: TraceEvent): void {
    if (this.closing) {
      this.droppedCount++;
      return;
    }
    let text: string;
    try {
      text = encodeEvent(event);
    } catch {
      this.droppedCount++; // e.g. a cycle in an event's options: not representable
      return;
    }
    if (this.queuedBytes + this.inFlightBytes + this.pendingBytes + text.length > this.maxBuffered) {
      this.droppedCount++;
      return;
    }
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pending.length >= this.batchEvents) this.flushPending();
    else if (!this.batchTimer) {
      this.batchTimer = setTimeout(() => {
        this.batchTimer = null;
        this.flushPending();
      }, this.batchMs);
      this.batchTimer.unref();
    }
  }

  /** Flush, wait (up to the close timeout) for queued batches to be written, then close the connection. */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.flushPending();
    if (!this.settled()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.closeTimeout);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.settledListeners.push(done);
      });
    }
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // Whatever is still queued will never be sent.
    for (const q of this.queue) this.droppedCount += q.events;
    this.queue.length = 0;
    this.queuedBytes = 0;
    const ws = this.ws;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'run finished');
        else ws.terminate();
      });
    }
  }

  private settled(): boolean {
    return this.queue.length === 0 && this.inFlightBytes === 0 && this.pending.length === 0;
  }

  private checkSettled(): void {
    if (!this.settledListeners.length || !this.settled()) return;
    const listeners = this.settledListeners;
    this.settledListeners = [];
    for (const l of listeners) l();
  }

  private flushPending(): void {
    if (this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = null;
    }
    if (!this.pending.length) return;
    const events = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const text = joinBatch(events);
    this.queue.push({ text, events: events.length });
    this.queuedBytes += text.length;
    this.pump();
  }

  /** Hand queued batches to the socket while it is open. */
  private pump(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    while (this.queue.length) {
      const batch = this.queue.shift()!;
      this.queuedBytes -= batch.text.length;
      this.inFlightBytes += batch.text.length;
      try {
        ws.send(batch.text, (err) => {
          this.inFlightBytes -= batch.text.length;
          if (err) this.droppedCount += batch.events;
          else this.sentCount += batch.events;
          this.checkSettled();
        });
      } catch {
        this.inFlightBytes -= batch.text.length;
        this.droppedCount += batch.events;
      }
    }
    this.checkSettled();
  }

  private connect(): void {
    if (this.closed) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, { perMessageDeflate: false, handshakeTimeout: 5000 });
    } catch (err) {
      this.failure = err as Error;
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.on('open', () => {
      this.retryDelay = this.minRetry;
      this.failure = null;
      this.pump();
    });
    ws.on('message', (data) => {
      this.serverMessage = String(data);
    });
    ws.on('unexpected-response', (_req, res) => {
      this.failure = new Error(`profiler refused the connection: HTTP ${res.statusCode}${res.statusCode === 401 ? ' (wrong or missing token)' : ''}`);
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => {
      this.failure ??= err;
    });
    ws.on('close', () => {
      if (this.ws === ws) this.ws = null;
      this.scheduleReconnect();
      this.checkSettled();
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.maxRetry, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new InputError('OPTION_INVALID', `WebSocketSink option ${name} must be a positive number, got ${value}`, { subject: name });
  }
  return value;
}
