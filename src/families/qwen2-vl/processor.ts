/**
 * The Qwen2-VL / Qwen2.5-VL image and video processor: preprocessor_config.json → QwenProcessorSpec, and
 * frames → `pixel_values` rows, as transformers 4.57's models/qwen2_vl/image_processing_qwen2_vl.py (the slow,
 * PIL processor) and video_processing_qwen2_vl.py run them: smart_resize → resize (PIL bicubic, uint8) →
 * rescale → normalize → frames to a multiple of temporal_patch_size → patches in the processor's order.
 *
 * Row order (image_processing_qwen2_vl.py `_preprocess`): the frames, [T, C, H, W], are viewed as
 * (gt, tp, C, gh/m, m, p, gw/m, m, p) and permuted to (gt, gh/m, gw/m, m, m, C, tp, p, p): for t, for
 * block-row, for block-col, for row-in-block, for col-in-block, one row of C·tp·p·p values laid out as the
 * Conv3d weight [hidden, C, tp, p, p]. A block is the m × m patches one LLM token merges.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, InputError } from '../../errors.js';
import { pilResize } from '../../media/pil-resample.js';
import { readConfigFile } from '../../media/preprocessor-config.js';
import type { RgbImage } from '../../media/rgb-image.js';
import type { GridThw, QwenProcessors, QwenProcessorSpec, QwenVideoSampling } from './spec.js';

// transformers' defaults: Qwen2VLImageProcessor.__init__ and image_utils.py OPENAI_CLIP_MEAN/STD.
const DEFAULTS: QwenProcessorSpec = {
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  rescaleFactor: 1 / 255,
  doResize: true,
  doRescale: true,
  doNormalize: true,
};
/** PIL.Image.Resampling.BICUBIC, the processor's default and the only filter its checkpoints use. */
const BICUBIC = 3;

/**
 * Validates parsed `preprocessor_config.json` (or `video_preprocessor_config.json`). The pixel bounds come
 * from `min_pixels` / `max_pixels` or the newer `size: {shortest_edge, longest_edge}` (both are pixel
 * counts, not edges); as in Qwen2VLImageProcessor.__init__, the flat keys win when both are present.
 */
export function parseQwenProcessorConfig(json: unknown, file = 'preprocessor_config.json'): QwenProcessorSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('CONFIG_INVALID', `${file} must hold a JSON object`, { subject: file });
  }
  const cfg = json as Record<string, unknown>;
  const bad = (key: string, what: string, value: unknown) =>
    new ConfigError('CONFIG_INVALID', `${file}: ${key} must be ${what}, got ${JSON.stringify(value)}`, { subject: `${file}#${key}` });
  const positiveInt = (key: string, v: unknown, fallback: number): number => {
    if (v == null) return fallback;
    if (!Number.isSafeInteger(v) || (v as number) <= 0) throw bad(key, 'a positive integer', v);
    return v as number;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = cfg[key];
    if (v == null) return fallback;
    if (typeof v !== 'boolean') throw bad(key, 'true or false', v);
    return v;
  };
  const triple = (key: string, fallback: [number, number, number]): [number, number, number] => {
    const v = cfg[key];
    if (v == null) return fallback;
    if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as [number, number, number];
    throw bad(key, 'a number or three numbers (R, G, B)', v);
  };
  const size = cfg.size;
  if (size != null && (typeof size !== 'object' || Array.isArray(size))) throw bad('size', 'an object {shortest_edge, longest_edge}', size);
  const s = (size ?? {}) as Record<string, unknown>;
  const minPixels = positiveInt('min_pixels', cfg.min_pixels, positiveInt('size.shortest_edge', s.shortest_edge, DEFAULTS.minPixels));
  const maxPixels = positiveInt('max_pixels', cfg.max_pixels, positiveInt('size.longest_edge', s.longest_edge, DEFAULTS.maxPixels));
  if (minPixels > maxPixels) throw bad('min_pixels', `at most max_pixels (${maxPixels})`, minPixels);

  const rescaleFactor = cfg.rescale_factor ?? DEFAULTS.rescaleFactor;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) throw bad('rescale_factor', 'a number', rescaleFactor);
  const imageStd = triple('image_std', DEFAULTS.imageStd);
  if (imageStd.some((x) => x === 0)) throw bad('image_std', 'non-zero', imageStd);
  if (cfg.resample != null && cfg.resample !== BICUBIC) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: resample ${JSON.stringify(cfg.resample)} is not supported: Qwen2-VL processors resize with 3 (bicubic)`,
      {
        subject: `${file}#resample`,
      },
    );
  }
  return {
    minPixels,
    maxPixels,
    patchSize: positiveInt('patch_size', cfg.patch_size, DEFAULTS.patchSize),
    temporalPatchSize: positiveInt('temporal_patch_size', cfg.temporal_patch_size, DEFAULTS.temporalPatchSize),
    mergeSize: positiveInt('merge_size', cfg.merge_size, DEFAULTS.mergeSize),
    imageMean: triple('image_mean', DEFAULTS.imageMean),
    imageStd,
    rescaleFactor,
    doResize: flag('do_resize', DEFAULTS.doResize),
    doRescale: flag('do_rescale', DEFAULTS.doRescale),
    doNormalize: flag('do_normalize', DEFAULTS.doNormalize),
  };
}

