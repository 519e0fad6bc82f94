/**
 * Streaming safetensors writer: single files and sharded checkpoints (`model-0000i-of-0000n.safetensors` plus
 * `model.safetensors.index.json`), float tensors encoded to F32 / F16 / BF16.
 *
 * The header must hold every tensor's offsets before the first data byte, so sizes are computed from the
 * shapes up front; then each tensor's data is produced (a callback, optionally yielding chunks) and written
 * in turn. Only one tensor, or one chunk of one, is in memory at a time, so a checkpoint of any size can be
 * written. Files are written under a temporary name and renamed into place when complete.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import { DTYPE_BYTES, INDEX_FILE, type DecodableDtype } from './safetensors.js';

/** The float dtypes the writer can encode from float32 values. */
export type WritableFloatDtype = DecodableDtype;

/** Tensor data: float values (encoded to the tensor's float dtype) or little-endian bytes written verbatim. */
export type TensorChunk = Float32Array | Uint8Array;
/** One array, or chunks written back to back (generated lazily by an iterator, so a huge tensor never exists whole). */
export type TensorData = TensorChunk | Iterable<TensorChunk>;

/** One tensor to write. Give exactly one of `values`, `raw` and `generate`. */
export interface TensorToWrite {
  name: string;
  /** A safetensors dtype. Float values can be given for F32 / F16 / BF16; any dtype accepts `raw` bytes. */
  dtype: WritableFloatDtype | string;
  shape: number[];
  values?: Float32Array;
  raw?: Uint8Array;
  /**
   * Called once, when this tensor's turn to be written comes (tensors are written in list order), so the
   * data of the tensors before it can already be garbage. Its total size must match `shape` and `dtype`.
   */
  generate?: () => TensorData;
}

export interface WrittenSafetensors {
  file: string;
  /** File size in bytes. */
  size: number;
  /** Bytes of tensor data (the file minus its header). */
  dataBytes: number;
}

export interface CheckpointWriteOptions {
  /** Split over this many shards by tensor count (ceil(tensors / shards) each, in order). Default 1. */
  shards?: number;
  /** Or split greedily so no shard's data exceeds this many bytes (a tensor larger than it gets its own shard). */
  maxShardBytes?: number;
  /** `__metadata__` of every file. Default `{ format: 'pt' }`. */
  metadata?: Record<string, string>;
}

export interface WrittenCheckpoint {
  /** Weight files, in order. */
  files: string[];
  /** The sharded index (absent for a single `model.safetensors`). */
  index?: { metadata: { total_size: number }; weight_map: Record<string, string> };
  /** Bytes of tensor data over all files. */
  totalSize: number;
}

const FLOAT_DTYPES = new Set<string>(['F32', 'F16', 'BF16']);
const LITTLE_ENDIAN = os.endianness() === 'LE';
/** writeSync takes an int32 length; write big buffers in pieces below that. */
const WRITE_CHUNK = 1 << 30;

/** Round float32 values to what `dtype` stores (so callers know the exact values a reader decodes). */
export function roundToDtype(dtype: WritableFloatDtype, values: Float32Array): Float32Array {
  if (dtype === 'F32') return Float32Array.from(values);
  const bytes = encodeFloats(dtype, values);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(values.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'F16') out[i] = getFloat16(view, 2 * i, true);
    else bits[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

/** Encode float32 values as little-endian F32 / F16 (round-to-nearest-even) / BF16 (round-to-nearest-even). Returns fresh bytes. */
export function encodeFloats(dtype: WritableFloatDtype, values: Float32Array): Uint8Array {
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) return new Uint8Array(Float32Array.from(values).buffer);
    const view = new DataView(new ArrayBuffer(values.length * 4));
    for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i]!, true);
    return new Uint8Array(view.buffer);
  }
  if (dtype !== 'F16' && dtype !== 'BF16') throw new RangeError(`cannot encode float values as ${String(dtype)}`);
  const view = new DataView(new ArrayBuffer(values.length * 2));
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) setFloat16(view, 2 * i, values[i]!, true);
  } else {
    const bits = LITTLE_ENDIAN ? new Uint32Array(values.buffer, values.byteOffset, values.length) : new Uint32Array(Float32Array.from(values).buffer);
    for (let i = 0; i < values.length; i++) {
      const b = bits[i]!;
      view.setUint16(2 * i, (b + 0x7fff + ((b >>> 16) & 1)) >>> 16, true);
    }
  }
  return new Uint8Array(view.buffer);
}

/** Bytes of a tensor as it will be written: from the given data when eager, else from shape × dtype size. */
function byteLengthOf(t: TensorToWrite): number {
  const given = [t.values, t.raw, t.generate].filter((x) => x !== undefined).length;
  if (given > 1) throw new RangeError(`tensor ${t.name}: give one of values, raw and generate`);
  if (t.raw) return t.raw.byteLength;
  const per = DTYPE_BYTES[t.dtype];
  if (t.values) {
    if (!FLOAT_DTYPES.has(t.dtype)) throw new RangeError(`tensor ${t.name}: float values cannot be written as ${t.dtype}; give raw bytes`);
    return t.values.length * per!;
  }
  if (!t.generate) return 0; // an empty tensor
  if (per === undefined) throw new RangeError(`tensor ${t.name}: unknown dtype ${t.dtype}`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`tensor ${t.name}: bad shape [${t.shape}]`);
  return t.shape.reduce((a, b) => a * b, 1) * per;
}

