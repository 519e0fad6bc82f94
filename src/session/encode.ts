/**
 * Step 1 of a turn, encode: images or video frames → the model family's encode step (its processor, tower
 * and projector, a vision batch at a time, so a long video's tower activations are bounded by the batch) →
 * LLM inputs with their salience, scored as the policy's method asks.
 */
import path from 'node:path';
import type { EncodedMedia, MediaLayout } from '../families/family.js';
import { familyOf } from '../families/registry.js';
import { loadImage } from '../media/image.js';
import type { RgbImage } from '../media/rgb-image.js';
import { thumbnailOf } from '../media/thumbnail.js';
import { imageSalience, type ImageSalience } from '../sparsity/salience.js';
import type { Turn } from './conversation.js';
import type { ImageInput, LoadedModel, VideoFrames } from './types.js';

/** A turn's encoded images: what the prune step chooses from. */
export interface Encoded {
  images: number;
  /** LLM inputs of every token of every image: [Σ tokens, hidden], image after image. */
  embeds: Float32Array;
  salience: ImageSalience[];
  seconds: { images: number; vision: number };
  /** The tokens before the projector, [Σ tokens, featureSize] (the merger's output on Qwen2-VL). */
  features: Float32Array;
  /** The salience layer's keys averaged over heads, per LLM token: [Σ tokens, headDim]. */
  keyMetric: Float32Array | undefined;
  /** Each image's token count and grid (native-resolution models differ image to image). */
  layouts: MediaLayout[];
  /** The video the images are frames of, when the turn took one. */
  video?: VideoFrames;
}

/** Image files or bytes, decoded one at a time as the encode step asks for them. */
export async function* imageFrames(model: LoadedModel, images: readonly ImageInput[]): AsyncGenerator<RgbImage> {
  for (const image of images) yield await loadImage(image, { maxPixels: model.maxImagePixels });
}

/** The trace's name of an input: a path's base name (no directories: traces are shared); none for bytes. */
export function traceFileName(input: ImageInput): string | undefined {
  return typeof input === 'string' ? path.basename(input) : undefined;
}

/**
 * The family's encode step over the turn's frames, salience per image, and their trace events (thumbnails, salience).
 * `files`: each image's input, for its trace event's file name (a video's frames take the video's).
 */
export async function encode(turn: Turn, frames: AsyncIterable<RgbImage>, video?: VideoFrames, files: readonly ImageInput[] = []): Promise<Encoded> {
  const { model, options } = turn;
  const first = turn.conversation.imagesSeen;
  const tracer = turn.conversation.tracer;
  const family = familyOf(model.spec);
  // A family with a video token encodes the video as one media (every frame one image); others, a frame an image.
  const asOne = video !== undefined && Boolean(family.videoToken);
  const timesOf = (i: number) =>
    !video ? undefined : asOne ? video.frames.map((f) => f.timestamp) : video.frames[i] ? [video.frames[i]!.timestamp] : undefined;
  const onImage = async (i: number, shown: RgbImage) => {
    if (!tracer.enabled) return;
    // A video's strip of slices gets 256 px a slice, up to 8192 px in all.
    const thumb = await thumbnailOf(shown, Math.min(8192, 256 * Math.max(1, Math.round(shown.height / shown.width))));
    const timestamps = timesOf(i);
    const input = video ? video.file : files[i];
    const file = input === undefined ? undefined : traceFileName(input);
    turn.emit(() => ({ type: 'image', image: first + i, ...thumb, ...(timestamps ? { timestamps } : {}), ...(file ? { file } : {}) }));
  };
  const media: EncodedMedia = await family.encode(model.spec, model.runtime, {
    frames,
    processor: model.processor,
    batch: options.visionBatch,
    dir: model.dir,
    onImage,
    video: asOne ? { fps: video.fps } : undefined,
  });
  const salience = imageSalience(media.salience, media.layouts, options.method.salience?.(options.policy) ?? 'auto');
  salience.forEach((s, i) =>
    turn.emit(() => ({ type: 'salience', image: first + i, source: s.source, grid: s.grid, leading: s.leading, scores: Array.from(s.scores) })),
  );
  // Decoding and encoding interleave batch by batch: each stage's span carries its summed time. The encode span
  // runs on to the step's end, so the timeline has no unexplained gap before prune: after the tower the step
  // still gathers each image's LLM inputs and scores (and traces) its salience — `outputsMs` in the span's detail,
  // beside the tower's own `towerMs`.
  const { seconds } = media;
  const t1 = turn.started + seconds.images * 1000;
  const tower = seconds.vision * 1000;
  const end = Math.max(performance.now(), t1 + tower);
  turn.span('images', turn.started, undefined, t1);
  turn.span('encode', t1, { towerMs: tower, outputsMs: end - t1 - tower }, end);
  return {
    images: media.layouts.length,
    embeds: media.embeds,
    salience,
    seconds,
    features: media.features,
    keyMetric: media.keyMetric,
    layouts: media.layouts,
    video,
  };
}
