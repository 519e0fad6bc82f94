/**
 * Messages between the engine (main thread) and the inference worker. ORT's `session.run` blocks its
 * thread, so every graph runs in the worker and the main thread stays free for servers and kernels. Large
 * arrays cross as transferred ArrayBuffers (moved, not copied).
 */
import type { GraphTensor } from '../families/family.js';
import type { BuildProgressEvent, FamilyGraphKind, GraphBuildOptions, GraphKind } from '../graph/build.js';
import type { RuntimeOptions } from './ort-session.js';

export interface InitRequest {
  op: 'init';
  checkpointDir: string;
  graphs: GraphBuildOptions;
  runtime: RuntimeOptions;
}

/** Additive score bias for masked columns (StepRequest's pastBias / newBias); exp(−1e9 − max) is exactly 0 in float32. */
export const MASKED = -1e9;

/** Where a decoder step reads its past and writes its rows. */
export type StepTarget = { cache: number } | { view: number };

export interface StepRequest {
  op: 'step';
  target: StepTarget;
  /** Token ids of the new tokens; image-token rows are overwritten by `splice`. */
  ids: number[];
  /**
   * Rotary positions of the new tokens: one per token, or for an M-RoPE model (TextSpec.mropeSection) either
   * that (text: the three rows are equal) or the temporal, height and width rows one after another (3 × T).
   */
  positions: number[];
  /** Rows of the new block that take projected image embeddings instead of token embeddings. */
  splice?: { rows: number[]; embeds: Float32Array };
  logits: 'last' | 'all';
  massWeights?: Float32Array;
  pastBias?: (Float32Array | null)[];
  newBias?: (Float32Array | null)[];
}

export type Request =
  | InitRequest
  | { op: 'vision'; pixels: Float32Array; dims: number[] }
  | { op: 'graph.run'; kind: FamilyGraphKind; feeds: Record<string, GraphTensor> }
  | { op: 'project'; features: Float32Array; dims: [number, number] }
  | { op: 'cache.create' }
  | { op: 'cache.drop'; id: number }
  | { op: 'cache.truncate'; id: number; length: number }
  | { op: 'cache.reserve'; id: number; rows: number }
  | { op: 'cache.info'; id: number }
  | { op: 'view.create'; cache: number; subsets: (number[] | null)[] }
  | { op: 'view.drop'; id: number }
  | StepRequest
  | { op: 'graph.ensure'; kinds: GraphKind[] }
  | { op: 'profile.end' };

export interface VisionResult {
  /** [images, tokens, featureSize] */
  features: Float32Array;
  featureDims: number[];
  /** [images, numPositions] head-mean attention at the feature layer (absent when the feature layer is 0). */
  clsAttention?: Float32Array;
  meanAttention?: Float32Array;
  /** [images, numPositions, headDim] feature-layer keys averaged over heads. */
  keyMetric?: Float32Array;
  /** [images, R, numPositions] head-mean attention rows of the first R tower tokens (summary tokens). */
  leadingRows?: Float32Array;
}

/** Host↔device bytes of one graph call on a GPU provider. */
export interface DeviceTransfer {
  hostToDevice: number;
  deviceToHost: number;
}

export interface StepResult {
  logits: Float32Array;
  mass?: Float32Array[];
  /** Linear-group inputs by output name, when the decoder graph is the calibration variant. */
  activations?: Record<string, Float32Array>;
  /** Host↔device bytes of the call, on a GPU provider. */
  transfer?: DeviceTransfer;
  seconds: number;
}

export interface CacheInfo {
  length: number;
  /** Rotary position of each row. */
  positions: Int32Array;
  /** One past the largest position held: where the next token goes. */
  nextPosition: number;
}

export type WorkerMessage =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; code?: string; subject?: string; message: string } }
  | { progress: BuildProgressEvent };
