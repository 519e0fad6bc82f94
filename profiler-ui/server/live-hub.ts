/**
 * Fan-out to browser pages. Sending never waits on a page: a page whose socket already holds more than
 * `maxBufferedBytes` unsent (a stuck tab, a slow link) misses further messages, which are counted, and when
 * its socket drains it is told `{kind:'dropped', count, runs}` so it can ask for a replay. Memory per page
 * is thus bounded, and one stuck page cannot slow the engine or the other pages.
 */
import WebSocket from 'ws';
import type { LiveMessage } from './protocol.js';

export interface LiveHubOptions {
  /** Skip messages for a page with more than this many bytes waiting in its socket (default 4 MiB). */
  maxBufferedBytes?: number;
  /** How often pages with dropped messages are checked for having drained (default 200 ms). */
  drainCheckMs?: number;
}

interface Client {
  ws: WebSocket;
  /** Messages dropped since the page was last told. */
  dropped: number;
  droppedRuns: Set<string>;
  /** All messages ever dropped for this page (for health and tests). */
  droppedTotal: number;
}

export interface ClientStats {
  buffered: number;
  droppedTotal: number;
}

export class LiveHub {
  private readonly clients = new Map<WebSocket, Client>();
  private readonly maxBuffered: number;
  private readonly drainCheckMs: number;
  private drainTimer: NodeJS.Timeout | null = null;
  /** Drops counted for pages that have since disconnected. */
  private droppedGone = 0;

  constructor(options: LiveHubOptions = {}) {
    this.maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.drainCheckMs = options.drainCheckMs ?? 200;
  }

  get size(): number {
    return this.clients.size;
  }

  /** Per-page send state, in connection order. */
  stats(): ClientStats[] {
    return [...this.clients.values()].map((c) => ({ buffered: c.ws.bufferedAmount, droppedTotal: c.droppedTotal }));
  }

  /** Messages dropped for all pages so far. */
  get droppedTotal(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.droppedTotal;
    return n + this.droppedGone;
  }

  add(ws: WebSocket): void {
    const client: Client = { ws, dropped: 0, droppedRuns: new Set(), droppedTotal: 0 };
    this.clients.set(ws, client);
    ws.on('close', () => {
      this.droppedGone += client.droppedTotal;
      this.clients.delete(ws);
    });
  }

  /** To every page. `runs`: the runs the message is about, named in the `dropped` notice if it is skipped. */
  broadcast(text: string, runs: readonly string[] = []): void {
    for (const client of this.clients.values()) this.deliver(client, text, runs);
  }

  /** To one page, under the same bound. */
  send(ws: WebSocket, text: string, runs: readonly string[] = []): void {
    const client = this.clients.get(ws);
    if (client) this.deliver(client, text, runs);
  }

  close(): void {
    if (this.drainTimer) clearInterval(this.drainTimer);
    this.drainTimer = null;
    for (const c of this.clients.values()) c.ws.terminate();
    this.clients.clear();
  }

  private deliver(client: Client, text: string, runs: readonly string[]): void {
    const ws = client.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    // Once a page has missed something, hold everything back until it is told: it resyncs by replay.
    if (client.dropped > 0 || ws.bufferedAmount > this.maxBuffered) {
      client.dropped++;
      client.droppedTotal++;
      for (const r of runs) client.droppedRuns.add(r);
      this.watchDrain();
      return;
    }
    ws.send(text);
  }

  private watchDrain(): void {
    if (this.drainTimer) return;
    this.drainTimer = setInterval(() => this.checkDrained(), this.drainCheckMs);
    this.drainTimer.unref();
  }

  private checkDrained(): void {
    let waiting = false;
    for (const client of this.clients.values()) {
      if (client.dropped === 0) continue;
      if (client.ws.readyState !== WebSocket.OPEN) continue;
      if (client.ws.bufferedAmount > this.maxBuffered / 2) {
        waiting = true;
        continue;
      }
      client.ws.send(JSON.stringify({ kind: 'dropped', count: client.dropped, runs: [...client.droppedRuns] } satisfies LiveMessage));
      client.dropped = 0;
      client.droppedRuns.clear();
    }
    if (!waiting && this.drainTimer) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
  }
}
