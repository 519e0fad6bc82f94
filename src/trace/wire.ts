/**
 * The profiler's wire format: a batch of trace events as compact JSON text. Large numeric arrays travel
 * as base64 of little-endian binary instead of decimal JSON, which is several times smaller for salience
 * and retrieval scores (thousands of floats per event):
 *
 *   {"v":1,"events":[ ...events... ]}
 *   salience.scores, retrieval.scores  → {"$f32": base64 of little-endian Float32}
 *   kept.kept, retrieval.retrieved     → {"$i32": base64 of little-endian Int32}
 *   retrieval.candidates               → {"$pairs": base64 of little-endian Int32 pairs (image, token)}
 *
 * Packing is optional per field: a decoder accepts a plain array wherever a packed one may appear.
 * `decodeBatch` validates, since batches come over sockets and uploads.
 *
 * BROWSER-SAFE: the profiler page imports this file as-is (`/lib/wire.js`), so it uses no Node modules
 * (no Buffer) and imports only the schema and its checks (browser-safe too) and the error class.
 */
import { InputError } from '../errors.js';
import type { TraceEvent, VisualTokenId } from './schema.js';
import { boundsProblem, commonProblem, fieldsProblem } from './validate.js';

export const WIRE_VERSION = 1;

/** The JSON shape of a batch before unpacking. */
export interface WireBatch {
  v: typeof WIRE_VERSION;
  events: unknown[];
}

export type PackedF32 = { $f32: string };
export type PackedI32 = { $i32: string };
export type PackedPairs = { $pairs: string };

// ---------------------------------------------------------------------------------------------------------
// base64 over Uint8Array (standard alphabet, padded) — Buffer is Node-only and btoa works on strings.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE_TABLE: Int16Array = (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

export function bytesToBase64(bytes: Uint8Array): string {
  const parts: string[] = [];
  // Chunks keep each String.fromCharCode call's argument count well under engine limits.
  const CHUNK = 3 * 4096;
  for (let start = 0; start < bytes.length; start += CHUNK) {
    const end = Math.min(bytes.length, start + CHUNK);
    const codes: number[] = [];
    let i = start;
    for (; i + 2 < end; i += 3) {
      const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
      codes.push(ALPHABET.charCodeAt(n >> 18), ALPHABET.charCodeAt((n >> 12) & 63), ALPHABET.charCodeAt((n >> 6) & 63), ALPHABET.charCodeAt(n & 63));
    }
    const rest = end - i; // only the last chunk can have a remainder: CHUNK is a multiple of 3
    if (rest === 1) {
      const n = bytes[i]! << 16;
      codes.push(ALPHABET.charCodeAt(n >> 18), ALPHABET.charCodeAt((n >> 12) & 63), 61, 61);
    } else if (rest === 2) {
      const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
      codes.push(ALPHABET.charCodeAt(n >> 18), ALPHABET.charCodeAt((n >> 12) & 63), ALPHABET.charCodeAt((n >> 6) & 63), 61);
    }
    parts.push(String.fromCharCode(...codes));
  }
  return parts.join('');
}

/** Strict decoder: throws (a plain Error; callers wrap it with context) on bad length or characters. */
export function base64ToBytes(text: string): Uint8Array {
  if (text.length % 4 !== 0) throw new Error(`base64 length ${text.length} is not a multiple of 4`);
  let pad = 0;
  if (text.endsWith('==')) pad = 2;
  else if (text.endsWith('=')) pad = 1;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      let v: number;
      if (c === 61 && i + 4 === text.length && j >= 4 - pad) v = 0;
      else {
        v = c < 128 ? DECODE_TABLE[c]! : -1;
        if (v < 0) throw new Error(`invalid base64 character at ${i + j}`);
      }
      n = (n << 6) | v;
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Packing. DataView with explicit little-endian, so the format does not depend on the host's byte order.

function packF32(values: ArrayLike<number>): PackedF32 {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, Number(values[i]), true);
  return { $f32: bytesToBase64(new Uint8Array(view.buffer)) };
}

function isInt32Array(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) {
    const x = Number(values[i]);
    if ((x | 0) !== x) return false;
  }
  return true;
}

function packI32(values: ArrayLike<number>): PackedI32 {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, Number(values[i]), true);
  return { $i32: bytesToBase64(new Uint8Array(view.buffer)) };
}

