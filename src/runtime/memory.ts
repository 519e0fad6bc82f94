/**
 * Up-front memory estimate of one turn, so a turn that would not fit is refused before any frame is decoded
 * or any graph runs. It counts what grows with the input — the model's own weights are already loaded and
 * are not in it:
 *
 * - KV cache: layers × 2 (keys, values) × kvHeads × headDim × rows × 4 bytes (2 under an fp16 cache, `kvType`;
 *   kv-cache.ts), whatever the weight precision, for every row after the turn (earlier turns, prompt, answer). A turn
 *   that grows a cache holding rows re-allocates it, so the old store is counted too while it is copied.
 * - Retrieval view: the per-layer compact copy a retrieving turn decodes over (text rows + retrieved tokens).
 * - Prefill scores: one chunk's attention over everything before it, heads × chunk × (rows) × 4 bytes, times
 *   SCORE_COPIES: the decoder graph (graph/llm-attention.ts) keeps two score-sized tensors alive at once (an
 *   elementwise step's input and output of the split softmax), and onnxruntime's CPU arena, which grows by
 *   doubling and keeps what it grew to, adds up to two more. The question's rows run the attention-mass graph
 *   in a chunk of their own (session/prefill.ts), so that session's scores are [heads, question, rows]:
 *   small next to a chunk's. Chunks shrink as the context grows so that one chunk's scores stay within the
 *   chat's `prefillScoreBytes` (`chunkRowsAt`), which is what bounds this part at long context.
 * - Prefill activations: a chunk's hidden states and MLP intermediates, and its logits.
 * - Vision: one batch of frames through the tower: per frame heads × N² attention scores, probabilities and
 *   their head mean (graph/vision.ts), N × (hidden, intermediate) activations, and the pixels.
 * - Image decoding: a vision batch's images are decoded together (session/model.ts pixelBatch), each to 8-bit
 *   RGB at its native size (3 bytes a pixel) and resized by a two-pass resampler whose intermediate is at most
 *   as large when shrinking (media/pil-resample.ts): IMAGE_BYTES_PER_PIXEL, counted from the headers
 *   (media/image.ts imagePixelCounts) for the batch with the most pixels. Video frames are decoded one at a
 *   time at the video's size, which `vision` already dwarfs.
 * - Visual embeddings: every frame's projected tokens and pre-projector features, held until the prefill.
 * - Dense twin: a second, unpruned cache when the chat measures fidelity.
 * - Runtime: a fixed RUNTIME_OVERHEAD for what a turn allocates whatever its size (ORT's first-run buffers,
 *   JS heaps, messages to the worker).
 *
 * Held against peak RSS growth over the engine's prefill with a weighted question (test/efficiency-memory.test.ts;
 * scripts/profile-long-context.mjs prefill), 8 heads, 3k–12k tokens in chunks of 128 and 512: the whole growth
 * came to 3.5–4.5 times one chunk's score tensor, and the estimate 22–92% above it with 512-token chunks
 * (12k tokens: 738 MiB measured, 898 MiB estimated), more on small inputs, where its fixed overhead dominates.
 * Before the split softmax and the question's own chunk the same prefills grew by 7 score tensors.
 */
import os from 'node:os';
import { familyOf, type ModelSpec } from '../families/registry.js';
import type { KvType } from '../graph/decoder.js';
import { InputError } from '../errors.js';

const F32 = 4;
/** Score-shaped tensors a prefill chunk costs: two alive at once in a layer, two for the arena (see the header). */
export const SCORE_COPIES = 4;
/** Decoded RGB (3 bytes) and the resampler's intermediate pass (at most 3 more) per native image pixel. */
export const IMAGE_BYTES_PER_PIXEL = 6;
/** What any turn allocates beyond its parts (measured ~100 MB on the test model; see the header). */
export const RUNTIME_OVERHEAD = 128 * 1024 * 1024;

/** The fewest rows a score-limited chunk shrinks to: below this the weights' reads per chunk dominate a prefill. */
export const MIN_CHUNK_ROWS = 32;

