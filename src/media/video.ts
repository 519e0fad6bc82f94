/**
 * Video input: a file → the frames a turn sees, as RGB images. Three steps, each its own module:
 * probe (video-probe.ts, ffprobe: size, frame rate, frame count), sample (video-sample.ts: which frames, by
 * count or by fps, as transformers picks them), decode (video-decode.ts: those frames through an ffmpeg pipe).
 * `planVideo` does the first two — cheap, and enough to know how many visual tokens the turn will have
 * before any frame is decoded — and `decodeVideo` the third.
 */
import { ConfigError, InputError } from '../errors.js';
import { preprocessImage } from './image.js';
import type { RgbImage } from './rgb-image.js';
import type { PreprocessorConfig } from './preprocessor-config.js';
import { decodeFrames, type VideoFrame } from './video-decode.js';
import { probeVideo, type VideoInfo } from './video-probe.js';
import { sampleFrames, validateSampling, type FrameSample, type FrameSampling } from './video-sample.js';
import type { VideoTools } from './video-tool.js';

/** Frames sampled when a video gives neither `frames` nor `fps`. */
export const DEFAULT_VIDEO_FRAMES = 8;

/** A video for one turn: a path alone samples DEFAULT_VIDEO_FRAMES frames. */
export type VideoInput = string | VideoSource;

export interface VideoSource {
  path: string;
  /** Sample this many frames uniformly over the video… */
  frames?: number;
  /** …or this many per second of video (not both). */
  fps?: number;
  /** Stop ffprobe / ffmpeg after this long (ms). Default 2 minutes for probing, 10 minutes for decoding. */
  timeoutMs?: number;
  /** ffmpeg / ffprobe binaries (default: on PATH). */
  tools?: VideoTools;
}

export interface VideoPlan extends FrameSample {
  info: VideoInfo;
  source: VideoSource;
}

/** Probes the file and picks the frames; validates the sampling before touching the file. */
export async function planVideo(input: VideoInput): Promise<VideoPlan> {
  const source: VideoSource = typeof input === 'string' ? { path: input } : input;
  if (typeof source?.path !== 'string' || !source.path) {
    throw new InputError('OPTION_INVALID', `a video needs a file path, got ${JSON.stringify(input)}`, { subject: 'video' });
  }
  const given = source.frames === undefined && source.fps === undefined ? { frames: DEFAULT_VIDEO_FRAMES } : { frames: source.frames, fps: source.fps };
  const sampling = validateSampling(given as FrameSampling);
  const info = await probeVideo(source.path, { tools: source.tools, timeoutMs: source.timeoutMs });
  return { ...sampleFrames(info, sampling), info, source };
}

/** The plan's frames, in order, as they are decoded. */
export function decodeVideo(plan: VideoPlan): AsyncGenerator<VideoFrame, void> {
  return decodeFrames(plan.info, plan.indices, { tools: plan.source.tools, timeoutMs: plan.source.timeoutMs });
}

/** Plan and decode in one call, every frame held (tests, notebooks; a turn streams them instead). */
export async function readVideo(input: VideoInput): Promise<{ plan: VideoPlan; frames: VideoFrame[] }> {
  const plan = await planVideo(input);
  const frames: VideoFrame[] = [];
  for await (const frame of decodeVideo(plan)) frames.push(frame);
  return { plan, frames };
}

/**
 * Frames → model input, `batch` frames at a time ([n, 3, H, W] float32), each frame run through the image
 * preprocessor as it arrives and dropped once packed. `size` is the tower's input side: a preprocessor that
 * produces another size is a checkpoint error, named as Model.pixels names it for images.
 */
export async function* pixelBatches(
  frames: AsyncIterable<RgbImage>,
  config: PreprocessorConfig,
  batch: number,
  size: number,
  checkpointDir: string,
): AsyncGenerator<{ data: Float32Array; dims: number[] }, void> {
  const plane = 3 * size * size;
  let data = new Float32Array(batch * plane);
  let n = 0;
  for await (const frame of frames) {
    const t = await preprocessImage(frame, config);
    const [, h, w] = t.dims;
    if (h !== size || w !== size) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `${checkpointDir}/preprocessor_config.json produces ${w}×${h} pixels but the vision tower takes ${size}×${size} (vision_config.image_size)`,
        { subject: 'preprocessor_config.json' },
      );
    }
    data.set(t.data, n++ * plane);
    if (n === batch) {
      yield { data, dims: [n, 3, size, size] };
      data = new Float32Array(batch * plane);
      n = 0;
    }
  }
  if (n) yield { data: data.slice(0, n * plane), dims: [n, 3, size, size] };
}
