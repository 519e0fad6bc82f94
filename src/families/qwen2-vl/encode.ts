/**
 * Qwen2-VL's encode step: each image at its native resolution (smart_resize) → pixel rows → the tower and
 * merger in one graph call → LLM inputs in image order, with salience from the salience block's attention
 * (no CLS token: the attention each patch receives, summed over the merged unit it joins). One image per
 * call: a call's full-attention blocks are N × N over its patches, so batching native-resolution images
 * would multiply that; the images of a turn are encoded one after another.
 *
 * There is no separate projector (the PatchMerger is the tower's last module), so the "features" a merging
 * method (VisionZip) merges are the merger's outputs, already in the LLM's space.
 */
import { concatFloat32 } from '../../arrays.js';
import { InputError } from '../../errors.js';
import { pilResize } from '../../media/pil-resample.js';
import type { RgbImage } from '../../media/rgb-image.js';
import {
  batchesOf,
  TOWER_SCORE_COPIES,
  type MediaFootprint,
  type EncodedMedia,
  type EncodeRequest,
  type GraphRunner,
  type MediaLayout,
  type SalienceInputs,
} from '../family.js';
import type { QwenVLSpec } from './config.js';
import { qwenPixelValues, qwenResize, qwenSize } from './processor.js';
import type { GridThw, QwenProcessors, QwenProcessorSpec } from './spec.js';
import { mergedSalience, qwenVisionFeeds } from './vision-order.js';

/**
 * One image before it is decoded: smart_resize keeps its area within [min_pixels, max_pixels] and rounds each
 * side to a multiple of 28, so its patches are about area / 14² (one more row and column of 28 at most). The
 * tower holds its full-attention scores over all of them (heads × N² × 3, as runtime/memory.ts counts
 * Llava's), a layer's activations and the pixel rows.
 */
export function qwenFootprint(spec: QwenVLSpec, processor: unknown, pixels?: number): MediaFootprint {
  return footprintOf(spec, (processor as QwenProcessors | undefined)?.image, pixels);
}

function footprintOf(spec: QwenVLSpec, p: QwenProcessorSpec | undefined, pixels: number | undefined): MediaFootprint {
  const v = spec.vision;
  const factor = v.patchSize * v.mergeSize;
  const maxPixels = p?.maxPixels ?? 28 * 28 * 1280;
  const area = Math.min(maxPixels, Math.max(p?.minPixels ?? 56 * 56, pixels ?? maxPixels));
  const side = Math.ceil(Math.sqrt(area) / factor) + 1;
  const units = side * side;
  const n = units * v.mergeSize * v.mergeSize;
  const rowLen = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const F32 = 4;
  return {
    tokens: units,
    towerBytes: (v.numHeads * n * n * TOWER_SCORE_COPIES + n * (v.hiddenSize * 6 + v.intermediateSize * 2) + n * rowLen * 2) * F32,
    embedBytes: units * spec.text.hiddenSize * F32,
  };
}

/** A video of `frames` frames of `pixels` each: its temporal slices (frames / temporal patch, rounded up) times a frame's tokens. */
export function qwenVideoFootprint(spec: QwenVLSpec, processor: unknown, pixels: number, frames: number): MediaFootprint {
  const frame = footprintOf(spec, (processor as QwenProcessors | undefined)?.video, pixels);
  const slices = Math.ceil(frames / spec.vision.temporalPatchSize);
  return { tokens: frame.tokens * slices, towerBytes: frame.towerBytes, embedBytes: frame.embedBytes * slices };
}

export async function encodeQwen(spec: QwenVLSpec, runner: GraphRunner, request: EncodeRequest): Promise<EncodedMedia> {
  return request.video ? encodeVideo(spec, runner, request, request.video.fps) : encodeImages(spec, runner, request);
}

/** One tower call's results, timed: the merged units' embeddings and keys, and salience at every full-attention block. */
interface TowerCall {
  grid: GridThw;
  units: number;
  embeds: Float32Array;
  keys?: Float32Array;
  /** Per full-attention block (spec order), the attention each unit receives. */
  received: Float32Array[];
}

/** Pixels of one image or one temporal slice → the tower; adds its preprocessing and graph time to `clock`. */
async function towerCall(spec: QwenVLSpec, runner: GraphRunner, frames: readonly RgbImage[], processor: QwenProcessorSpec, clock: Clock): Promise<TowerCall> {
  const v = spec.vision;
  const t0 = performance.now();
  const pixels = qwenPixelValues(frames, processor);
  const { feeds, units } = qwenVisionFeeds(pixels, v);
  const t1 = performance.now();
  clock.waited += t1 - t0;
  const out = await runner.runGraph('vision', feeds);
  clock.vision += performance.now() - t1;
  return {
    grid: pixels.grid,
    units,
    embeds: out.image_embeds!.data as Float32Array,
    keys: out.key_metric?.data as Float32Array | undefined,
    received: v.fullAttentionBlocks.map((b) => mergedSalience(out[`received_attention.${b}`]!.data as Float32Array, pixels.grid, v.mergeSize)),
  };
}

