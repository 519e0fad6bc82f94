/**
 * Chunked prefill: feeds a token sequence (with projected image embeddings spliced in at the image-token
 * rows) through the decoder graph `chunks.rows` tokens at a time (fewer at long context, under `chunks.scoreBytes`),
 * appending to a KV cache. Chunking bounds the activation memory of long inputs (the attention scores of a chunk
 * are [heads, chunk, past + chunk]). The text after the last image and rows with attention-mass weights start
 * chunks of their own (`chunkStarts`).
 */
import { InputError } from '../errors.js';
import { concatFloat32 } from '../arrays.js';
import { chunkRowsAt, type ChunkRule } from '../runtime/memory.js';
import type { Runtime } from '../runtime/runtime.js';

/** M-RoPE position rows: temporal, height, width (transformers' `position_ids` [3, L]). */
export type PositionRows = readonly [readonly number[], readonly number[], readonly number[]];

/** A position rule's rows as prefill takes them: M-RoPE's three, or none for a one-row rule (`positions` carries it). */
export function positionRowsOf(rows: readonly (readonly number[])[]): PositionRows | undefined {
  return rows.length === 3 ? (rows as unknown as PositionRows) : undefined;
}

export interface PrefillInput {
  cache: number;
  ids: readonly number[];
  /** Rotary position of each token (under M-RoPE, its temporal row). */
  positions: readonly number[];
  /** M-RoPE models: the temporal, height and width position rows of each token (families/<family> position rule). */
  positionRows?: PositionRows;
  /** The image token id: rows holding it take the next rows of `imageEmbeds`, in order (unless `imageRows` says which). */
  imageTokenId: number;
  /**
   * The rows that take `imageEmbeds`, ascending, where not every row holding the image token id is an image's
   * (a token the model generated in an earlier answer is text).
   */
  imageRows?: readonly number[];
  /** [imageTokens, hidden], in prompt order. */
  imageEmbeds?: Float32Array;
  hidden: number;
  /**
   * How rows split into graph calls: at most `chunks.rows` a chunk, fewer at long context so one chunk's attention
   * scores stay within `chunks.scoreBytes` (runtime/memory.ts `chunkRowsAt`; `fixedChunks(n)` for n throughout).
   */
  chunks: ChunkRule;
  /** 'all' returns logits for every position (tests, scoring); 'last' only for the final one. */
  logits: 'last' | 'all';
  /**
   * Weights over the `ids` rows for the attention-mass output (e.g. 1/Q on the Q question rows). Chunks
   * holding weighted rows run the attention-mass graph; their masses add up column by column.
   */
  massWeights?: Float32Array;
  /**
   * Per-layer additive score bias over every column the prefill can see: the cache's existing rows, then
   * the new ones (length = cache rows before + ids.length). −1e9 hides a token from that layer.
   */
  columnBias?: (Float32Array | null)[];
  /** Cache rows before this prefill (needed with `columnBias`). */
  pastRows?: number;
}

export interface PrefillOutput {
  /** [1 | tokens, vocab] */
  logits: Float32Array;
  /**
   * Per layer [heads, columns]: attention mass from the weighted rows to every cache row (columns = cache
   * rows after the prefill), summed over chunks, when `massWeights` was given.
   */
  mass?: Float32Array[];
  seconds: number;
  /** Graph calls the prefill made (its chunks). */
  chunks: number;
}