function packPairs(ids: readonly VisualTokenId[]): PackedPairs {
  const view = new DataView(new ArrayBuffer(ids.length * 8));
  for (let i = 0; i < ids.length; i++) {
    view.setInt32(i * 8, ids[i]!.image, true);
    view.setInt32(i * 8 + 4, ids[i]!.token, true);
  }
  return { $pairs: bytesToBase64(new Uint8Array(view.buffer)) };
}

function isIdList(value: unknown): value is VisualTokenId[] {
  if (!Array.isArray(value)) return false;
  for (const id of value) {
    if (typeof id !== 'object' || id === null) return false;
    const { image, token } = id as VisualTokenId;
    if (typeof image !== 'number' || typeof token !== 'number' || (image | 0) !== image || (token | 0) !== token) return false;
  }
  return true;
}

function isNumberList(value: unknown): value is ArrayLike<number> {
  if (Array.isArray(value)) return value.every((x) => typeof x === 'number');
  return ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array);
}

/** JSON.stringify replacer for what remains: typed arrays as plain arrays, bigints as numbers. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? Number(x) : x));
  }
  if (typeof value === 'bigint') return Number(value);
  return value;
}

/** One event with its large arrays packed (a shallow copy; the event itself is not changed). */
function packEvent(event: TraceEvent): unknown {
  switch (event.type) {
    case 'salience':
      return isNumberList(event.scores) ? { ...event, scores: packF32(event.scores) } : event;
    case 'kept':
      return isNumberList(event.kept) && isInt32Array(event.kept) ? { ...event, kept: packI32(event.kept) } : event;
    case 'retrieval': {
      const out: Record<string, unknown> = { ...event };
      if (isNumberList(event.scores)) out.scores = packF32(event.scores);
      if (isNumberList(event.retrieved) && isInt32Array(event.retrieved)) out.retrieved = packI32(event.retrieved);
      if (isIdList(event.candidates)) out.candidates = packPairs(event.candidates);
      return out;
    }
    default:
      return event;
  }
}

/** A batch of events as wire text. Values JSON cannot hold (e.g. non-finite numbers outside packed arrays) become null, as with JSON.stringify. */
export function encodeBatch(events: readonly TraceEvent[]): string {
  return JSON.stringify({ v: WIRE_VERSION, events: events.map(packEvent) }, replacer);
}

/**
 * One event as packed JSON, for `joinBatch`. Producers that hold events for a while encode each one when
 * it is written: the engine may reuse the arrays it passed (a snapshot now is what it meant).
 */
export function encodeEvent(event: TraceEvent): string {
  return JSON.stringify(packEvent(event), replacer);
}

/** Wire text from events encoded by `encodeEvent` (equal to `encodeBatch` of the events). */
export function joinBatch(encoded: readonly string[]): string {
  return `{"v":${WIRE_VERSION},"events":[${encoded.join(',')}]}`;
}

// ---------------------------------------------------------------------------------------------------------
// Unpacking and validation.

class WireFault extends Error {}

