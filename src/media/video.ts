/**
 * Video input: a file → the frames a turn sees, as RGB images. Three steps, each its own module:
 * probe (video-probe.ts, ffprobe: size, frame rate, frame count), sample (video-sample.ts: which frames, by
 * count or by fps, as transformers picks them), decode (video-decode.ts: those frames through an ffmpeg pipe).
 * `planVideo` does the first two — cheap, and enough to know how many visual tokens the turn will have
 * before any frame is decoded — and `decodeVideo` the third.
 */
import { InputError } from '../errors.js';
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

/**
 * How many frames to sample when the caller names no count: a model's own rule from the video's frame count and
 * rate and the `fps` asked for, if any (Qwen2-VL's: families/qwen2-vl/processor.ts `qwenFrameCount`).
 */
export type FrameCountRule = (info: VideoInfo, fps: number | undefined) => number;

/**
 * Probes the file and picks the frames; validates the sampling before touching the file. `rule`: the model's frame
 * count when the video gives no `frames` (default: DEFAULT_VIDEO_FRAMES, or `fps` frames a second).
 */
export async function planVideo(input: VideoInput, rule?: FrameCountRule): Promise<VideoPlan> {
  const source: VideoSource = typeof input === 'string' ? { path: input } : input;
  if (typeof source?.path !== 'string' || !source.path) {
    throw new InputError('OPTION_INVALID', `a video needs a file path, got ${JSON.stringify(input)}`, { subject: 'video' });
  }
  const given = source.frames === undefined && source.fps === undefined ? { frames: DEFAULT_VIDEO_FRAMES } : { frames: source.frames, fps: source.fps };
  const sampling = validateSampling(given as FrameSampling);
  const info = await probeVideo(source.path, { tools: source.tools, timeoutMs: source.timeoutMs });
  if (rule && source.frames === undefined) return { ...sampleFrames(info, { frames: rule(info, source.fps) }), info, source };
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