export async function prefill(runtime: Runtime, input: PrefillInput): Promise<PrefillOutput> {
  const { ids, positions, hidden, chunks } = input;
  if (ids.length === 0) throw new InputError('PROMPT_EMPTY', 'nothing to prefill: the prompt has no tokens', { subject: 'prompt' });
  if (!(Number.isInteger(chunks.rows) && chunks.rows > 0)) {
    throw new InputError('OPTION_INVALID', `prefill chunk size must be a positive integer, got ${chunks.rows}`, { subject: 'prefillChunk' });
  }
  const imageRows = input.imageRows ?? ids.flatMap((id, row) => (id === input.imageTokenId ? [row] : []));
  const isImage = new Uint8Array(ids.length);
  for (const r of imageRows) isImage[r] = 1;
  const imageTokens = (input.imageEmbeds?.length ?? 0) / hidden;
  if (imageRows.length !== imageTokens) {
    throw new InputError('IMAGE_COUNT_MISMATCH', `the prompt has ${imageRows.length} image-token positions but ${imageTokens} image embeddings were given`, {
      subject: 'images',
    });
  }
  const logitRows: Float32Array[] = [];
  let mass: Float32Array[] | undefined;
  let seconds = 0;
  let imageCursor = 0;
  const past0 = input.pastRows ?? 0;
  const columns = past0 + ids.length;
  // The text after the last image (a turn's question) and the weighted rows start chunks of their own.
  const breaks = [imageRows.length ? imageRows.at(-1)! + 1 : 0, input.massWeights?.findIndex((w) => w !== 0) ?? -1];
  const starts = chunkStarts(ids.length, (start) => chunkRowsAt(chunks, past0 + start), breaks);
  for (const [c, start] of starts.entries()) {
    const end = starts[c + 1] ?? ids.length;
    const rows: number[] = [];
    for (let r = start; r < end; r++) if (isImage[r]) rows.push(r - start);
    const splice = rows.length ? { rows, embeds: input.imageEmbeds!.slice(imageCursor * hidden, (imageCursor + rows.length) * hidden) } : undefined;
    imageCursor += rows.length;
    const last = end === ids.length;
    const weights = input.massWeights?.slice(start, end);
    const weighted = weights?.some((w) => w !== 0) ? weights : undefined;
    const pastRows = past0 + start;
    const out = await runtime.step({
      target: { cache: input.cache },
      ids: ids.slice(start, end) as number[],
      positions: input.positionRows ? input.positionRows.flatMap((row) => row.slice(start, end)) : (positions.slice(start, end) as number[]),
      splice,
      logits: input.logits,
      massWeights: weighted,
      pastBias: input.columnBias?.map((b) => b?.slice(0, pastRows) ?? null),
      newBias: input.columnBias?.map((b) => b?.slice(pastRows, past0 + end) ?? null),
    });
    seconds += out.seconds;
    if (input.logits === 'all' || last) logitRows.push(out.logits);
    if (out.mass) mass = accumulateMass(mass, out.mass, past0 + end, columns);
  }
  return { logits: concatFloat32(logitRows), mass, seconds, chunks: starts.length };
}

/**
 * Where each chunk starts: a chunk starting at row r holds `rowsAt(r)` rows (or a fixed count), the grid restarting at
 * each break. Prefills break after the
 * last image and at the first row weighted for attention mass, so a turn's question runs on its own: the
 * attention-mass graph's scores are [heads, question rows, past] rather than [heads, chunk, past], and its
 * session never holds chunk-sized scores in its arena besides the plain graph's (onnxruntime keeps an arena
 * per session). Breaking by the prompt's own layout, not only by the weights, keeps the chunks — and so the
 * float rounding — of a dense chat, a SparseVILA chat and a dense twin the same for one prompt.
 */
export function chunkStarts(rows: number, rowsAt: number | ((start: number) => number), breaks: number[]): number[] {
  const size = typeof rowsAt === 'number' ? () => rowsAt : rowsAt;
  const cuts = [...new Set(breaks.filter((b) => b > 0 && b < rows))].sort((a, b) => a - b);
  const starts: number[] = [];
  let from = 0;
  for (const to of [...cuts, rows]) {
    for (let at = from; at < to; at += size(at)) starts.push(at);
    from = to;
  }
  return starts;
}

/**
 * Adds one chunk's per-layer [heads, width] mass (width = the cache rows it saw) into [heads, columns]
 * totals (columns = cache rows after the whole prefill).
 */
function accumulateMass(total: Float32Array[] | undefined, chunk: Float32Array[], width: number, columns: number): Float32Array[] {
  return chunk.map((m, l) => {
    const heads = m.length / width;
    const sum = total?.[l] ?? new Float32Array(heads * columns);
    for (let h = 0; h < heads; h++) {
      for (let c = 0; c < width; c++) sum[h * columns + c]! += m[h * width + c]!;
    }
    return sum;
  });
}