function unpackBytes(value: Record<string, unknown>, key: string, field: string, multiple: number): DataView {
  const text = value[key];
  if (typeof text !== 'string') throw new WireFault(`${field}: '${key}' must be a base64 string`);
  let bytes: Uint8Array;
  try {
    bytes = base64ToBytes(text);
  } catch (err) {
    throw new WireFault(`${field}: ${(err as Error).message}`);
  }
  if (bytes.length % multiple !== 0) throw new WireFault(`${field}: ${bytes.length} bytes is not a multiple of ${multiple}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isPacked(value: unknown, key: string): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && key in value;
}

function unpackF32(value: unknown, field: string): number[] {
  if (Array.isArray(value)) {
    // Plain JSON arrays may hold null where the writer had a non-finite number.
    if (!value.every((x) => typeof x === 'number' || x === null)) throw new WireFault(`${field}: expected numbers`);
    return value as number[];
  }
  if (!isPacked(value, '$f32')) throw new WireFault(`${field}: expected an array or {"$f32": base64}`);
  const view = unpackBytes(value, '$f32', field, 4);
  const out = new Array<number>(view.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function unpackI32(value: unknown, field: string): number[] {
  if (Array.isArray(value)) {
    if (!value.every((x) => typeof x === 'number')) throw new WireFault(`${field}: expected numbers`);
    return value as number[];
  }
  if (!isPacked(value, '$i32')) throw new WireFault(`${field}: expected an array or {"$i32": base64}`);
  const view = unpackBytes(value, '$i32', field, 4);
  const out = new Array<number>(view.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
  return out;
}

function unpackPairs(value: unknown, field: string): VisualTokenId[] {
  if (Array.isArray(value)) {
    if (!isIdList(value)) throw new WireFault(`${field}: expected {image, token} objects`);
    return value;
  }
  if (!isPacked(value, '$pairs')) throw new WireFault(`${field}: expected an array or {"$pairs": base64}`);
  const view = unpackBytes(value, '$pairs', field, 8);
  const out = new Array<VisualTokenId>(view.byteLength / 8);
  for (let i = 0; i < out.length; i++) out[i] = { image: view.getInt32(i * 8, true), token: view.getInt32(i * 8 + 4, true) };
  return out;
}

/**
 * Check the bounds and the fields every event has, unpack the packed ones, then check the type's own
 * fields (src/trace/validate.ts). Throws WireFault naming the problem.
 */
function unpackEvent(value: unknown): TraceEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireFault('expected an object');
  const e = value as Record<string, unknown>;
  const problem = boundsProblem(e) ?? commonProblem(e);
  if (problem) throw new WireFault(problem);
  let out: Record<string, unknown>;
  switch (e.type) {
    case 'salience':
      out = { ...e, scores: unpackF32(e.scores, 'salience.scores') };
      break;
    case 'kept':
      out = { ...e, kept: unpackI32(e.kept, 'kept.kept') };
      break;
    case 'retrieval':
      out = {
        ...e,
        candidates: unpackPairs(e.candidates, 'retrieval.candidates'),
        scores: unpackF32(e.scores, 'retrieval.scores'),
        retrieved: unpackI32(e.retrieved, 'retrieval.retrieved'),
      };
      break;
    default:
      out = e;
  }
  const fields = fieldsProblem(out);
  if (fields) throw new WireFault(fields);
  return out as unknown as TraceEvent;
}

function wireError(message: string, cause?: unknown): InputError {
  return new InputError('OPTION_INVALID', `wire batch: ${message}`, {
    subject: 'wire batch',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Parse and validate wire text; throws InputError 'OPTION_INVALID' naming the event and the problem. */
export function decodeBatch(text: string): TraceEvent[] {
  if (typeof text !== 'string') throw wireError(`expected text, got ${typeof text}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw wireError(`not valid JSON (${(err as Error).message})`, err);
  }
  return unpackBatch(value);
}

/**
 * Validate and unpack a batch that is already parsed — e.g. the `batch` object embedded in a profiler
 * `events` message, which the page gets from one JSON.parse of the whole message.
 */
export function unpackBatch(value: unknown): TraceEvent[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw wireError('expected a JSON object {"v":1,"events":[...]}');
  const batch = value as Record<string, unknown>;
  if (batch.v !== WIRE_VERSION) throw wireError(`wire version ${JSON.stringify(batch.v)}; this reader understands version ${WIRE_VERSION}`);
  if (!Array.isArray(batch.events)) throw wireError("'events' must be an array");
  const events: TraceEvent[] = new Array(batch.events.length);
  for (let i = 0; i < batch.events.length; i++) {
    try {
      events[i] = unpackEvent(batch.events[i]);
    } catch (err) {
      if (!(err instanceof WireFault)) throw err;
      const type = (batch.events[i] as { type?: unknown } | null)?.type;
      throw wireError(`event ${i}${typeof type === 'string' ? ` ('${type}')` : ''}: ${err.message}`);
    }
  }
  return events;
}

/** Validate one event object (as `decodeBatch` does each event of a batch), unpacking packed fields. */
export function validateEvent(value: unknown): TraceEvent {
  try {
    return unpackEvent(value);
  } catch (err) {
    if (!(err instanceof WireFault)) throw err;
    const type = (value as { type?: unknown } | null)?.type;
    throw wireError(`event${typeof type === 'string' ? ` ('${type}')` : ''}: ${err.message}`);
  }
}
