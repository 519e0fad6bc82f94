/**
 * The live feed (`/ws/live`, profiler-ui/protocol.md): run announcements, event batches as they arrive,
 * replays on request, and the server's count of messages it dropped for this page. Reconnects with
 * backoff; every message is handed on decoded, nothing is drawn here.
 */
import { loadWire } from './api.js';

export function connectLive(url, handlers) {
  let ws = null;
  let closed = false;
  let delay = 500;
  let codec = null;
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
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      try {
        dispatch(msg);
      } catch (err) {
        handlers.error?.(`bad ${msg?.kind ?? ''} message: ${err.message}`);
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

  const unpack = (batch) => (codec ? codec.unpackBatch(batch) : batch.events);

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
