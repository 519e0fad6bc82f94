/**
 * A model family: everything the engine needs to know about one kind of checkpoint, in one folder
 * (src/families/<family>/), registered with one line in registry.ts. The shape follows transformers.js's
 * `models/<name>/` and onnxruntime-genai's builders: the LLM is shared (graph/decoder.ts); a family brings its
 * config reader and key layouts, its vision graphs, its image processor and encode step, its media token in
 * the chat template, and its rotary position rule.
 */
import type { CheckpointFormat } from '../checkpoint/checkpoint.js';
import type { Obj } from '../checkpoint/config-fields.js';
import type { ModelSpecBase } from '../checkpoint/spec.js';
import type { FamilyGraphBuilder, FamilyGraphKind } from '../graph/build.js';
import type { RgbImage } from '../media/rgb-image.js';
import type { ImageSpan } from '../text/chat.js';

/** A tensor fed to, or read from, one of a family's graphs. */
export type GraphTensor = { type: 'float32'; data: Float32Array; dims: number[] } | { type: 'int64'; data: BigInt64Array; dims: number[] };

/** How a family's encode step runs its graphs: the runtime implements it (families sit below the runtime). */
export interface GraphRunner {
  runGraph(kind: FamilyGraphKind, feeds: Record<string, GraphTensor>): Promise<Record<string, GraphTensor>>;
}

/**
 * Where one image's tokens sit in the prompt: `leading` tokens that are not patches (CLIP's CLS under the
 * `full` strategy), then a `t × rows × cols` grid of visual tokens, row-major (t > 1: a video's temporal slices).
 */
export interface MediaLayout {
  tokens: number;
  leading: number;
  grid: { t: number; rows: number; cols: number };
  /** A video's seconds per temporal slice (Qwen2.5-VL's `second_per_grid_t`: M-RoPE's time axis). */
  secondsPerSlice?: number;
}

/** What a tower gives one image to score salience by, per LLM token (sparsity/salience.ts picks one). */
export interface SalienceInputs {
  /**
   * Attention each token receives, averaged over heads and query rows (Qwen: summed over its merged patches);
   * absent when the tower's output layer has no attention (a Llava feature layer of 0, the embeddings).
   */
  received?: Float32Array;
  /** Attention from the CLS token, on towers that have one. */
  cls?: Float32Array;
  /** Mean attention from the given leading tower tokens (summary tokens), when the tower returns their rows. */
  summary?: (rows: readonly number[]) => Float32Array;
  /** How many leading tower tokens `summary` can read. */
  summaryRows: number;
  /** Attention received at another block (towers that score several: Qwen2-VL's full-attention blocks), per token. */
  atBlock?: (block: number) => Float32Array | undefined;
  /** The blocks `atBlock` reads. */
  blocks?: readonly number[];
}

/** A turn's images, encoded: what the prune step chooses from. */
export interface EncodedMedia {
  /** LLM inputs of every token of every image, [Σ tokens, hidden]. */
  embeds: Float32Array;
  /** The tokens before the projector, [Σ tokens, width] (VisionZip merges these). */
  features: Float32Array;
  /** The salience block's keys averaged over heads, [Σ tokens, keyDim], when the tower returns them. */
  keyMetric?: Float32Array;
  layouts: MediaLayout[];
  salience: SalienceInputs[];
  /** Waiting for pixels (decoding, preprocessing) vs running the graphs. */
  seconds: { images: number; vision: number };
}

/** Tower attention-shaped tensors an image holds at once: scores, probabilities, their head mean (runtime/memory.ts). */
export const TOWER_SCORE_COPIES = 3;

/** What one image costs, estimated before it is decoded (runtime/memory.ts). */
export interface MediaFootprint {
  /** LLM tokens. */
  tokens: number;
  /** The tower's working memory for it: attention scores, activations, pixels. */
  towerBytes: number;
  /** Its encoded tokens held for the prune step (LLM inputs and pre-projector features). */
  embedBytes: number;
}

