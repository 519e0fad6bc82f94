/**
 * The vision tower and projector over many images or video frames, a batch at a time: the tower's
 * activations (heads × N² attention per frame) are bounded by the batch, not by the video's length, and a
 * batch's pixels are dropped once it is encoded. Outputs are per image along the first axis, so batches
 * concatenate into exactly what one call over every frame returns.
 */
import { concatFloat32 } from './arrays.js';
import type { VisionResult } from './protocol.js';
import type { Runtime } from './runtime.js';

/** [images, 3, H, W] float32 pixels. */
export interface PixelBatch {
  data: Float32Array;
  dims: number[];
}

export interface EncodedVisual {
  vision: VisionResult;
  /** Projected embeddings [images · tokens, hidden]. */
  embeds: Float32Array;
  /** Waiting for pixels (decoding, preprocessing) vs running the tower and projector. */
  seconds: { images: number; vision: number };
}

/**
 * Encodes each batch as it comes; `onBatch` sees its pixels and the index of its first image (thumbnails for
 * traces) before they are dropped.
 */
export async function encodeBatches(
  runtime: Runtime,
  batches: AsyncIterable<PixelBatch>,
  onBatch?: (pixels: PixelBatch, first: number) => Promise<void> | void,
): Promise<EncodedVisual> {
  const results: VisionResult[] = [];
  const embeds: Float32Array[] = [];
  let images = 0;
  let waiting = 0;
  let encoding = 0;
  let mark = performance.now();
  for await (const batch of batches) {
    const t = performance.now();
    waiting += t - mark;
    await onBatch?.(batch, images);
    const vision = await runtime.vision(batch.data, batch.dims);
    const [n, tokens, size] = vision.featureDims as [number, number, number];
    embeds.push(await runtime.project(vision.features, [n * tokens, size]));
    results.push(vision);
    images += n;
    mark = performance.now();
    encoding += mark - t;
  }
  return { vision: concatVision(results), embeds: concatFloat32(embeds), seconds: { images: waiting / 1000, vision: encoding / 1000 } };
}

/** Per-image outputs of several tower calls as one result. */
function concatVision(parts: VisionResult[]): VisionResult {
  if (parts.length === 1) return parts[0]!;
  const field = (pick: (r: VisionResult) => Float32Array | undefined) => (parts.every((p) => pick(p)) ? concatFloat32(parts.map((p) => pick(p)!)) : undefined);
  const dims = [...parts[0]!.featureDims];
  dims[0] = parts.reduce((n, p) => n + p.featureDims[0]!, 0);
  return {
    features: concatFloat32(parts.map((p) => p.features)),
    featureDims: dims,
    clsAttention: field((p) => p.clsAttention),
    meanAttention: field((p) => p.meanAttention),
    keyMetric: field((p) => p.keyMetric),
    leadingRows: field((p) => p.leadingRows),
  };
}
