/**
 * Lazy safetensors reader. Only headers are held in memory; `read()` seeks to one tensor and decodes it to a
 * fresh Float32Array, so a 7B checkpoint is never held twice. Format:
 * https://github.com/huggingface/safetensors#format — u64 LE header length N, N bytes of JSON header
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}`), then the data block; offsets
 * are relative to the data block.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getFloat16 } from '@petamoriken/float16';
import { CheckpointError } from '../errors.js';

/** Bytes per element of every dtype the format defines, so sizes can be validated even for dtypes we don't decode. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};
export type DecodableDtype = 'F32' | 'F16' | 'BF16';
const DECODABLE = new Set<string>(['F32', 'F16', 'BF16']);

/** The reference implementation refuses headers above 100 MB; a larger value means a corrupt length prefix. */
const MAX_HEADER_BYTES = 100_000_000;
/** readSync takes an int32 length; read big tensors in chunks below that. */
const READ_CHUNK = 1 << 30;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in `file`. */
  readonly offset: number;
  readonly byteLength: number;
  readonly file: string;
}

function corrupt(file: string, what: string, tensor?: string, cause?: unknown): CheckpointError {
  const where = tensor === undefined ? file : `${file} (tensor ${tensor})`;
  return new CheckpointError('CHECKPOINT_CORRUPT', `Corrupt safetensors file ${where}: ${what}`, {
    subject: tensor === undefined ? file : `${file}:${tensor}`,
    cause,
  });
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readFully(fd: number, target: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < target.byteLength) {
    const want = Math.min(READ_CHUNK, target.byteLength - done);
    const got = fs.readSync(fd, target, done, want, position + done);
    if (got === 0) throw corrupt(file, `unexpected end of file at byte ${position + done}`, tensor);
    done += got;
  }
}

let f16Table: Float32Array | undefined;
/** All 65536 half-precision values, decoded once by @petamoriken/float16 (correct subnormals, inf, NaN). */
function halfTable(): Float32Array {
  if (f16Table === undefined) {
    const t = new Float32Array(65536);
    const view = new DataView(new ArrayBuffer(2));
    for (let i = 0; i < 65536; i++) {
      view.setUint16(0, i, true);
      t[i] = getFloat16(view, 0, true);
    }
    f16Table = t;
  }
  return f16Table;
}

/** Decode raw little-endian bytes of a decodable dtype into float32. Exported for tests. */
export function decodeToFloat32(dtype: DecodableDtype, bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
    return out;
  }
  // Copy into an aligned buffer so the Uint16Array view is legal whatever the source offset.
  const halves = new Uint16Array(count);
  new Uint8Array(halves.buffer).set(bytes.subarray(0, count * 2));
  return decodeHalves(dtype, halves, out);
}

function decodeHalves(dtype: 'F16' | 'BF16', halves: Uint16Array, out: Float32Array): Float32Array {
  const count = halves.length;
  if (dtype === 'BF16') {
    // bfloat16 is the upper half of an IEEE float32: shift into the high 16 bits.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = (halves[i] as number) << 16;
  } else {
    const table = halfTable();
    for (let i = 0; i < count; i++) out[i] = table[halves[i] as number] as number;
  }
  return out;
}

/** Files up to this size are fingerprinted whole; larger ones by CONTENT_SAMPLE_BLOCKS blocks. */
const CONTENT_SAMPLE_WHOLE = 64 << 20;
const CONTENT_SAMPLE_BLOCKS = 64;
const CONTENT_SAMPLE_BLOCK = 64 << 10;

/** One open safetensors file: parsed, validated header plus an open descriptor for lazy reads. */
export class SafetensorsFile {
  readonly path: string;
  readonly size: number;
  /** The 8-byte length prefix plus JSON header, verbatim (for fingerprints). */
  readonly headerBytes: Buffer;
  readonly metadata: Record<string, string>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private fd: number | undefined;

