/**
 * A checkpoint directory: its spec, validated from config.json by the model family's reader, and lazy access
 * to its tensors under CANONICAL names (transformers' current layout), whichever on-disk key layout the files
 * use. Which family a directory is, and so which reader and layouts apply, is src/families/registry.ts's call.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { checkKeptInFloat, parseQuantizationConfig, type WeightStorage } from './quantization.js';
import { openSafetensorsDir, type TensorStore } from './safetensors.js';
import type { ModelSpecBase } from './spec.js';

export interface Checkpoint<S extends ModelSpecBase = ModelSpecBase> {
  readonly dir: string;
  readonly spec: S;
  /** Raw parsed config.json, for fields the spec does not cover. */
  readonly config: Record<string, unknown>;
  /** Which on-disk key layout the safetensors use. */
  readonly layout: KeyLayout;
  /** How quantized linears are stored (config.json `quantization_config`); undefined for a float checkpoint. */
  readonly quantization?: WeightStorage;
  /** Stable hash (sha256 hex) over config.json bytes + every safetensors file's header bytes and size. Cheap: never hashes tensor data. */
  readonly fingerprint: string;
  has(name: string): boolean;
  shape(name: string): number[];
  /** Decoded to float32. Throws TENSOR_MISSING (naming the canonical name, the on-disk names tried, and the dir) or TENSOR_SHAPE (naming the tensor, expected and actual shape). */
  read(name: string, expectedShape?: readonly number[]): Float32Array;
  /** An I32 tensor as stored (AutoAWQ's packed qweight / qzeros); same errors as `read`, and TENSOR_DTYPE. */
  readInt32(name: string, expectedShape?: readonly number[]): Int32Array;
  close(): void;
}

/** The canonical name prefix of the LLM's modules, e.g. `model.language_model.layers.0.self_attn.q_proj` (every family). */
export const TEXT_PREFIX = 'model.language_model';

/** An on-disk key layout's name: `current` is transformers' own (>= 4.52); each family names its others. */
export type KeyLayout = string;

/**
 * One on-disk key layout of a family: how canonical name prefixes read on disk (transformers'
 * `_checkpoint_conversion_mapping`, inverted), and on-disk prefixes only this layout has (to detect it).
 */
export interface KeyLayoutRule {
  name: KeyLayout;
  /** [canonical prefix, on-disk prefix], first match wins; empty for the canonical layout itself. */
  renames: ReadonlyArray<readonly [string, string]>;
  marks: readonly string[];
}

/** What a family tells the checkpoint reader: its config reader and its key layouts (the canonical one first). */
export interface CheckpointFormat<S extends ModelSpecBase> {
  /** The family's name, for errors. */
  name: string;
  parseConfig(config: Record<string, unknown>, file: string): S;
  layouts: readonly KeyLayoutRule[];
}

/** The on-disk name of a canonical name under `layout`, or undefined when the layout keeps it as is. */
export function layoutName(layout: KeyLayoutRule, canonical: string): string | undefined {
  for (const [cur, disk] of layout.renames) if (canonical.startsWith(cur)) return disk + canonical.slice(cur.length);
  return undefined;
}

/** The canonical name of an on-disk name under `layout` (the inverse of layoutName). */
export function canonicalName(layout: KeyLayoutRule, onDisk: string): string {
  for (const [cur, disk] of layout.renames) if (onDisk.startsWith(disk)) return cur + onDisk.slice(disk.length);
  return onDisk;
}

/** The layout whose marks most names carry; a directory with none of them is not this family's checkpoint. */
export function detectLayout(names: Iterable<string>, where: string, format: Pick<CheckpointFormat<ModelSpecBase>, 'name' | 'layouts'>): KeyLayoutRule {
  const counts = format.layouts.map(() => 0);
  for (const n of names) format.layouts.forEach((l, i) => l.marks.some((m) => n.startsWith(m)) && counts[i]!++);
  const best = counts.indexOf(Math.max(...counts));
  if (counts[best] === 0) {
    const expected = format.layouts.flatMap((l) => l.marks.map((m) => `${m}*`)).join(', ');
    throw new CheckpointError('CHECKPOINT_CORRUPT', `${where} has no ${format.name} tensors (expected keys under ${expected})`, { subject: where });
  }
  return format.layouts[best]!;
}

function readConfig(dir: string): { bytes: Buffer; config: Record<string, unknown>; file: string } {
  const file = path.join(dir, 'config.json');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (cause) {
    throw new CheckpointError('CHECKPOINT_NOT_FOUND', `Checkpoint directory has no config.json: ${file} is missing or unreadable`, { subject: file, cause });
  }
  let config: unknown;
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `${file} is not valid JSON: ${(cause as Error).message}`, { subject: file, cause });
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError('CONFIG_INVALID', `${file} is not a JSON object`, { subject: file });
  }
  return { bytes, config: config as Record<string, unknown>, file };
}

