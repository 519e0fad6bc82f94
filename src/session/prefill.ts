/**
 * Chunked prefill: feeds a token sequence (with projected image embeddings spliced in at the image-token
 * rows) through the decoder graph `chunkSize` tokens at a time, appending to a KV cache. Chunking bounds the
 * activation memory of long inputs (the attention scores of a chunk are [heads, chunk, past + chunk]).
 */
import { InputError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';

export interface PrefillInput {
  cache: number;
  ids: readonly number[];
  /** Rotary position of each token. */
  positions: readonly number[];
  /** The image token id: rows holding it take the next rows of `imageEmbeds`, in order. */
  imageTokenId: number;
  /** [imageTokens, hidden], in prompt order. */
  imageEmbeds?: Float32Array;
  hidden: number;
  chunkSize: number;
  /** 'all' returns logits for every position (tests, scoring); 'last' only for the final one. */
  logits: 'last' | 'all';
  /** Weights over all `ids` rows for the attention-mass output of the last chunk (rows outside it must be 0). */
  massWeights?: Float32Array;
}

export interface PrefillOutput {
  /** [1 | tokens, vocab] */
  logits: Float32Array;
  /** The last chunk's per-layer attention mass, when requested. */
  mass?: Float32Array[];
  seconds: number;
}

export async function prefill(runtime: Runtime, input: PrefillInput): Promise<PrefillOutput> {
  const { ids, positions, hidden, chunkSize } = input;
  if (ids.length === 0) throw new InputError('PROMPT_EMPTY', 'nothing to prefill: the prompt has no tokens', { subject: 'prompt' });
  if (!(Number.isInteger(chunkSize) && chunkSize > 0)) {
    throw new InputError('OPTION_INVALID', `prefill chunk size must be a positive integer, got ${chunkSize}`, { subject: 'prefillChunk' });
  }
  const imageRows = ids.flatMap((id, row) => (id === input.imageTokenId ? [row] : []));
  const imageTokens = (input.imageEmbeds?.length ?? 0) / hidden;
  if (imageRows.length !== imageTokens) {
    throw new InputError(
      'IMAGE_COUNT_MISMATCH',
      `the prompt has ${imageRows.length} image-token positions but ${imageTokens} image embeddings were given`,
      { subject: 'images' },
    );
  }
  const logitRows: Float32Array[] = [];
  let mass: Float32Array[] | undefined;
  let seconds = 0;
  let imageCursor = 0;
  for (let start = 0; start < ids.length; start += chunkSize) {
    const end = Math.min(start + chunkSize, ids.length);
    const rows: number[] = [];
    for (let r = start; r < end; r++) if (ids[r] === input.imageTokenId) rows.push(r - start);
    const splice = rows.length
      ? { rows, embeds: input.imageEmbeds!.slice(imageCursor * hidden, (imageCursor + rows.length) * hidden) }
      : undefined;
    imageCursor += rows.length;
    const last = end === ids.length;
    const out = await runtime.step({
      target: { cache: input.cache },
      ids: ids.slice(start, end) as number[],
      positions: positions.slice(start, end) as number[],
      splice,
      logits: input.logits,
      massWeights: last ? input.massWeights?.slice(start, end) : undefined,
    });
    seconds += out.seconds;
    if (input.logits === 'all' || last) logitRows.push(out.logits);
    if (last) mass = out.mass;
  }
  return { logits: concat(logitRows), mass, seconds };
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
