/**
 * The schema, checked: what is wrong with an event object that claims to be a trace event, or null. Every
 * reader runs it where events enter — the wire decoder (profiler ingest, the page), the JSON-lines reader
 * (uploads, `--load`, the data dir) — so the server and the page can read every field the schema names
 * without guarding each access.
 *
 * Bounds come first, on the raw value and without recursion: nesting past `MAX_EVENT_DEPTH` or more than
 * `MAX_EVENT_VALUES` values would let one event overflow the stack of a later JSON.stringify (a replay, a
 * multi-run broadcast) or hold the event loop; the engine's own events nest four deep at most.
 *
 * BROWSER-SAFE, like wire.ts: no Node modules; imports only the schema.
 */
import { TRACE_EVENT_TYPES, runStartProblem, type Stage, type TraceEventType } from './schema.js';

/** Deepest nesting of objects and arrays in one event (the event itself is depth 1). */
export const MAX_EVENT_DEPTH = 32;
/**
 * Most values (objects, arrays, scalars, counting array elements) in one event, before unpacking: room for
 * a long video's retrieval set written as plain {image, token} objects (a JSON-lines file, an in-process
 * event: 1.4 M candidates), while one event cannot hold the event loop for long.
 */
export const MAX_EVENT_VALUES = 1 << 22;
/** Longest run id: ids name files and travel in every message. */
export const MAX_RUN_ID_LENGTH = 256;

type Obj = Readonly<Record<string, unknown>>;

const STAGES: ReadonlySet<string> = new Set(
  Object.keys({ images: 1, encode: 1, prune: 1, prefill: 1, retrieve: 1, decode: 1, fidelity: 1 } satisfies Record<Stage, 1>),
);

/**
 * Depth and count of the values in `root`, walked with an explicit stack (two parallel arrays: no
 * allocation per value, since events carry thousands of `{image, token}` ids); a problem as text, or null.
 */