function* chunksOf(t: TensorToWrite): Iterable<TensorChunk> {
  if (t.raw) yield t.raw;
  else if (t.values) yield t.values;
  else if (t.generate) {
    const data = t.generate();
    if (ArrayBuffer.isView(data)) yield data;
    else yield* data;
  }
}

function toBytes(t: TensorToWrite, chunk: TensorChunk): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (!(chunk instanceof Float32Array)) throw new TypeError(`tensor ${t.name}: data must be Float32Array or Uint8Array chunks`);
  if (!FLOAT_DTYPES.has(t.dtype)) throw new RangeError(`tensor ${t.name}: float values cannot be written as ${t.dtype}; give raw bytes`);
  if (t.dtype === 'F32' && LITTLE_ENDIAN) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return encodeFloats(t.dtype as WritableFloatDtype, chunk);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength;) {
    done += fs.writeSync(fd, bytes, done, Math.min(WRITE_CHUNK, bytes.byteLength - done));
  }
}

/** The header as written: u64 LE length, then JSON padded with spaces to a multiple of 8 bytes. */
function headerBytes(tensors: readonly TensorToWrite[], sizes: readonly number[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  tensors.forEach((t, i) => {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + sizes[i]!] };
    offset += sizes[i]!;
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([prefix, Buffer.from(json, 'utf8')]);
}

/**
 * Write one safetensors file: the header first (from the shapes), then each tensor's data in list order.
 * Throws, leaving no file, if a tensor's data does not match the size its dtype and shape imply.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): WrittenSafetensors {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name) || t.name === '__metadata__') throw new RangeError(`tensor name ${t.name} is duplicated or reserved`);
    names.add(t.name);
  }
  const sizes = tensors.map(byteLengthOf);
  const header = headerBytes(tensors, sizes, metadata);
  const tmp = `${file}.partial-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  let ok = false;
  try {
    writeAll(fd, header);
    tensors.forEach((t, i) => {
      let written = 0;
      for (const chunk of chunksOf(t)) {
        const bytes = toBytes(t, chunk);
        written += bytes.byteLength;
        if (written > sizes[i]!) break;
        writeAll(fd, bytes);
      }
      if (written !== sizes[i]) {
        throw new RangeError(`tensor ${t.name}: ${t.dtype} [${t.shape}] takes ${sizes[i]} bytes but its data gave ${written > sizes[i]! ? 'more' : written}`);
      }
    });
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (ok) fs.renameSync(tmp, file);
    else fs.rmSync(tmp, { force: true });
  }
  const dataBytes = sizes.reduce((a, b) => a + b, 0);
  return { file, size: header.byteLength + dataBytes, dataBytes };
}

/** Shard file name in the Hugging Face pattern, 1-based. */
export function shardFileName(index: number, count: number): string {
  return `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

/**
 * Write a checkpoint's weights into `dir`: `model.safetensors`, or (with `shards` > 1 or `maxShardBytes`)
 * `model-0000i-of-0000n.safetensors` files plus `model.safetensors.index.json`.
 */
export function writeSafetensorsCheckpoint(dir: string, tensors: readonly TensorToWrite[], options: CheckpointWriteOptions = {}): WrittenCheckpoint {
  const metadata = options.metadata ?? { format: 'pt' };
  fs.mkdirSync(dir, { recursive: true });
  const groups = splitShards(tensors, options);
  if (groups.length <= 1 && !options.maxShardBytes) {
    const w = writeSafetensors(path.join(dir, 'model.safetensors'), tensors, metadata);
    return { files: [w.file], totalSize: w.dataBytes };
  }
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let totalSize = 0;
  groups.forEach((group, s) => {
    const base = shardFileName(s, groups.length);
    for (const t of group) weightMap[t.name] = base;
    const w = writeSafetensors(path.join(dir, base), group, metadata);
    files.push(w.file);
    totalSize += w.dataBytes;
  });
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify(index, null, 1));
  return { files, index, totalSize };
}

function splitShards(tensors: readonly TensorToWrite[], options: CheckpointWriteOptions): TensorToWrite[][] {
  if (options.maxShardBytes !== undefined) {
    if (options.shards !== undefined) throw new RangeError('give shards or maxShardBytes, not both');
    const groups: TensorToWrite[][] = [[]];
    let bytes = 0;
    for (const t of tensors) {
      const size = byteLengthOf(t);
      if (groups.at(-1)!.length && bytes + size > options.maxShardBytes) {
        groups.push([]);
        bytes = 0;
      }
      groups.at(-1)!.push(t);
      bytes += size;
    }
    return groups;
  }
  const n = options.shards ?? 1;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`shards must be a positive integer, got ${n}`);
  if (n === 1) return [[...tensors]];
  const per = Math.ceil(tensors.length / n);
  return Array.from({ length: n }, (_, s) => tensors.slice(s * per, (s + 1) * per));
}