  constructor(file: string) {
    this.path = file;
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (cause) {
      throw new CheckpointError('CHECKPOINT_NOT_FOUND', `Cannot open safetensors file ${file}`, { subject: file, cause });
    }
    try {
      const stat = fs.fstatSync(fd);
      // Linux opens a folder for reading; only the first read fails (EISDIR).
      if (!stat.isFile()) throw corrupt(file, stat.isDirectory() ? 'it is a folder, not a safetensors file' : 'it is not a regular file');
      this.size = stat.size;
      if (this.size < 8) throw corrupt(file, `file is ${this.size} bytes, shorter than the 8-byte header length`);
      const prefix = Buffer.alloc(8);
      readFully(fd, prefix, 0, file);
      const n = prefix.readBigUInt64LE(0);
      if (n > BigInt(Math.min(MAX_HEADER_BYTES, this.size - 8))) {
        throw corrupt(file, `header length ${n} exceeds the file size ${this.size} (truncated or not safetensors)`);
      }
      const headerLen = Number(n);
      const json = Buffer.alloc(headerLen);
      readFully(fd, json, 8, file);
      this.headerBytes = Buffer.concat([prefix, json]);
      const parsed = parseHeaderJson(json, file);
      const dataStart = 8 + headerLen;
      const { tensors, metadata } = validateHeader(parsed, file, dataStart, this.size);
      this.tensors = tensors;
      this.metadata = metadata;
      this.fd = fd;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /**
   * The tensor data's bytes for a fingerprint: all of it up to CONTENT_SAMPLE_WHOLE, else CONTENT_SAMPLE_BLOCKS
   * evenly spaced blocks of CONTENT_SAMPLE_BLOCK bytes (first and last included). Retraining or fine-tuning in
   * place changes the data but not the names, shapes or size, so the header alone would not see it; reading a
   * sample keeps opening a 14 GB checkpoint at a few MB of reads.
   */
  contentSample(): Buffer {
    if (this.fd === undefined) throw new CheckpointError('CHECKPOINT_CORRUPT', `${this.path} is closed`, { subject: this.path });
    const start = this.headerBytes.length;
    const data = this.size - start;
    if (data <= CONTENT_SAMPLE_WHOLE) {
      const all = Buffer.alloc(data);
      readFully(this.fd, all, start, this.path);
      return all;
    }
    const out = Buffer.alloc(CONTENT_SAMPLE_BLOCKS * CONTENT_SAMPLE_BLOCK);
    const stride = (data - CONTENT_SAMPLE_BLOCK) / (CONTENT_SAMPLE_BLOCKS - 1);
    for (let i = 0; i < CONTENT_SAMPLE_BLOCKS; i++) {
      const block = out.subarray(i * CONTENT_SAMPLE_BLOCK, (i + 1) * CONTENT_SAMPLE_BLOCK);
      readFully(this.fd, block, start + Math.floor(i * stride), this.path);
    }
    return out;
  }

  /** Read one tensor, decoded to a fresh float32 array. */
  read(name: string): Float32Array {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new CheckpointError('TENSOR_MISSING', `Tensor ${name} is not in ${this.path}`, { subject: name });
    }
    if (!DECODABLE.has(info.dtype)) {
      throw new CheckpointError('TENSOR_DTYPE', `Tensor ${name} in ${this.path} has dtype ${info.dtype}; supported: F32, F16, BF16`, {
        subject: `${name}:${info.dtype}`,
      });
    }
    if (this.fd === undefined) throw new CheckpointError('CHECKPOINT_CORRUPT', `${this.path} is closed`, { subject: this.path });
    const count = info.shape.reduce((a, b) => a * b, 1);
    const dtype = info.dtype as DecodableDtype;
    if (dtype === 'F32') {
      // Read straight into the result: no intermediate copy.
      const out = new Float32Array(count);
      readFully(this.fd, new Uint8Array(out.buffer), info.offset, this.path, name);
      return out;
    }
    // Read the 16-bit words straight into an aligned array, then widen: peak memory is 1.5× the result.
    const halves = new Uint16Array(count);
    readFully(this.fd, new Uint8Array(halves.buffer), info.offset, this.path, name);
    return decodeHalves(dtype, halves, new Float32Array(count));
  }

  /** Read one tensor's bytes as stored, after checking that its dtype is `dtype` (packed quantized weights). */
  readRaw(name: string, dtype: string): Uint8Array {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new CheckpointError('TENSOR_MISSING', `Tensor ${name} is not in ${this.path}`, { subject: name });
    }
    if (info.dtype !== dtype) {
      throw new CheckpointError('TENSOR_DTYPE', `Tensor ${name} in ${this.path} has dtype ${info.dtype}; expected ${dtype}`, {
        subject: `${name}:${info.dtype}`,
      });
    }
    if (this.fd === undefined) throw new CheckpointError('CHECKPOINT_CORRUPT', `${this.path} is closed`, { subject: this.path });
    // A fresh buffer of its own, so typed views of any width over it are aligned.
    const out = new Uint8Array(info.byteLength);
    readFully(this.fd, out, info.offset, this.path, name);
    return out;
  }

