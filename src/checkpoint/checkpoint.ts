/**
 * A Llava checkpoint directory: validated spec from config.json plus lazy access to its tensors under
 * CANONICAL names (the current transformers layout), whichever of the two on-disk layouts the files use.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { parseLlavaConfig } from './config.js';
import { parseQuantizationConfig, type WeightStorage } from './quantization.js';
import { openSafetensorsDir, type TensorStore } from './safetensors.js';
import type { LlavaSpec } from './spec.js';

export interface Checkpoint {
  readonly dir: string;
  readonly spec: LlavaSpec;
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

/**
 * `current`: transformers >= 4.52 (`model.vision_tower.*`, `model.multi_modal_projector.*`,
 * `model.language_model.*`, `lm_head.weight`). `legacy`: earlier LlavaForConditionalGeneration
 * (`vision_tower.*`, `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight`),
 * which is how most checkpoints on the Hub are still stored.
 */
export type KeyLayout = 'current' | 'legacy';

/** The canonical name prefix of the LLM's modules, e.g. `model.language_model.layers.0.self_attn.q_proj`. */
export const TEXT_PREFIX = 'model.language_model';

/** Canonical (current) prefix → legacy prefix. Mirrors transformers' `_checkpoint_conversion_mapping` for Llava. */
const LEGACY_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['model.vision_tower.', 'vision_tower.'],
  ['model.multi_modal_projector.', 'multi_modal_projector.'],
  ['model.language_model.', 'language_model.model.'],
  ['lm_head.', 'language_model.lm_head.'],
];

/** The legacy on-disk name of a canonical name, or undefined when the name has no legacy form. */
export function legacyName(canonical: string): string | undefined {
  for (const [cur, old] of LEGACY_PREFIXES) if (canonical.startsWith(cur)) return old + canonical.slice(cur.length);
  return undefined;
}

/** Detect the layout from the keys present; a checkpoint with neither set of prefixes is not a Llava checkpoint. */
export function detectLayout(names: Iterable<string>, where: string): KeyLayout {
  let current = 0;
  let legacy = 0;
  for (const n of names) {
    if (n.startsWith('model.vision_tower.') || n.startsWith('model.language_model.') || n.startsWith('model.multi_modal_projector.')) current++;
    else if (n.startsWith('vision_tower.') || n.startsWith('language_model.') || n.startsWith('multi_modal_projector.')) legacy++;
  }
  if (current === 0 && legacy === 0) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', `${where} has no Llava tensors (expected keys under model.language_model.* or language_model.model.*)`, {
      subject: where,
    });
  }
  return current >= legacy ? 'current' : 'legacy';
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

export function openCheckpoint(dir: string): Checkpoint {
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
  const { bytes, config, file } = readConfig(abs);
  const spec = parseLlavaConfig(config, file);
  const quantization = parseQuantizationConfig(config, file);
  const store = openSafetensorsDir(abs);
  try {
    return new DirCheckpoint(abs, spec, config, store, fingerprintOf(bytes, store), quantization);
  } catch (err) {
    store.close();
    throw err;
  }
}

class DirCheckpoint implements Checkpoint {
  readonly layout: KeyLayout;

  constructor(
    readonly dir: string,
    readonly spec: LlavaSpec,
    readonly config: Record<string, unknown>,
    private readonly store: TensorStore,
    readonly fingerprint: string,
    readonly quantization: WeightStorage | undefined,
  ) {
    this.layout = detectLayout(store.names(), dir);
    // An untied head that is not on disk would be randomly initialised by transformers: refuse it up front.
    if (!spec.text.tieWordEmbeddings && !this.has('lm_head.weight')) this.missing('lm_head.weight');
  }

  /** On-disk names to try for a canonical name, the detected layout's form first. */
  private candidates(name: string): string[] {
    const old = legacyName(name);
    if (old === undefined) return [name];
    return this.layout === 'legacy' ? [old, name] : [name, old];
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
