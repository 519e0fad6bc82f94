/**
 * The model families, one line each, and what finds them: which family a checkpoint directory is
 * (`openCheckpoint`), and a family's own graphs (`ensureModelGraph`). Adding a family: a folder beside
 * llava/ with an index.ts exporting a ModelFamily (family.ts), and one line in FAMILIES.
 */
import { openCheckpointAs, readCheckpointConfig, type Checkpoint } from '../checkpoint/checkpoint.js';
import type { Obj } from '../checkpoint/config-fields.js';
import type { LlavaSpec } from '../checkpoint/spec.js';
import { ConfigError } from '../errors.js';
import { ensureGraph, type BuildProgress, type GraphBuildOptions, type GraphKind } from '../graph/build.js';
import type { ModelFamily } from './family.js';
import { llava } from './llava/index.js';
import type { QwenVLSpec } from './qwen2-vl/config.js';
import { qwen2VL } from './qwen2-vl/index.js';

/** Every family's spec: `spec.family` tells them apart. */
export type ModelSpec = LlavaSpec | QwenVLSpec;

const FAMILIES: readonly ModelFamily<ModelSpec>[] = [qwen2VL as ModelFamily<ModelSpec>, llava as ModelFamily<ModelSpec>];

/** The family that reads this config.json, or CONFIG_UNSUPPORTED naming the architecture and listing the supported ones. */
export function familyFor(config: Obj, file: string): ModelFamily<ModelSpec> {
  const family = FAMILIES.find((f) => f.claims(config));
  if (family) return family;
  const archs = config['architectures'];
  const [field, value] = archs != null ? ['architectures[0]', Array.isArray(archs) ? archs[0] : archs] : ['model_type', config['model_type']];
  const supported = FAMILIES.flatMap((f) => f.architectures);
  throw new ConfigError('CONFIG_UNSUPPORTED', `${file}: ${field} = ${JSON.stringify(value)} is not supported; supported: ${supported.join(', ')}`, {
    subject: field,
  });
}

/** The family a spec was read by. */
export function familyOf(spec: { family: string }): ModelFamily<ModelSpec> {
  const family = FAMILIES.find((f) => f.name === spec.family);
  if (!family) throw new ConfigError('CONFIG_UNSUPPORTED', `no model family '${spec.family}' is registered`, { subject: spec.family });
  return family;
}

/** A checkpoint directory, read by the family its config.json names. */
export function openCheckpoint(dir: string): Checkpoint<ModelSpec> {
  const { config, file } = readCheckpointConfig(dir);
  return openCheckpointAs(dir, familyFor(config, file).format);
}

/** ensureGraph with the checkpoint's family's own graph builder. */
export function ensureModelGraph(checkpoint: Checkpoint<ModelSpec>, kind: GraphKind, options: GraphBuildOptions, onProgress?: BuildProgress): string {
  return ensureGraph(checkpoint, kind, options, onProgress, familyOf(checkpoint.spec).graph);
}
