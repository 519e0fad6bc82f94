/**
 * The encode step of a turn (images or video frames → projected visual tokens with salience), and the
 * up-front memory check every turn passes before any work. Frames go through the vision tower a batch at a
 * time (ChatOptions.visionBatch), so a long video's tower activations are bounded by the batch.
 */
import { InputError } from '../errors.js';
import { thumbnail } from '../media/thumbnail.js';
import { checkMemoryLimit, defaultMemoryLimit, estimateTurnMemory } from '../runtime/memory.js';
import { encodeBatches, type PixelBatch } from '../runtime/vision-batches.js';
import { budgetCount } from '../sparsity/policy.js';
import { keptCount } from '../sparsity/prune.js';
import { imageSalience } from '../sparsity/salience.js';
import type { Chat, ChatOptions } from './chat.js';
import type { ImageInput, Model } from './model.js';
import { EncodedImages, type VideoFrames } from './turn.js';

/** Refuses a bad `visionBatch` or `memoryLimit` when the chat is made. */
export function validateBounds(options: ChatOptions): void {
  visionBatch(options);
  const limit = options.memoryLimit;
  if (limit !== undefined && !(limit > 0)) {
    throw new InputError('OPTION_INVALID', `memoryLimit must be a positive number of bytes (Infinity for none), got ${limit}`, { subject: 'memoryLimit' });
  }
}

export function visionBatch(options: ChatOptions): number {
  const b = options.visionBatch ?? 8;
  if (!(Number.isInteger(b) && b > 0)) throw new InputError('OPTION_INVALID', `visionBatch must be a positive integer, got ${b}`, { subject: 'visionBatch' });
  return b;
}

/** Image files or bytes, decoded and preprocessed `batch` at a time. */
export async function* imageBatches(model: Model, images: readonly ImageInput[], batch: number): AsyncGenerator<PixelBatch> {
  for (let i = 0; i < images.length; i += batch) yield await model.pixels(images.slice(i, i + batch));
}

/** Tower + projector over pixel batches, salience per image, and their trace events (thumbnails, salience). */
export async function encodeVisual(chat: Chat, batches: AsyncIterable<PixelBatch>, t0: number, video?: VideoFrames): Promise<EncodedImages> {
  const { model } = chat;
  const first = chat.state.imagesSeen;
  const turn = chat.turn;
  const onBatch = async (pixels: PixelBatch, at: number) => {
    if (!chat.tracer.enabled) return;
    const [n, , h, w] = pixels.dims as [number, number, number, number];
    for (let i = 0; i < n; i++) {
      const thumb = await thumbnail(pixels.data.subarray(i * 3 * h * w, (i + 1) * 3 * h * w), h, w, model.preprocessor);
      chat.tracer.emit({ type: 'image', turn, image: first + at + i, ...thumb });
    }
  };
  const { vision, embeds, seconds } = await encodeBatches(model.runtime, batches, onBatch);
  const [n, tokens] = vision.featureDims as [number, number, number];
  const salienceSource = chat.policy.method === 'sparsevila' ? chat.policy.salience : 'auto';
  const salience = imageSalience(model.spec, vision, salienceSource);
  chat.trace((tr) =>
    salience.forEach((s, i) =>
      tr.emit({ type: 'salience', turn, image: first + i, source: s.source, grid: s.grid, leading: s.leading, scores: Array.from(s.scores) }),
    ),
  );
  chat.turnStarted = t0;
  // Decoding and encoding interleave batch by batch: each stage's span carries its summed time.
  const t1 = t0 + seconds.images * 1000;
  chat.span('images', t0, undefined, t1);
  chat.span('encode', t1, undefined, t1 + seconds.vision * 1000);
  const keyMetric = vision.keyMetric && alignToLlmTokens(vision.keyMetric, n, model.spec.vision.numPositions, tokens);
  return new EncodedImages(chat, n, embeds, salience, seconds, vision.features, keyMetric, video);
}

/** What a turn will put through the model, as far as it is known when it is checked. */
export interface TurnSize {
  /** Images / frames the turn still has to encode. */
  encode: number;
  /** The turn's visual tokens before pruning and how many enter the LLM; default: what the policy plans for `encode`. */
  visual?: { total: number; kept: number };
  /** The turn's exact prompt length once it is built; default: its kept visual tokens. */
  promptTokens?: number;
  /** The turn in words, for the message ("8 frame(s) of clip.mp4"). */
  what: string;
}

/** Refuses a turn that would exceed the chat's `memoryLimit` (MEMORY_LIMIT), before any of its work. */
export function checkTurnMemory(chat: Chat, size: TurnSize): void {
  const { model, state, policy, options } = chat;
  const spec = model.spec;
  const visual = size.visual ?? { total: size.encode * spec.imageTokenCount, kept: keptCount(policy, size.encode, spec.imageTokenCount) };
  const prompt = size.promptTokens ?? visual.kept;
  const maxNewTokens = options.maxNewTokens ?? 128;
  const rowsAfter = state.rows + prompt + maxNewTokens;
  const visualAfter = state.visualRows.length + visual.kept;
  const retrieves = policy.method === 'sparsevila';
  const images = state.imagesSeen + visual.total / spec.imageTokenCount;
  const retrieved = retrieves ? Math.min(visualAfter, budgetCount(policy.retrieve.budget, visualAfter) + policy.retrieve.minPerImage * images) : 0;
  const estimate = estimateTurnMemory(spec, {
    cachedRows: state.rows,
    promptTokens: prompt,
    maxNewTokens,
    chunk: options.prefillChunk ?? 512,
    frames: size.encode,
    visionBatch: options.visionBatch ?? 8,
    viewRows: retrieves ? rowsAfter - visualAfter + retrieved : 0,
    // At least this: the twin also holds what earlier turns pruned.
    twinRows: options.fidelity ? rowsAfter + visual.total - visual.kept : 0,
  });
  checkMemoryLimit(estimate, options.memoryLimit ?? defaultMemoryLimit(), `${size.what}, ${state.rows + prompt} tokens in the cache after its prompt`);
}

/** Per-image rows of a tower-token tensor, without the leading tokens the LLM does not see. */
function alignToLlmTokens(x: Float32Array, images: number, towerTokens: number, llmTokens: number): Float32Array {
  const width = x.length / (images * towerTokens);
  const skip = towerTokens - llmTokens;
  const out = new Float32Array(images * llmTokens * width);
  for (let i = 0; i < images; i++) out.set(x.subarray((i * towerTokens + skip) * width, (i + 1) * towerTokens * width), i * llmTokens * width);
  return out;
}