/**
 * How a prefill splits its rows: at most `rows` a chunk, and fewer at long context, where one chunk's attention
 * scores — heads × chunk × (past + chunk) × 4 bytes, float32 in onnxruntime's arena, several copies alive
 * (SCORE_COPIES) — would pass `scoreBytes`. The arena keeps the largest chunk's scores for the session's life, so a
 * fixed chunk makes memory grow with the context: 14 heads × 512 rows × 32k columns is 0.94 GB a copy.
 */
export interface ChunkRule {
  rows: number;
  /** Bytes one chunk's scores may take; Infinity for chunks of `rows` throughout. */
  scoreBytes: number;
  /** Attention heads (query heads): the scores' first axis. */
  heads: number;
}

/** Chunks of `rows` throughout, whatever the context (tests, benches that set their own chunk). */
export function fixedChunks(rows: number): ChunkRule {
  return { rows, scoreBytes: Infinity, heads: 1 };
}

/**
 * Rows of the chunk that starts after `past` cache rows: the largest c ≤ rule.rows with heads × c × (past + c) × 4 ≤
 * scoreBytes (the positive root of c² + past·c − scoreBytes / (4·heads)), and never under MIN_CHUNK_ROWS (or
 * `rows`, if smaller).
 */
export function chunkRowsAt(rule: ChunkRule, past: number): number {
  const limit = rule.scoreBytes / (F32 * rule.heads);
  const fits = Math.floor((Math.sqrt(past * past + 4 * limit) - past) / 2);
  return Math.min(rule.rows, Math.max(MIN_CHUNK_ROWS, fits));
}

export interface TurnFootprint {
  /** KV rows before the turn. */
  cachedRows: number;
  /** Tokens the turn prefills (pruned visual tokens excluded). */
  promptTokens: number;
  /** Tokens the turn may generate. */
  maxNewTokens: number;
  /** The KV rows' element type (Runtime.kvType); default float32. */
  kvType?: KvType;
  /** Prefill chunk length. */
  chunk: number;
  /** The chat's bound on one chunk's scores (ChunkRule.scoreBytes); default Infinity. */
  chunkScoreBytes?: number;
  /** Images / frames through the vision tower this turn (0 once they are encoded). */
  frames: number;
  /** Frames per vision-tower call. */
  visionBatch: number;
  /** Native pixel counts of the image files the turn decodes, from their headers (media/image.ts imagePixelCounts); none for video. */
  imagePixels?: readonly number[];
  /** Rows a retrieving turn's decode view holds per layer (0 when the policy does not retrieve). */
  viewRows: number;
  /** Rows of a dense twin's cache after the turn (0 without fidelity). */
  twinRows: number;
  /** The family's image processor config (sizes native-resolution images); default: its defaults. */
  processor?: unknown;
  /** A video's frame size in pixels (ffprobe): sizes its frames where no image headers do. */
  framePixels?: number;
  /** The turn's encoded tokens held for the prune step, when the caller sized them (a video of temporal slices); default: frames × one image's. */
  embedBytes?: number;
}

export interface MemoryEstimate {
  /** Bytes, by part (see the header). */
  parts: {
    kvCache: number;
    kvGrowth: number;
    retrievalView: number;
    prefillScores: number;
    prefillActivations: number;
    vision: number;
    imageDecode: number;
    visualEmbeddings: number;
    denseTwin: number;
    runtime: number;
  };
  total: number;
}

export function estimateTurnMemory(spec: ModelSpec, f: TurnFootprint): MemoryEstimate {
  const t = spec.text;
  const family = familyOf(spec);
  // The largest image the turn decodes sizes every one of its frames (a video's frames: the processor's largest).
  const image = family.footprint(spec, f.processor, f.imagePixels?.length ? Math.max(...f.imagePixels) : f.framePixels);
  const kvRow = t.numLayers * 2 * t.numKvHeads * t.headDim * (f.kvType === 'float16' ? 2 : F32);
  const rows = f.cachedRows + f.promptTokens + f.maxNewTokens;
  const chunk = Math.min(f.chunk, Math.max(f.promptTokens, 1));
  const batch = family.batchesImages ? Math.min(f.visionBatch, f.frames) : Math.min(1, f.frames);
  const parts = {
    kvCache: kvRow * rows,
    kvGrowth: f.cachedRows > 0 && f.promptTokens > 0 ? kvRow * f.cachedRows : 0,
    retrievalView: kvRow * f.viewRows,
    prefillScores: f.promptTokens > 0 ? largestChunkScores(t.numHeads, chunk, f.chunkScoreBytes ?? Infinity, f.cachedRows + f.promptTokens) * SCORE_COPIES : 0,
    prefillActivations: f.promptTokens > 0 ? chunk * (t.hiddenSize * 8 + t.intermediateSize * 3) * F32 + t.vocabSize * F32 : 0,
    vision: batch * image.towerBytes,
    imageDecode: largestBatch(f.imagePixels ?? [], f.visionBatch) * IMAGE_BYTES_PER_PIXEL,
    visualEmbeddings: f.embedBytes ?? f.frames * image.embedBytes,
    denseTwin: kvRow * f.twinRows,
    runtime: RUNTIME_OVERHEAD,
  };
  return { parts, total: Object.values(parts).reduce((a, b) => a + b, 0) };
}