/** Time waiting for and preparing pixels vs in the tower, ms. */
interface Clock {
  waited: number;
  vision: number;
}

/** Salience inputs from per-block received attention (spec order of the full-attention blocks). */
function salienceOf(spec: QwenVLSpec, received: readonly Float32Array[]): SalienceInputs {
  const blocks = spec.vision.fullAttentionBlocks;
  const at = (block: number) => received[blocks.indexOf(block)];
  return { received: at(spec.vision.salienceBlock), summaryRows: 0, atBlock: at, blocks };
}

/** The calls' outputs as the encode step's result. */
function encoded(calls: TowerCall[], layouts: MediaLayout[], salience: SalienceInputs[], clock: Clock, waited: { ms: number }): EncodedMedia {
  const all = concatFloat32(calls.map((c) => c.embeds));
  return {
    embeds: all,
    features: all,
    keyMetric: calls.every((c) => c.keys) ? concatFloat32(calls.map((c) => c.keys!)) : undefined,
    layouts,
    salience,
    seconds: { images: (waited.ms + clock.waited) / 1000, vision: clock.vision / 1000 },
  };
}

/** Images, one graph call each. */
async function encodeImages(spec: QwenVLSpec, runner: GraphRunner, request: EncodeRequest): Promise<EncodedMedia> {
  const processor = (request.processor as QwenProcessors).image;
  const m = spec.vision.mergeSize;
  const waited = { ms: 0 };
  const clock = { waited: 0, vision: 0 };
  const calls: TowerCall[] = [];
  for await (const [frame] of batchesOf(request.frames, 1, waited)) {
    const t0 = performance.now();
    const shown = qwenResize(frame!, processor);
    await request.onImage?.(calls.length, shown);
    clock.waited += performance.now() - t0;
    calls.push(await towerCall(spec, runner, [shown], processor, clock));
  }
  const layouts = calls.map(({ grid: [t, h, w], units }) => ({ tokens: units, leading: 0, grid: { t, rows: h / m, cols: w / m } }));
  return encoded(
    calls,
    layouts,
    calls.map((c) => salienceOf(spec, c.received)),
    clock,
    waited,
  );
}

/**
 * One video: every frame resized to the size smart_resize gives its first (a video's frames share one size),
 * taken temporalPatchSize frames at a time — one temporal slice per graph call, since the tower's full
 * attention never crosses slices (`cu_seqlens` splits by slice) and its windows never do either; a last
 * slice short of frames repeats its last frame, as the processor pads. The video is one media: a
 * `t × rows × cols` grid of tokens, slice after slice, and `second_per_grid_t = temporalPatchSize / fps` for
 * M-RoPE's time axis (transformers takes fps from the processor call, default 2; here it is the rate the
 * frames were sampled at).
 */
async function encodeVideo(spec: QwenVLSpec, runner: GraphRunner, request: EncodeRequest, fps: number): Promise<EncodedMedia> {
  const processor = (request.processor as QwenProcessors).video;
  const v = spec.vision;
  const waited = { ms: 0 };
  const clock = { waited: 0, vision: 0 };
  const calls: TowerCall[] = [];
  let size: { width: number; height: number } | undefined;
  /** Each slice's first frame, for the thumbnail: the slices stacked top to bottom, as the tokens are. */
  const firsts: RgbImage[] = [];
  for await (const frames of batchesOf(request.frames, v.temporalPatchSize, waited)) {
    const t0 = performance.now();
    size ??= qwenSize(frames[0]!.width, frames[0]!.height, processor);
    const shown = frames.map((f) => (f.width === size!.width && f.height === size!.height ? f : pilResize(f, size!.width, size!.height, 'bicubic')));
    if (request.onImage) firsts.push(shown[0]!);
    clock.waited += performance.now() - t0;
    calls.push(await towerCall(spec, runner, shown, processor, clock));
  }
  if (!calls.length) throw new InputError('OPTION_INVALID', 'the video gave no frames to encode', { subject: 'video' });
  if (firsts.length) await request.onImage?.(0, stackVertically(firsts));
  const [, h, w] = calls[0]!.grid;
  const slices = calls.reduce((n, c) => n + c.grid[0], 0);
  const grid = { t: slices, rows: h / v.mergeSize, cols: w / v.mergeSize };
  const layout: MediaLayout = { tokens: slices * grid.rows * grid.cols, leading: 0, grid, secondsPerSlice: v.temporalPatchSize / fps };
  const received = v.fullAttentionBlocks.map((_, i) => concatFloat32(calls.map((c) => c.received[i]!)));
  return encoded(calls, [layout], [salienceOf(spec, received)], clock, waited);
}

/**
 * Frames of one size, top to bottom: a video's picture for its token grid, which holds the temporal slices one
 * under another (t · rows rows of cols tokens), so a retention map over it is a strip of the slices.
 */
function stackVertically(frames: readonly RgbImage[]): RgbImage {
  const { width, height } = frames[0]!;
  const data = new Uint8Array(width * height * 3 * frames.length);
  frames.forEach((f, i) => data.set(f.data, i * width * height * 3));
  return { width, height: height * frames.length, data };
}
