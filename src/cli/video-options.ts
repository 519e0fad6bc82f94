/**
 * Video and memory flags of `sparsevila ask`: which video and frames, how the keep budget spreads over
 * frames, and the bounds a long video runs within (vision batch, memory limit).
 */
import { InputError } from '../errors.js';
import { DEFAULT_VIDEO_FRAMES, type VideoSource } from '../media/video.js';
import { defaultMemoryLimit, formatBytes } from '../runtime/memory.js';
import type { PolicyValue } from '../sparsity/method.js';
import { validatePolicy } from '../sparsity/registry.js';
import { parseInteger, parseSize } from './options.js';

export const videoOptionSpec = {
  video: { type: 'string' },
  frames: { type: 'string' },
  fps: { type: 'string' },
  'keep-min-per-frame': { type: 'string' },
  'vision-batch': { type: 'string' },
  'memory-limit': { type: 'string' },
} as const;

export const VIDEO_OPTIONS_HELP = `Video and memory options:
  --video FILE           a video (anything Debian's ffmpeg reads) instead of --image; its frames enter the
                         prompt as consecutive images
  --frames N             sample N frames uniformly over the video (default ${DEFAULT_VIDEO_FRAMES})
  --fps F                or sample F frames per second of video
  --keep-min-per-frame N with --keep: keep at least N tokens of every frame (its most salient); with
                         --keep-scope global the rest of the budget goes to the most salient tokens of any frame
  --vision-batch N       frames per vision-tower call (default 8): bounds the tower's memory
  --memory-limit SIZE    refuse a turn whose estimated memory (KV cache, prefill chunk, vision batch) exceeds
                         SIZE, before any work: bytes, or 512M, 12G (default half of this machine's memory,
                         ${formatBytes(defaultMemoryLimit())} here)
`;

type VideoValues = Partial<Record<keyof typeof videoOptionSpec, string>> & { image?: string[] };

export interface VideoOptions {
  video?: VideoSource;
  policy: PolicyValue;
  visionBatch?: number;
  memoryLimit?: number;
}

/** Parses the flags; `policy` is the one the policy flags gave, returned with `--keep-min-per-frame` applied. */
export function parseVideoOptions(values: VideoValues, policy: PolicyValue): VideoOptions {
  const { video } = values;
  if (video === undefined && (values.frames !== undefined || values.fps !== undefined)) {
    throw new InputError('OPTION_INVALID', `${values.frames !== undefined ? '--frames' : '--fps'} needs --video FILE`, { subject: '--video' });
  }
  if (video !== undefined && values.image?.length) throw new InputError('OPTION_INVALID', 'give --image or --video, not both', { subject: '--video' });
  if (values.frames !== undefined && values.fps !== undefined) throw new InputError('OPTION_INVALID', 'give --frames or --fps, not both', { subject: '--fps' });
  const positive = (value: string | undefined, flag: string) => {
    if (value === undefined) return undefined;
    const n = parseInteger(value, flag);
    if (n < 1) throw new InputError('OPTION_INVALID', `${flag} must be ≥ 1; got ${n}`, { subject: flag });
    return n;
  };
  let fps: number | undefined;
  if (values.fps !== undefined) {
    fps = Number(values.fps);
    if (!(Number.isFinite(fps) && fps > 0))
      throw new InputError('OPTION_INVALID', `--fps must be a positive number; got '${values.fps}'`, { subject: '--fps' });
  }
  const memoryLimit = values['memory-limit'] === undefined ? undefined : parseSize(values['memory-limit'], '--memory-limit');
  const minPerFrame = values['keep-min-per-frame'] === undefined ? undefined : parseInteger(values['keep-min-per-frame'], '--keep-min-per-frame');
  if (minPerFrame !== undefined) {
    if (typeof policy.keep !== 'object' || policy.keep === null) {
      throw new InputError('OPTION_INVALID', `--keep-min-per-frame needs a policy with a keep budget, not '${policy.method}'`, {
        subject: '--keep-min-per-frame',
      });
    }
    policy = validatePolicy({ ...policy, keep: { ...(policy.keep as object), minPerImage: minPerFrame } });
  }
  return {
    video:
      video === undefined
        ? undefined
        : { path: video, ...(fps !== undefined ? { fps } : { frames: positive(values.frames, '--frames') ?? DEFAULT_VIDEO_FRAMES }) },
    policy,
    visionBatch: positive(values['vision-batch'], '--vision-batch'),
    memoryLimit,
  };
}