export interface EncodeRequest {
  /** Decoded images, or a video's frames, in order. */
  frames: AsyncIterable<RgbImage>;
  /** The processor config the family's `loadProcessor` read. */
  processor: unknown;
  /** Images (frames) per graph call. */
  batch: number;
  /** The checkpoint directory, for errors. */
  dir: string;
  /** Each image as the tower sees it (resized, cropped): the trace's thumbnails (a video: its first frame). */
  onImage?: (index: number, shown: RgbImage) => Promise<void> | void;
  /** The frames are one video, sampled at `fps` (only for families with a `videoToken`). */
  video?: { fps: number };
}

export interface ModelFamily<S extends ModelSpecBase = ModelSpecBase> {
  /** `spec.family` of the checkpoints it reads. */
  name: S['family'];
  /** The `architectures[0]` values it reads (also listed in CONFIG_UNSUPPORTED errors). */
  architectures: readonly string[];
  /** Whether config.json is this family's (by `architectures`, else `model_type`). */
  claims(config: Obj): boolean;
  /** config.json → spec, and the on-disk key layouts (transformers' current one first). */
  format: CheckpointFormat<S>;
  /** The graphs `graph` builds: the vision tower, and a projector where the family has a separate one. */
  graphs: readonly FamilyGraphKind[];
  graph: FamilyGraphBuilder;
  /** The prompt's image placeholder when processor_config.json names none (`<image>`, `<|image_pad|>`). */
  imageToken: string;
  /**
   * The prompt's video placeholder (`<|video_pad|>`): the family takes a video as one media, its frames in
   * temporal slices. Absent: a video enters the prompt as consecutive images, labelled as the template labels
   * images (Llava).
   */
  videoToken?: string;
  /** Reads the image processor's config (preprocessor_config.json). */
  loadProcessor(dir: string): Promise<unknown>;
  /** An image as the tower sees it (resized, cropped): what retention maps are drawn over. */
  prepare(image: RgbImage, processor: unknown): RgbImage;
  /** The tower's name in run headers, and its fixed LLM tokens per image (0: native resolution, each image its own). */
  describe(spec: S): { vision: string; imageTokens: number };
  /** An image of `pixels` native pixels (undefined: the largest the processor makes), before it is decoded. */
  footprint(spec: S, processor: unknown, pixels?: number): MediaFootprint;
  /** The model's own frame count for a video that names none (`fps` asked for, if any). */
  videoFrames?(processor: unknown, info: { frameCount: number; fps: number }, fps: number | undefined): number;
  /** With a `videoToken`: one video of `frames` frames of `pixels` each, before it is decoded. */
  videoFootprint?(spec: S, processor: unknown, pixels: number, frames: number): MediaFootprint;
  /** Whether one vision call takes several images (else one image a call, whatever the chat's visionBatch). */
  batchesImages: boolean;
  /** Images → the family's graphs → LLM inputs and salience, `batch` images a call. */
  encode(spec: S, runner: GraphRunner, request: EncodeRequest): Promise<EncodedMedia>;
  /**
   * Rotary position rows of a prompt's `length` tokens from position `start` (one row, or M-RoPE's three), and
   * the position the next token takes. `spans` are the images' token spans, `layouts` their grids.
   */
  positions(spec: S, length: number, spans: readonly ImageSpan[], layouts: readonly MediaLayout[], start: number): { rows: number[][]; next: number };
}

/** Splits a stream into arrays of `size` (the last may be shorter), timing how long the stream made us wait. */
export async function* batchesOf<T>(items: AsyncIterable<T>, size: number, waited: { ms: number }): AsyncGenerator<T[]> {
  let batch: T[] = [];
  let mark = performance.now();
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      waited.ms += performance.now() - mark;
      yield batch;
      batch = [];
      mark = performance.now();
    }
  }
  waited.ms += performance.now() - mark;
  if (batch.length) yield batch;
}