/** Reads and validates `<dir>/<name>` (default preprocessor_config.json; videos: video_preprocessor_config.json). */
export async function loadQwenProcessorConfig(dir: string, name = 'preprocessor_config.json'): Promise<QwenProcessorSpec> {
  const file = path.join(dir, name);
  return parseQwenProcessorConfig(await readConfigFile(file), file);
}

/**
 * Both processors of a checkpoint: the image processor's config, and the video processor's where the checkpoint
 * has video_preprocessor_config.json (else the image one), with its frame sampling (`fps`, `min_frames`,
 * `max_frames`; defaults 2, 4, 768 as qwen-vl-utils samples).
 */
export async function loadQwenProcessors(dir: string): Promise<QwenProcessors> {
  const image = await loadQwenProcessorConfig(dir);
  const file = path.join(dir, 'video_preprocessor_config.json');
  if (!fs.existsSync(file)) return { image, video: image, sampling: { fps: 2, minFrames: 4, maxFrames: 768 } };
  const json = await readConfigFile(file);
  return { image, video: parseQwenProcessorConfig(json, file), sampling: parseVideoSampling(json as Record<string, unknown>, file) };
}

function parseVideoSampling(cfg: Record<string, unknown>, file: string): QwenVideoSampling {
  const num = (key: string, fallback: number, integer: boolean): number => {
    const v = cfg[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isSafeInteger(v))) {
      throw new ConfigError('CONFIG_INVALID', `${file}: ${key} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`, {
        subject: `${file}#${key}`,
      });
    }
    return v;
  };
  const sampling = { fps: num('fps', 2, false), minFrames: num('min_frames', 4, true), maxFrames: num('max_frames', 768, true) };
  if (sampling.minFrames > sampling.maxFrames) {
    throw new ConfigError('CONFIG_INVALID', `${file}: min_frames ${sampling.minFrames} is over max_frames ${sampling.maxFrames}`, {
      subject: `${file}#min_frames`,
    });
  }
  return sampling;
}

/**
 * Frames of a video of `frameCount` frames at `videoFps` to sample at `fps` (Qwen2VLVideoProcessor.sample_frames,
 * transformers 4.57): `frameCount / videoFps · fps`, within [minFrames, min(maxFrames, frameCount)], floored to
 * a multiple of the temporal patch (at least one patch).
 */
export function qwenFrameCount(sampling: QwenVideoSampling, temporalPatch: number, frameCount: number, videoFps: number, fps = sampling.fps): number {
  const maxFrames = Math.floor(Math.min(sampling.maxFrames, frameCount) / temporalPatch) * temporalPatch;
  const n = Math.min(Math.max((frameCount / videoFps) * fps, sampling.minFrames), maxFrames, frameCount);
  return Math.max(Math.min(temporalPatch, frameCount), Math.floor(n / temporalPatch) * temporalPatch);
}

/** Python's `round`: halves go to the even neighbour (round(2.5) = 2, round(3.5) = 4). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * image_processing_qwen2_vl.py `smart_resize`: both sides multiples of `factor` (patch · merge), the area
 * within [minPixels, maxPixels], the aspect ratio kept as closely as that allows; `round` is Python's
 * (half to even). An image over maxPixels is scaled down (never below `factor` a side, the `max(factor, …)`
 * of 4.57), one under minPixels up. A side under `factor` (transformers' `height < factor or width <
 * factor` check) or an aspect ratio over 200 is refused.
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): { height: number; width: number } {
  const subject = `${width}x${height}`;
  if (height < factor || width < factor) {
    throw new InputError('IMAGE_SIZE', `an image of ${width}x${height} (W x H) is too small: both sides must be at least ${factor} pixels (patch x merge)`, {
      subject,
    });
  }
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new InputError('IMAGE_SIZE', `an image of ${width}x${height} (W x H) has an aspect ratio over 200; crop or pad it`, { subject });
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

/** One image or video after the processor. */
export interface QwenPixels {
  /** [t·h·w, C·tp·p·p] rows in the processor's patch order. */
  pixels: Float32Array;
  grid: GridThw;
}

