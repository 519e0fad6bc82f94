/**
 * Which frames of a video a turn sees: N frames uniformly over the video, or F frames per second of it —
 * transformers' default_sample_indices_fn (video_utils.py), which the Llava video processors use:
 *   by fps:   N = int(total_frames / video_fps * fps)  (more than total_frames is refused)
 *   by count: indices = np.arange(0, total_frames, total_frames / N).astype(int), i.e. frame ⌊k · total/N⌋
 * and, as its VideoMetadata.timestamps, frame i is at i / video_fps seconds. We take exactly the first N of
 * numpy's arange (its float step can add one more for a few ratios) and refuse N > total_frames, where the
 * arange would repeat frames.
 */
import { InputError } from '../errors.js';
import type { VideoInfo } from './video-probe.js';

/** Exactly one of `frames` (count, uniformly over the video) or `fps` (frames per second of video). */
export type FrameSampling = { frames: number; fps?: undefined } | { fps: number; frames?: undefined };

export interface FrameSample {
  /** Frame indices into the stream (0-based, ascending). */
  indices: number[];
  /** Seconds from the first frame: index / fps. */
  timestamps: number[];
}

/** Refuses anything but exactly one of a positive integer `frames` or a positive `fps`. */
export function validateSampling(sampling: FrameSampling): FrameSampling {
  const { frames, fps } = sampling as { frames?: unknown; fps?: unknown };
  if ((frames === undefined) === (fps === undefined)) {
    throw new InputError('OPTION_INVALID', `video sampling needs exactly one of frames (a count) or fps (frames per second), got ${JSON.stringify(sampling)}`, {
      subject: 'frames',
    });
  }
  if (frames !== undefined && !(Number.isInteger(frames) && (frames as number) > 0)) {
    throw new InputError('OPTION_INVALID', `frames must be a positive integer, got ${String(frames)}`, { subject: 'frames' });
  }
  if (fps !== undefined && !(typeof fps === 'number' && Number.isFinite(fps) && fps > 0)) {
    throw new InputError('OPTION_INVALID', `fps must be a positive number, got ${String(fps)}`, { subject: 'fps' });
  }
  return frames !== undefined ? { frames: frames as number } : { fps: fps as number };
}

export function sampleFrames(info: Pick<VideoInfo, 'file' | 'frameCount' | 'fps' | 'durationSeconds'>, sampling: FrameSampling): FrameSample {
  const s = validateSampling(sampling);
  const total = info.frameCount;
  let n: number;
  if (s.fps === undefined) {
    n = s.frames;
  } else {
    n = Math.trunc((total / info.fps) * s.fps);
    if (n === 0) {
      throw new InputError(
        'OPTION_INVALID',
        `fps ${s.fps} samples no frame of ${info.file} (${info.durationSeconds.toFixed(2)} s): raise fps to at least ${(info.fps / total).toPrecision(3)} or give frames instead`,
        { subject: 'fps' },
      );
    }
  }
  if (n > total) {
    throw new InputError(
      'OPTION_INVALID',
      `${n} frames asked${s.fps === undefined ? '' : ` (fps ${s.fps})`} but ${info.file} has only ${total} (${info.fps.toFixed(3)} fps); ask for at most ${total}`,
      { subject: s.fps === undefined ? 'frames' : 'fps' },
    );
  }
  // numpy arange: start + k * step, step = total / n in float64, then truncated.
  const step = total / n;
  const indices = Array.from({ length: n }, (_, k) => Math.trunc(k * step));
  return { indices, timestamps: indices.map((i) => i / info.fps) };
}