export function boundsProblem(root: unknown): string | null {
  const stack: unknown[] = [root];
  const depths: number[] = [1];
  let values = 1;
  while (stack.length) {
    const value = stack.pop() as object;
    const depth = depths.pop()!;
    if (depth > MAX_EVENT_DEPTH) return `event nests deeper than ${MAX_EVENT_DEPTH} levels`;
    if (Array.isArray(value)) {
      values += value.length;
      if (values > MAX_EVENT_VALUES) return `event has more than ${MAX_EVENT_VALUES} values`;
      for (let i = 0; i < value.length; i++) {
        const child: unknown = value[i];
        if (typeof child === 'object' && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    } else if (typeof value === 'object' && value !== null) {
      for (const key in value) {
        if (++values > MAX_EVENT_VALUES) return `event has more than ${MAX_EVENT_VALUES} values`;
        const child: unknown = (value as Record<string, unknown>)[key];
        if (typeof child === 'object' && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return null;
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
/** Measured values may be null: JSON writes a non-finite measurement as null. */
const isMeasure = (x: unknown): boolean => x === null || isNum(x);
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The first of `keys` of `e` that is not a finite number, as a problem, or null. */
function numbers(e: Obj, keys: readonly string[]): string | null {
  for (const k of keys) if (!isNum(e[k])) return `'${k}' must be a finite number, got ${brief(e[k])}`;
  return null;
}

function strings(e: Obj, keys: readonly string[]): string | null {
  for (const k of keys) if (typeof e[k] !== 'string') return `'${k}' must be a string, got ${brief(e[k])}`;
  return null;
}

function record(e: Obj, key: string, ok: (x: unknown) => boolean, what: string): string | null {
  const value = e[key];
  if (!isObj(value)) return `'${key}' must be an object, got ${brief(value)}`;
  for (const [k, x] of Object.entries(value)) if (!ok(x)) return `'${key}.${k}' must be ${what}, got ${brief(x)}`;
  return null;
}

function numberList(e: Obj, key: string): string | null {
  const value = e[key];
  if (!Array.isArray(value)) return `'${key}' must be an array, got ${brief(value)}`;
  for (let i = 0; i < value.length; i++) if (!isMeasure(value[i])) return `'${key}[${i}]' must be a number, got ${brief(value[i])}`;
  return null;
}

function brief(x: unknown): string {
  if (x === undefined) return 'nothing';
  if (typeof x === 'object') return x === null ? 'null' : Array.isArray(x) ? 'an array' : 'an object';
  const text = JSON.stringify(x) ?? String(x);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** The fields every event has. */
export function commonProblem(e: Obj): string | null {
  if (typeof e.type !== 'string' || !TRACE_EVENT_TYPES.has(e.type as TraceEventType)) {
    return `unknown event type ${brief(e.type)} (known: ${[...TRACE_EVENT_TYPES].join(', ')})`;
  }
  if (typeof e.run !== 'string') return `'${e.type}' event has no string 'run'`;
  if (e.run.length > MAX_RUN_ID_LENGTH) return `'${e.type}' event's run id is ${e.run.length} characters (at most ${MAX_RUN_ID_LENGTH})`;
  if (!isNum(e.t)) return `'${e.type}' event has no finite number 't'`;
  return null;
}

/**
 * The type's own fields, on an event whose common fields are checked and whose packed arrays (wire.ts) are
 * already unpacked. Null when every field the schema names has its type.
 */
export function fieldsProblem(e: Obj): string | null {
  switch (e.type as TraceEventType) {
    case 'run.start': {
      const version = runStartProblem(e);
      if (version) return version;
      const model = e.model;
      if (!isObj(model)) return `'model' must be an object, got ${brief(model)}`;
      const m =
        strings(model, ['dir', 'vision', 'text', ...['provider', 'device'].filter((k) => model[k] !== undefined)]) ??
        numbers(model, ['layers', 'heads', 'kvHeads', 'imageTokens', ...(model.deviceMemoryBytes === undefined ? [] : ['deviceMemoryBytes'])]);
      if (m) return `model: ${m}`;
      if (!isObj(e.policy) || typeof e.policy.method !== 'string') return `'policy' must be an object with a string 'method'`;
      if (!isObj(e.options)) return `'options' must be an object, got ${brief(e.options)}`;
      return null;
    }
    case 'turn.start':
      return numbers(e, ['turn', 'images']) ?? strings(e, ['text']);
    case 'image':
      return (
        numbers(e, ['turn', 'image', 'width', 'height']) ??
        strings(e, ['jpeg', ...(e.file === undefined ? [] : ['file'])]) ??
        (e.timestamps === undefined ? null : numberList(e, 'timestamps'))
      );
    case 'span':
      if (typeof e.stage !== 'string' || !STAGES.has(e.stage)) return `'stage' must be one of ${[...STAGES].join(', ')}, got ${brief(e.stage)}`;
      return numbers(e, ['turn']) ?? measures(e, ['start', 'duration']) ?? (e.detail === undefined ? null : record(e, 'detail', isMeasure, 'a number'));
    case 'salience': {
      const p = numbers(e, ['turn', 'image', 'leading']);
      if (p) return p;
      if (e.source !== 'cls' && e.source !== 'received' && e.source !== 'summary') return `'source' must be cls, received or summary, got ${brief(e.source)}`;
      if (!isObj(e.grid) || numbers(e.grid, ['rows', 'cols'])) return `'grid' must be {rows, cols} numbers`;
      return numberList(e, 'scores');
    }
    case 'kept':
      return numbers(e, ['turn', 'image', 'total']) ?? numberList(e, 'kept');
    case 'retrieval':
      // candidates are checked by the unpacking (wire.ts) or below as {image, token} pairs.
      if (!Array.isArray(e.candidates)) return `'candidates' must be an array of {image, token}`;
      for (const c of e.candidates as unknown[]) if (!isObj(c) || !isNum(c.image) || !isNum(c.token)) return `'candidates' must be an array of {image, token}`;
      return numbers(e, ['turn', 'layer', ...(e.step === undefined ? [] : ['step'])]) ?? numberList(e, 'scores') ?? numberList(e, 'retrieved');
    case 'decode.step':
      return (
        numbers(e, ['turn', 'step', 'attended', 'visualAttended']) ??
        measures(e, ['ms']) ??
        numbers(
          e,
          ['hostToDeviceBytes', 'deviceToHostBytes'].filter((k) => e[k] !== undefined),
        )
      );
    case 'token':
      return numbers(e, ['turn', 'step', 'id']) ?? strings(e, ['text']);
    case 'turn.end':
      if (e.stopReason !== 'eos' && e.stopReason !== 'length') return `'stopReason' must be eos or length, got ${brief(e.stopReason)}`;
      return numbers(e, ['turn']) ?? strings(e, ['answer']) ?? record(e, 'metrics', isMeasure, 'a number');
    case 'fidelity':
      return (
        numbers(e, ['turn']) ?? record(e, 'metrics', (x) => isMeasure(x) || (Array.isArray(x) && x.every(isMeasure)), 'a number, a list of numbers or null')
      );
    default:
      return null;
  }
}

function measures(e: Obj, keys: readonly string[]): string | null {
  for (const k of keys) if (!isMeasure(e[k])) return `'${k}' must be a number, got ${brief(e[k])}`;
  return null;
}