/**
 * One image (one frame) or one video (several frames of one size) → `pixel_values` and its grid. A single
 * image is repeated to temporalPatchSize frames (`np.tile`); a video whose frame count is not a multiple
 * of temporalPatchSize is padded to the next multiple by repeating its last frame, as the processors do.
 * Frames are resized with PIL's bicubic, as the image processor does; transformers' video processor
 * resizes with torchvision, which differs from PIL by a few levels where a video needs resizing.
 */
export function qwenPixelValues(frames: readonly RgbImage[], spec: QwenProcessorSpec): QwenPixels {
  if (frames.length === 0) throw new InputError('OPTION_INVALID', 'qwenPixelValues needs at least one frame', { subject: 'frames' });
  const { width, height } = frames[0]!;
  const odd = frames.find((f) => f.width !== width || f.height !== height);
  if (odd) {
    throw new InputError('IMAGE_SIZE', `a video's frames must share one size: ${width}x${height} and ${odd.width}x${odd.height}`, {
      subject: `${odd.width}x${odd.height}`,
    });
  }
  const size = qwenSize(width, height, spec);
  const planes = frames.map((f) => toPlanes(f.width === size.width && f.height === size.height ? f : pilResize(f, size.width, size.height, 'bicubic'), spec));
  const tp = spec.temporalPatchSize;
  const padded = [...planes];
  const target = planes.length === 1 ? tp : Math.ceil(planes.length / tp) * tp;
  while (padded.length < target) padded.push(planes[planes.length - 1]!);
  const grid: GridThw = [padded.length / tp, size.height / spec.patchSize, size.width / spec.patchSize];
  return { pixels: patchify(padded, size.height, size.width, grid, spec), grid };
}

/** The size the processor resizes a `width × height` image to (smart_resize, or as is under do_resize false). */
export function qwenSize(width: number, height: number, spec: QwenProcessorSpec): { width: number; height: number } {
  const factor = spec.patchSize * spec.mergeSize;
  const size = spec.doResize ? smartResize(height, width, factor, spec.minPixels, spec.maxPixels) : { height, width };
  if (size.height % factor !== 0 || size.width % factor !== 0) {
    throw new InputError('IMAGE_SIZE', `an image of ${width}x${height} must have sides that are multiples of ${factor} when do_resize is false`, {
      subject: `${width}x${height}`,
    });
  }
  return size;
}

/** An image (frame) as the tower sees it: resized to `qwenSize` with PIL's bicubic (itself when no resize is needed). */
export function qwenResize(image: RgbImage, spec: QwenProcessorSpec): RgbImage {
  const size = qwenSize(image.width, image.height, spec);
  return image.width === size.width && image.height === size.height ? image : pilResize(image, size.width, size.height, 'bicubic');
}

/**
 * rescale then normalize into CHW float32 with numpy's rounding (image_transforms.py): the uint8 value times
 * the factor in float64, cast to float32; then (x − mean) / std in float32.
 */
function toPlanes(image: RgbImage, spec: QwenProcessorSpec): Float32Array {
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(spec.imageMean[c]!);
    const std = Math.fround(spec.imageStd[c]!);
    for (let p = 0; p < plane; p++) {
      let v = image.data[p * 3 + c]!;
      if (spec.doRescale) v = Math.fround(v * spec.rescaleFactor);
      if (spec.doNormalize) v = Math.fround(Math.fround(v - mean) / std);
      out[c * plane + p] = v;
    }
  }
  return out;
}

/** Frames [T][C, H, W] → rows in the processor's patch order (see the header). */
function patchify(frames: Float32Array[], height: number, width: number, grid: GridThw, spec: QwenProcessorSpec): Float32Array {
  const { patchSize: p, temporalPatchSize: tp, mergeSize: m } = spec;
  const [gt, gh, gw] = grid;
  const rowLen = 3 * tp * p * p;
  const out = new Float32Array(gt * gh * gw * rowLen);
  let o = 0;
  for (let t = 0; t < gt; t++)
    for (let br = 0; br < gh / m; br++)
      for (let bc = 0; bc < gw / m; bc++)
        for (let r = 0; r < m; r++)
          for (let c = 0; c < m; c++) {
            const y0 = (br * m + r) * p;
            const x0 = (bc * m + c) * p;
            for (let ch = 0; ch < 3; ch++)
              for (let f = 0; f < tp; f++) {
                const frame = frames[t * tp + f]!;
                for (let y = 0; y < p; y++) {
                  const src = ch * height * width + (y0 + y) * width + x0;
                  out.set(frame.subarray(src, src + p), o);
                  o += p;
                }
              }
          }
  return out;
}