/**
 * sha256 over config.json + each weight file's name, size, header and a sample of its data (see
 * SafetensorsFile.contentSample), length-prefixed so fields cannot run together.
 */
function fingerprintOf(configBytes: Buffer, store: TensorStore): string {
  const h = createHash('sha256');
  const part = (b: Buffer | string): void => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(buf.length));
    h.update(len).update(buf);
  };
  part(configBytes);
  const files = [...store.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const f of files) {
    part(path.basename(f.path));
    part(String(f.size));
    part(f.headerBytes);
    part(f.contentSample());
  }
  return h.digest('hex');
}

/** The checkpoint directory's absolute path and its config.json (a JSON object), with its raw bytes for the fingerprint. */
export function readCheckpointConfig(dir: string): { abs: string; bytes: Buffer; config: Record<string, unknown>; file: string } {
  const abs = path.resolve(dir);
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(abs);
  } catch {
    stat = undefined;
  }
  if (stat === undefined || !stat.isDirectory()) {
    throw new CheckpointError('CHECKPOINT_NOT_FOUND', `Checkpoint directory ${abs} does not exist or is not a directory`, {
      subject: abs,
    });
  }
  return { abs, ...readConfig(abs) };
}

/** Opens `dir` as a checkpoint of the family `format` describes. */
export function openCheckpointAs<S extends ModelSpecBase>(dir: string, format: CheckpointFormat<S>): Checkpoint<S> {
  const { abs, bytes, config, file } = readCheckpointConfig(dir);
  const spec = format.parseConfig(config, file);
  const quantization = parseQuantizationConfig(config, file);
  const store = openSafetensorsDir(abs);
  try {
    return new DirCheckpoint(abs, spec, config, store, fingerprintOf(bytes, store), quantization, format);
  } catch (err) {
    store.close();
    throw err;
  }
}

class DirCheckpoint<S extends ModelSpecBase> implements Checkpoint<S> {
  private readonly rule: KeyLayoutRule;

  constructor(
    readonly dir: string,
    readonly spec: S,
    readonly config: Record<string, unknown>,
    private readonly store: TensorStore,
    readonly fingerprint: string,
    readonly quantization: WeightStorage | undefined,
    format: CheckpointFormat<S>,
  ) {
    this.rule = detectLayout(store.names(), dir, format);
    // An untied head that is not on disk would be randomly initialised by transformers: refuse it up front.
    if (!spec.text.tieWordEmbeddings && !this.has('lm_head.weight')) this.missing('lm_head.weight');
    if (quantization) {
      const names = [...store.names()].map((n) => [n, canonicalName(this.rule, n)] as const);
      checkKeptInFloat(quantization, names, dir);
    }
  }

  get layout(): KeyLayout {
    return this.rule.name;
  }

  /** On-disk names to try for a canonical name, the detected layout's form first. */
  private candidates(name: string): string[] {
    const onDisk = layoutName(this.rule, name);
    return onDisk === undefined ? [name] : [onDisk, name];
  }

  private resolve(name: string): string | undefined {
    return this.candidates(name).find((n) => this.store.has(n));
  }

  private missing(name: string): never {
    const tried = this.candidates(name).join(', ');
    throw new CheckpointError('TENSOR_MISSING', `Tensor ${name} not found in ${this.dir} (tried: ${tried})`, {
      subject: name,
    });
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  shape(name: string): number[] {
    const onDisk = this.resolve(name) ?? this.missing(name);
    return [...(this.store.info(onDisk)?.shape ?? [])];
  }

  read(name: string, expectedShape?: readonly number[]): Float32Array {
    return this.store.read(this.located(name, expectedShape));
  }

  readInt32(name: string, expectedShape?: readonly number[]): Int32Array {
    return this.store.readInt32(this.located(name, expectedShape));
  }

  /** The on-disk name of `name`, after checking its shape. */
  private located(name: string, expectedShape?: readonly number[]): string {
    const onDisk = this.resolve(name) ?? this.missing(name);
    if (expectedShape !== undefined) {
      const actual = this.shape(name);
      if (actual.length !== expectedShape.length || actual.some((d, i) => d !== expectedShape[i])) {
        throw new CheckpointError('TENSOR_SHAPE', `Tensor ${name} in ${this.dir} has shape [${actual.join(', ')}], expected [${expectedShape.join(', ')}]`, {
          subject: name,
        });
      }
    }
    return onDisk;
  }

  close(): void {
    this.store.close();
  }
}