  /** Read one I32 tensor (AutoAWQ's packed qweight / qzeros). */
  readInt32(name: string): Int32Array {
    return new Int32Array(this.readRaw(name, 'I32').buffer);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function parseHeaderJson(json: Buffer, file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (cause) {
    throw corrupt(file, `header is not valid JSON (${(cause as Error).message})`, undefined, cause);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw corrupt(file, 'header JSON is not an object');
  }
  return parsed as Record<string, unknown>;
}

function validateHeader(
  header: Record<string, unknown>,
  file: string,
  dataStart: number,
  fileSize: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry !== null && typeof entry === 'object') metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== 'object') throw corrupt(file, 'entry is not an object', name);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw corrupt(file, `unknown dtype ${JSON.stringify(dtype)}`, name);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw corrupt(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
      throw corrupt(file, `data_offsets ${JSON.stringify(offsets)} are not [begin, end] with begin <= end`, name);
    }
    const [begin, end] = offsets as [number, number];
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * (DTYPE_BYTES[dtype] as number);
    if (end - begin !== expected) {
      throw corrupt(file, `data_offsets span ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`, name);
    }
    if (dataStart + end > fileSize) {
      throw corrupt(file, `data ends at byte ${dataStart + end} but the file has ${fileSize} bytes (truncated)`, name);
    }
    spans.push([begin, end, name]);
    tensors.set(name, { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: expected, file });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1] as [number, number, string];
    const cur = spans[i] as [number, number, string];
    if (cur[0] < prev[1]) throw corrupt(file, `data overlaps tensor ${prev[2]}`, cur[2]);
  }
  return { tensors, metadata };
}

/** A set of safetensors files viewed as one name → tensor map (one file, or shards via the index). */
export class TensorStore {
  readonly files: readonly SafetensorsFile[];
  private readonly byName = new Map<string, SafetensorsFile>();

  constructor(files: readonly SafetensorsFile[], weightMap?: Record<string, string>, indexPath?: string) {
    this.files = files;
    const byBase = new Map(files.map((f) => [path.basename(f.path), f]));
    if (weightMap !== undefined) {
      for (const [name, shard] of Object.entries(weightMap)) {
        const f = byBase.get(shard);
        if (f === undefined || !f.tensors.has(name)) {
          throw new CheckpointError('CHECKPOINT_CORRUPT', `${indexPath ?? 'index'} maps tensor ${name} to ${shard}, which does not contain it`, {
            subject: `${indexPath ?? shard}:${name}`,
          });
        }
        this.byName.set(name, f);
      }
    } else {
      for (const f of files) {
        for (const name of f.tensors.keys()) {
          if (this.byName.has(name)) {
            throw new CheckpointError('CHECKPOINT_CORRUPT', `Tensor ${name} appears in two files (${f.path})`, {
              subject: name,
            });
          }
          this.byName.set(name, f);
        }
      }
    }
  }

  names(): IterableIterator<string> {
    return this.byName.keys();
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorInfo | undefined {
    return this.byName.get(name)?.tensors.get(name);
  }
  read(name: string): Float32Array {
    return this.file(name).read(name);
  }
  readInt32(name: string): Int32Array {
    return this.file(name).readInt32(name);
  }
  readRaw(name: string, dtype: string): Uint8Array {
    return this.file(name).readRaw(name, dtype);
  }
  private file(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (f === undefined) throw new CheckpointError('TENSOR_MISSING', `Tensor ${name} is not in the checkpoint`, { subject: name });
    return f;
  }
  close(): void {
    for (const f of this.files) f.close();
  }
}

export const INDEX_FILE = 'model.safetensors.index.json';

/** Open one safetensors file as a store. */
export function openSafetensors(file: string): TensorStore {
  return new TensorStore([new SafetensorsFile(file)]);
}

/**
 * Open the weights of a checkpoint directory: `model.safetensors.index.json` (sharded, via `weight_map`) if
 * present, else every `*.safetensors` file in the directory. Throws CHECKPOINT_NOT_FOUND when there is none.
 */
export function openSafetensorsDir(dir: string): TensorStore {
  const indexPath = path.join(dir, INDEX_FILE);
  if (fs.existsSync(indexPath)) return openSharded(indexPath);
  const names = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.safetensors'))
    .sort();
  if (names.length === 0) {
    throw new CheckpointError('CHECKPOINT_NOT_FOUND', `No *.safetensors weights in ${dir}`, { subject: dir });
  }
  return openFiles(names.map((n) => path.join(dir, n)));
}

function openFiles(paths: string[], weightMap?: Record<string, string>, indexPath?: string): TensorStore {
  const opened: SafetensorsFile[] = [];
  try {
    for (const p of paths) opened.push(new SafetensorsFile(p));
    return new TensorStore(opened, weightMap, indexPath);
  } catch (err) {
    for (const f of opened) f.close();
    throw err;
  }
}

/** Open a sharded checkpoint from its index file. */
export function openSharded(indexPath: string): TensorStore {
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (cause) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', `${indexPath} is not valid JSON`, { subject: indexPath, cause });
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', `${indexPath} has no weight_map object`, { subject: indexPath });
  }
  const map = weightMap as Record<string, unknown>;
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new CheckpointError('CHECKPOINT_CORRUPT', `${indexPath}: weight_map[${name}] is not a file name`, {
        subject: `${indexPath}:${name}`,
      });
    }
  }
  const dir = path.dirname(indexPath);
  const shards = [...new Set(Object.values(map) as string[])].sort();
  return openFiles(
    shards.map((s) => path.join(dir, s)),
    map as Record<string, string>,
    indexPath,
  );
}
