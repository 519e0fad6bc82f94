/**
 * The profiler server's HTTP API (profiler-ui/protocol.md). The token from the page URL rides on every
 * request (the server also sets a cookie, but an explicit token keeps a copied link working). Wire batches
 * are decoded by the server's own codec, `/lib/wire.js`.
 */

/**
 * @typedef {typeof import('../../../src/trace/wire.js')} WireCodec
 * @typedef {import('../../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('../../server/protocol.js').RunSummary} RunSummary
 */

/**
 * Where the server serves src/trace/wire.ts compiled (profiler-ui/server/paths.ts). Held in a variable so
 * the type-check takes the module's type from the source above rather than looking for this URL on disk.
 */
const WIRE_URL = '/lib/wire.js';

/** @type {WireCodec | false | null} */
let wire = null;

/**
 * The browser-safe wire codec the server serves; null when the page runs without a server.
 * @returns {Promise<WireCodec | null>}
 */
export async function loadWire() {
  if (wire !== null) return wire || null;
  try {
    wire = /** @type {WireCodec} */ (await import(WIRE_URL));
  } catch {
    wire = false;
  }
  return wire || null;
}

export function pageToken() {
  return new URLSearchParams(location.search).get('token');
}

export class ApiError extends Error {
  /**
   * @param {number} status  the HTTP status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @param {string | null} token  the page's access token (from its URL) */
export function createApi(token) {
  const withToken = (/** @type {string} */ path) => (token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path);

  /**
   * @param {string} path
   * @param {RequestInit} [init]
   */
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
    /**
     * The server's runs, newest first.
     * @returns {Promise<RunSummary[]>}
     */
    async runs() {
      return (await request('/api/runs')).json();
    },
    /**
     * A run's stored events, ordered by t.
     * @param {string} run
     * @returns {Promise<TraceEvent[]>}
     */
    async events(run) {
      const batch = await (await request(`/api/runs/${encodeURIComponent(run)}/events`)).json();
      const codec = await loadWire();
      return codec ? codec.unpackBatch(batch) : batch.events;
    },
    /**
     * Load a JSONL trace into the server; answers the run ids it held.
     * @param {string} text
     * @returns {Promise<string[]>}
     */
    async upload(text) {
      const res = await request('/api/traces', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: text });
      return (await res.json()).runs;
    },
    /**
     * Name a run (null clears the name); answers its new summary.
     * @param {string} run
     * @param {string | null} name
     * @returns {Promise<RunSummary>}
     */
    async rename(run, name) {
      const res = await request(`/api/runs/${encodeURIComponent(run)}/name`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      return res.json();
    },
    /** @param {string} run */
    traceUrl(run) {
      return withToken(`/api/runs/${encodeURIComponent(run)}/trace.jsonl`);
    },
    liveUrl() {
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      return withToken(`${proto}://${location.host}/ws/live`);
    },
  };
}