/**
 * The largest chunk's scores in a prefill that ends at `columns` rows: a chunk of `chunk` over every column, or,
 * where that passes `scoreBytes`, the limit itself — or a MIN_CHUNK_ROWS chunk over every column, if even that passes it.
 */
function largestChunkScores(heads: number, chunk: number, scoreBytes: number, columns: number): number {
  const scores = (rows: number) => heads * rows * columns * F32;
  return Math.min(scores(chunk), Math.max(scoreBytes, scores(Math.min(chunk, MIN_CHUNK_ROWS))));
}

/** The most pixels decoded at once: the largest sum over consecutive batches of `batch` images. */
function largestBatch(pixels: readonly number[], batch: number): number {
  let most = 0;
  for (let i = 0; i < pixels.length; i += batch)
    most = Math.max(
      most,
      pixels.slice(i, i + batch).reduce((a, b) => a + b, 0),
    );
  return most;
}

const PART_NAMES: Record<keyof MemoryEstimate['parts'], string> = {
  kvCache: 'KV cache',
  kvGrowth: 'KV cache re-allocation',
  retrievalView: 'retrieval view',
  prefillScores: 'prefill attention scores',
  prefillActivations: 'prefill activations',
  vision: 'vision tower batch',
  imageDecode: 'decoded images',
  visualEmbeddings: 'visual embeddings',
  denseTwin: 'dense twin cache',
  runtime: 'runtime overhead',
};

/**
 * Refuses a turn whose estimate exceeds `limit` bytes: MEMORY_LIMIT, with the estimate and the limit in bytes
 * (and readable), the largest parts, and what to change. `what` describes the turn ("8 frames, 2,100 tokens").
 */
export function checkMemoryLimit(estimate: MemoryEstimate, limit: number, what: string): void {
  if (estimate.total <= limit) return;
  const largest = (Object.entries(estimate.parts) as [keyof MemoryEstimate['parts'], number][])
    .filter(([, bytes]) => bytes > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([part, bytes]) => `${PART_NAMES[part]} ${formatBytes(bytes)}`);
  throw new InputError(
    'MEMORY_LIMIT',
    `this turn (${what}) needs an estimated ${formatBytes(estimate.total)} (${estimate.total} bytes; ${largest.join(', ')}), ` +
      `over the memory limit of ${formatBytes(limit)} (${limit} bytes). Sample fewer frames (frames / fps, --frames / --fps), ` +
      `keep fewer visual tokens with a keep budget (policy keep, --keep 25%), prefill in smaller chunks (prefillChunk, --prefill-chunk), ` +
      `or raise the limit (memoryLimit, --memory-limit)`,
    { subject: 'memoryLimit' },
  );
}

/** The default limit: half of this machine's memory, leaving room for the weights, the OS and other work. */
export function defaultMemoryLimit(): number {
  return Math.floor(os.totalmem() / 2);
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/** "12G", "512 MiB", "2.5GB", "1000000" (bytes) → bytes; undefined when it does not parse. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) return undefined;
  const power = ['', 'k', 'm', 'g', 't'].indexOf(m[2]!.toLowerCase());
  const bytes = Number(m[1]) * 1024 ** power;
  return Number.isFinite(bytes) && bytes > 0 ? Math.floor(bytes) : undefined;
}
