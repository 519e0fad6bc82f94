/**
 * Trace events coming in — over `/ws/ingest` (engine processes, kernels) or in-process — go to the run
 * store and out to the live pages. A bad batch is the sender's problem only: it is discarded whole, the
 * sender is told why, and everyone else carries on.
 */
import type WebSocket from 'ws';
import type { TraceEvent } from '../../src/trace/schema.js';
import { decodeBatch, encodeBatch, validateEvent } from '../../src/trace/wire.js';
import type { LiveHub } from './live-hub.js';
import type { Producer, RunStore } from './run-store.js';

/** The `/ws/live` message carrying new events; the batch text is embedded as a JSON object, not re-encoded. */
export function eventsMessage(kind: 'events' | 'replay', run: string, batchText: string): string {
  return `{"kind":"${kind}","run":${JSON.stringify(run)},"batch":${batchText}}`;
}

export class Ingest {
  /** Stands for in-process producers; they never disconnect, so their runs stay live until `endInProcess`. */
  private readonly inProcess: Producer = { name: 'in-process' };
  private pending: TraceEvent[] = [];
  private pendingTimer: NodeJS.Timeout | null = null;
  private connections = 0;
  private rejectedBatches = 0;

  constructor(
    private readonly store: RunStore,
    private readonly hub: LiveHub,
  ) {}

  get connectionCount(): number {
    return this.connections;
  }

  get rejected(): number {
    return this.rejectedBatches;
  }

  /** Serve one `/ws/ingest` connection. */
  accept(ws: WebSocket): void {
    const producer: Producer = { ws };
    this.connections++;
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.reject(ws, 'expected text frames holding wire batches, got a binary frame');
        return;
      }
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      let events: TraceEvent[];
      try {
        events = decodeBatch(text);
      } catch (err) {
        this.reject(ws, (err as Error).message);
        return;
      }
      try {
        this.accepted(events, producer, text);
      } catch (err) {
        // Validation lets nothing through that the store cannot take; should that ever fail, only this
        // batch is lost and the sender hears why, rather than the process exiting.
        this.reject(ws, `profiler could not store the batch: ${(err as Error).message}`);
      }
    });
    // Oversized frames (1009) and invalid UTF-8 (1007) end in 'error' then 'close': only this connection.
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.connections--;
      this.store.detach(producer);
    });
  }

  /** In-process producers: validated like a batch, stored at once, sent to pages in small batches. */
  ingest(event: TraceEvent): void {
    const checked = validateEvent(event);
    this.store.add([checked], this.inProcess);
    if (!this.hub.size) return;
    this.pending.push(checked);
    if (this.pending.length >= 256) this.flushInProcess();
    else this.pendingTimer ??= setTimeout(() => this.flushInProcess(), 25).unref();
  }

  /** In-process runs are no longer live. */
  endInProcess(): void {
    this.flushInProcess();
    this.store.detach(this.inProcess);
  }

  close(): void {
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = null;
  }

  private flushInProcess(): void {
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = null;
    const events = this.pending;
    this.pending = [];
    if (events.length) this.broadcast(events, null);
  }

  private accepted(events: TraceEvent[], producer: Producer, text: string): void {
    this.store.add(events, producer);
    if (this.hub.size) this.broadcast(events, text);
  }

  /** One `events` message per run; a single-run batch (the usual case) is forwarded as received. */
  private broadcast(events: TraceEvent[], text: string | null): void {
    const byRun = new Map<string, TraceEvent[]>();
    for (const e of events) {
      let list = byRun.get(e.run);
      if (!list) byRun.set(e.run, (list = []));
      list.push(e);
    }
    for (const [run, list] of byRun) {
      const batch = byRun.size === 1 && text !== null ? text : encodeBatch(list);
      this.hub.broadcast(eventsMessage('events', run, batch), [run]);
    }
  }

  private reject(ws: WebSocket, message: string): void {
    this.rejectedBatches++;
    // Never let error replies pile up for a sender that does not read them.
    if (ws.readyState === ws.OPEN && ws.bufferedAmount < 1024 * 1024) ws.send(JSON.stringify({ kind: 'error', message }));
  }
}
