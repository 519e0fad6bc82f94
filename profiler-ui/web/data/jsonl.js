/**
 * Trace files dropped on the page: JSON lines as JsonlSink writes them (src/trace/jsonl-sink.ts), or a
 * wire batch. Checks what the views rely on and names the line of the first problem.
 */
const TYPES = new Set(['run.start', 'turn.start', 'image', 'span', 'salience', 'kept', 'retrieval', 'decode.step', 'token', 'turn.end', 'fidelity']);

export function parseTraceText(text, name = 'trace') {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{"v"') || trimmed.startsWith('{ "v"')) {
    try {
      const batch = JSON.parse(trimmed);
      if (Array.isArray(batch.events)) return batch.events.map((e, i) => check(e, name, `event ${i}`));
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
      throw new Error(`${name}, line ${i + 1}: not JSON (${err.message})`);
    }
    events.push(check(value, name, `line ${i + 1}`));
  }
  return events;
}

function check(e, name, where) {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Error(`${name}, ${where}: expected an event object`);
  if (!TYPES.has(e.type)) throw new Error(`${name}, ${where}: unknown event type ${JSON.stringify(e.type)}`);
  if (typeof e.run !== 'string') throw new Error(`${name}, ${where}: '${e.type}' has no string 'run'`);
  if (typeof e.t !== 'number') throw new Error(`${name}, ${where}: '${e.type}' has no numeric 't'`);
  if (['salience', 'kept', 'retrieval'].some((t) => t === e.type) && [e.scores, e.kept, e.candidates].some((v) => v && !Array.isArray(v))) {
    throw new Error(`${name}, ${where}: packed arrays need the server (open the file through it)`);
  }
  return e;
}
