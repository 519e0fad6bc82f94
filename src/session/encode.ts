/**
 * Step 1 of a turn, encode: images or video frames → the vision tower and projector, a vision batch at a
 * time (so a long video's tower activations are bounded by the batch) → projected tokens with their
 * salience, scored as the policy's method asks.
 */
import { thumbnail } from '../media/thumbnail.js';
import { encodeBatches, type PixelBatch } from '../runtime/vision-batches.js';
import { imageSalience, type ImageSalience } from '../sparsity/salience.js';
import type { Turn } from './conversation.js';
import type { ImageInput, LoadedModel, VideoFrames } from './types.js';

/** A turn's encoded images: what the prune step chooses from. */
export interface Encoded {
  images: number;
  /** Projected embeddings of every token of every image: [images · tokensPerImage, hidden]. */
  embeds: Float32Array;
  salience: ImageSalience[];
  seconds: { images: number; vision: number };
  /** Vision features before the projector, [images · tokensPerImage, featureSize]. */
  features: Float32Array;
  /** Feature-layer keys averaged over heads, per LLM image token: [images · tokensPerImage, headDim]. */
  keyMetric: Float32Array | undefined;
  /** The video the images are frames of, when the turn took one. */
  video?: VideoFrames;
}

/** Image files or bytes, decoded and preprocessed `batch` at a time. */
export async function* imageBatches(model: LoadedModel, images: readonly ImageInput[], batch: number): AsyncGenerator<PixelBatch> {
  for (let i = 0; i < images.length; i += batch) yield await model.pixels(images.slice(i, i + batch));
}

/** Tower + projector over pixel batches, salience per image, and their trace events (thumbnails, salience). */
export async function encode(turn: Turn, batches: AsyncIterable<PixelBatch>, video?: VideoFrames): Promise<Encoded> {
  const { model, options } = turn;
  const first = turn.conversation.imagesSeen;
  const tracer = turn.conversation.tracer;
  const onBatch = async (pixels: PixelBatch, at: number) => {
    if (!tracer.enabled) return;
    const [n, , h, w] = pixels.dims as [number, number, number, number];
    for (let i = 0; i < n; i++) {
      const thumb = await thumbnail(pixels.data.subarray(i * 3 * h * w, (i + 1) * 3 * h * w), h, w, model.preprocessor);
      turn.emit(() => ({ type: 'image', image: first + at + i, ...thumb }));
    }
  };
  const { vision, embeds, seconds } = await encodeBatches(model.runtime, batches, onBatch);
  const [n, tokens] = vision.featureDims as [number, number, number];
  const salience = imageSalience(model.spec, vision, options.method.salience?.(options.policy) ?? 'auto');
  salience.forEach((s, i) =>
    turn.emit(() => ({ type: 'salience', image: first + i, source: s.source, grid: s.grid, leading: s.leading, scores: Array.from(s.scores) })),
  );
  // Decoding and encoding interleave batch by batch: each stage's span carries its summed time.
  const t1 = turn.started + seconds.images * 1000;
  turn.span('images', turn.started, undefined, t1);
  turn.span('encode', t1, undefined, t1 + seconds.vision * 1000);
  const keyMetric = vision.keyMetric && alignToLlmTokens(vision.keyMetric, n, model.spec.vision.numPositions, tokens);
  return { images: n, embeds, salience, seconds, features: vision.features, keyMetric, video };
}

/** Per-image rows of a tower-token tensor, without the leading tokens the LLM does not see. */
function alignToLlmTokens(x: Float32Array, images: number, towerTokens: number, llmTokens: number): Float32Array {
  const width = x.length / (images * towerTokens);
  const skip = towerTokens - llmTokens;
  const out = new Float32Array(images * llmTokens * width);
  for (let i = 0; i < images; i++) out.set(x.subarray((i * towerTokens + skip) * width, (i + 1) * towerTokens * width), i * llmTokens * width);
  return out;
}
