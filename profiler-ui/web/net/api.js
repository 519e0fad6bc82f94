/**
 * The profiler server's HTTP API (profiler-ui/protocol.md). The token from the page URL rides on every
 * request (the server also sets a cookie, but an explicit token keeps a copied link working). Wire batches
 * are decoded by the server's own codec, `/lib/wire.js`.
 */
let wire = null;

/** The browser-safe wire codec the server serves; null when the page runs without a server. */
export async function loadWire() {
  if (wire !== null) return wire || null;
  try {
    wire = await import('/lib/wire.js');
  } catch {
    wire = false;
  }
  return wire || null;
}

export function pageToken() {
  return new URLSearchParams(location.search).get('token');
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function createApi(token) {
  const withToken = (path) => (token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path);

  async function request(path, init) {
    const res = await fetch(withToken(path), init);
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        message = (await res.json()).error ?? message;
      } catch {
        // not JSON
      }
      throw new ApiError(res.status, message);
    }
    return res;
  }

  return {
    /** RunSummary[], newest first. */
    async runs() {
      return (await request('/api/runs')).json();
    },
    /** A run's stored events, ordered by t. */
    async events(run) {
      const batch = await (await request(`/api/runs/${encodeURIComponent(run)}/events`)).json();
      const codec = await loadWire();
      return codec ? codec.unpackBatch(batch) : batch.events;
    },
    /** Load a JSONL trace into the server; answers the run ids it held. */
    async upload(text) {
      const res = await request('/api/traces', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: text });
      return (await res.json()).runs;
    },
    traceUrl(run) {
      return withToken(`/api/runs/${encodeURIComponent(run)}/trace.jsonl`);
    },
    liveUrl() {
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      return withToken(`${proto}://${location.host}/ws/live`);
    },
  };
}
