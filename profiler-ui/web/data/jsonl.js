/**
 * Trace files dropped on the page: JSON lines as JsonlSink writes them (src/trace/jsonl-sink.ts), or a
 * wire batch. Checks what the views rely on and names the line of the first problem.
 */

/**
 * @typedef {import('../../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('../../../src/trace/schema.js').TraceEventType} TraceEventType
 */

/**
 * The schema's event types (src/trace/schema.ts's TRACE_EVENT_TYPES, which the page cannot import without
 * the server): a record, so that a type added to the schema fails the page's type-check until it is here.
 * @satisfies {Record<TraceEventType, true>}
 */
const KNOWN = {
  'run.start': true,
  'turn.start': true,
  image: true,
  span: true,
  salience: true,
  kept: true,
  retrieval: true,
  'decode.step': true,
  token: true,
  'turn.end': true,
  fidelity: true,
};
const TYPES = new Set(Object.keys(KNOWN));

/**
 * @param {string} text
 * @param {string} [name]
 * @returns {TraceEvent[]}
 */
export function parseTraceText(text, name = 'trace') {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{"v"') || trimmed.startsWith('{ "v"')) {
    try {
      const batch = JSON.parse(trimmed);
      if (Array.isArray(batch.events)) return batch.events.map((/** @type {unknown} */ e, /** @type {number} */ i) => check(e, name, `event ${i}`));
    } catch {
      // fall through: JSON lines
    }
  }
  const events = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let value;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`${name}, line ${i + 1}: not JSON (${/** @type {Error} */ (err).message})`);
    }
    events.push(check(value, name, `line ${i + 1}`));
  }
  return events;
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {string} where
 * @returns {TraceEvent}
 */
function check(value, name, where) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${name}, ${where}: expected an event object`);
  const e = /** @type {Record<string, unknown>} */ (value);
  if (typeof e.type !== 'string' || !TYPES.has(e.type)) throw new Error(`${name}, ${where}: unknown event type ${JSON.stringify(e.type)}`);
  if (typeof e.run !== 'string') throw new Error(`${name}, ${where}: '${e.type}' has no string 'run'`);
  if (typeof e.t !== 'number') throw new Error(`${name}, ${where}: '${e.type}' has no numeric 't'`);
  if (['salience', 'kept', 'retrieval'].some((t) => t === e.type) && [e.scores, e.kept, e.candidates].some((v) => v && !Array.isArray(v))) {
    throw new Error(`${name}, ${where}: packed arrays need the server (open the file through it)`);
  }
  return /** @type {TraceEvent} */ (/** @type {unknown} */ (e));
}
