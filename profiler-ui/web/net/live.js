/**
 * The live feed (`/ws/live`, profiler-ui/protocol.md): run announcements, event batches as they arrive,
 * replays on request, and the server's count of messages it dropped for this page. Reconnects with
 * backoff; every message is handed on decoded, nothing is drawn here.
 */
import { loadWire } from './api.js';

/**
 * @typedef {import('../../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('../../../src/trace/wire.js').WireBatch} WireBatch
 * @typedef {import('../../server/protocol.js').LiveMessage} LiveMessage
 * @typedef {import('../../server/protocol.js').RunSummary} RunSummary
 * @typedef {import('./api.js').WireCodec} WireCodec
 */

/**
 * What the page does with each message; every handler is optional.
 * @typedef {object} LiveHandlers
 * @property {(status: 'connecting' | 'live' | 'disconnected' | 'refused', closeCode?: number) => void} [status]
 * @property {(runs: RunSummary[]) => void} [hello]
 * @property {(summary: RunSummary) => void} [run]
 * @property {(run: string) => void} [evicted]
 * @property {(run: string, events: TraceEvent[]) => void} [events]
 * @property {(run: string, events: TraceEvent[]) => void} [replay]
 * @property {(count: number, runs: string[]) => void} [dropped]
 * @property {(message: string, run?: string) => void} [error]
 */

/**
 * @param {string} url
 * @param {LiveHandlers} handlers
 */
export function connectLive(url, handlers) {
  /** @type {WebSocket | null} */
  let ws = null;
  let closed = false;
  let delay = 500;
  /** @type {WireCodec | null} */
  let codec = null;
  /** @type {NonNullable<LiveHandlers['status']>} */
  const status = (s, detail) => handlers.status?.(s, detail);

  async function open() {
    codec ??= await loadWire();
    if (closed) return;
    status('connecting');
    ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      delay = 500;
      status('live');
    };
    ws.onmessage = (ev) => {
      /** @type {LiveMessage} */
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      try {
        dispatch(msg);
      } catch (err) {
        handlers.error?.(`bad ${msg?.kind ?? ''} message: ${/** @type {Error} */ (err).message}`);
      }
    };
    ws.onclose = (ev) => {
      ws = null;
      if (closed) return;
      status(opened ? 'disconnected' : 'refused', ev.code);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  }

  // Without the server's codec the batch is taken as it came: plain arrays, unchecked.
  const unpack = (/** @type {WireBatch} */ batch) => (codec ? codec.unpackBatch(batch) : /** @type {TraceEvent[]} */ (batch.events));

  /** @param {LiveMessage} msg */
  function dispatch(msg) {
    switch (msg.kind) {
      case 'hello':
        handlers.hello?.(msg.runs ?? []);
        break;
      case 'run':
        handlers.run?.(msg.summary);
        break;
      case 'evicted':
        handlers.evicted?.(msg.run);
        break;
      case 'events':
        handlers.events?.(msg.run, unpack(msg.batch));
        break;
      case 'replay':
        handlers.replay?.(msg.run, unpack(msg.batch));
        break;
      case 'dropped':
        handlers.dropped?.(msg.count ?? 0, msg.runs ?? []);
        break;
      case 'error':
        handlers.error?.(msg.message, msg.run);
        break;
      default:
        break;
    }
  }

  open();
  return {
    /** @param {string} run */
    replay(run) {
      if (ws?.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify({ kind: 'replay', run }));
      return true;
    },
    get open() {
      return ws?.readyState === WebSocket.OPEN;
    },
    close() {
      closed = true;
      ws?.close();
    },
  };
}
