/**
 * Decodes chosen frames of a video to 8-bit RGB through one ffmpeg process and a pipe (no temporary files):
 * `select` keeps the chosen frame numbers, `-pix_fmt rgb24 -f rawvideo` writes them back to back at the
 * video's own size. Frames are yielded as they arrive, so a caller that preprocesses and drops each one holds
 * a single native-size frame at a time.
 *
 * Frames come at native size on purpose: the model's pixel pipeline (image.ts: PIL-exact resize, center crop,
 * rescale, normalize) then runs on them exactly as on an image file — as LlavaProcessor runs its image
 * processor on each frame. ffmpeg's own scaler (swscale) resamples differently from PIL, so scaling in ffmpeg
 * would make a video frame differ from the same frame saved as a PNG. Colour conversion (YUV → RGB) is
 * ffmpeg's default, the same one `ffmpeg -i video frame.png` uses.
 */
import { InputError } from '../errors.js';
import type { RgbImage } from './rgb-image.js';
import type { VideoInfo } from './video-probe.js';
import { ffmpegInput, toolOutput, type VideoTools } from './video-tool.js';

export interface VideoFrame extends RgbImage {
  /** Frame number in the stream (0-based). */
  index: number;
  /** Seconds from the first frame (index / fps). */
  timestamp: number;
}

export interface VideoDecodeOptions {
  tools?: VideoTools;
  /** Stop ffmpeg after this long (ms), including the time the consumer spends per frame. Default 10 minutes. */
  timeoutMs?: number;
}

export async function* decodeFrames(info: VideoInfo, indices: readonly number[], options: VideoDecodeOptions = {}): AsyncGenerator<VideoFrame, void> {
  if (!indices.length) return;
  indices.forEach((i, k) => {
    if (!(Number.isInteger(i) && i >= 0 && i < info.frameCount && (k === 0 || i > indices[k - 1]!))) {
      throw new InputError('OPTION_INVALID', `frame indices must ascend within 0..${info.frameCount - 1}; got ${i} at ${k}`, { subject: 'indices' });
    }
  });
  const frameBytes = info.width * info.height * 3;
  const args = [
    '-nostdin',
    '-hide_banner',
    '-v',
    'error',
    '-i',
    ffmpegInput(info.file),
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-vf',
    `select='${selectExpression(indices)}'`,
    // Pass the selected frames through as they are: no duplicates or drops to keep a constant output rate.
    '-vsync',
    'passthrough',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ];
  const run = { file: info.file, timeoutMs: options.timeoutMs ?? 600_000, doing: `decoding ${indices.length} frame(s) of` };
  let frame = Buffer.allocUnsafe(frameBytes);
  let filled = 0;
  let count = 0;
  for await (const chunk of toolOutput(options.tools?.ffmpeg ?? 'ffmpeg', args, run)) {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(frameBytes - filled, chunk.length - at);
      chunk.copy(frame, filled, at, at + n);
      filled += n;
      at += n;
      if (filled < frameBytes) break;
      if (count === indices.length) {
        throw new InputError('VIDEO_UNREADABLE', `${info.file}: ffmpeg returned more than the ${indices.length} frame(s) asked for`, { subject: info.file });
      }
      const index = indices[count++]!;
      yield { width: info.width, height: info.height, data: new Uint8Array(frame.buffer, frame.byteOffset, frameBytes), index, timestamp: index / info.fps };
      frame = Buffer.allocUnsafe(frameBytes);
      filled = 0;
    }
  }
  if (count < indices.length || filled > 0) {
    throw new InputError(
      'VIDEO_UNREADABLE',
      `${info.file}: ffmpeg decoded ${count} of the ${indices.length} frame(s) asked for` +
        (filled
          ? ` and part of another (${filled} of ${frameBytes} bytes: the frame size changed mid-stream?)`
          : ` (its header claims ${info.frameCount} frames; the stream ends earlier)`),
      { subject: info.file },
    );
  }
}

/**
 * ffmpeg `select` expression true on the given frame numbers: runs of consecutive numbers become
 * `between(n,a,b)`, single ones `eq(n,a)` (commas escaped for the filter graph parser), summed as a balanced
 * tree: ffmpeg's expression parser refuses a flat sum of more than about 100 terms, a tree's depth is log₂.
 */
export function selectExpression(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const terms: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    terms.push(i === j ? `eq(n\\,${sorted[i]})` : `between(n\\,${sorted[i]}\\,${sorted[j]})`);
    i = j + 1;
  }
  const sum = (from: number, to: number): string => {
    if (to - from === 1) return terms[from]!;
    const mid = (from + to) >> 1;
    return `(${sum(from, mid)}+${sum(mid, to)})`;
  };
  return terms.length ? sum(0, terms.length) : '0';
}
