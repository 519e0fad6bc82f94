/**
 * What a video file holds, from ffprobe: the first video stream's frame size, frame rate, frame count and
 * duration. Frame rate and count are the ones transformers' PyAV reader samples by (video_utils.py
 * read_video_pyav: `stream.average_rate` and `stream.frames`, i.e. ffprobe's avg_frame_rate and nb_frames);
 * a container that does not store the count gets its packets counted (demuxing only, no decoding).
 */
import { stat } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { ffmpegInput, toolText, type VideoTools } from './video-tool.js';

export interface VideoInfo {
  file: string;
  /** Size of the decoded frames as ffmpeg delivers them: display rotation applied, storage (not display) aspect. */
  width: number;
  height: number;
  /** Average frame rate (frames per second). */
  fps: number;
  /** Frames in the stream. */
  frameCount: number;
  durationSeconds: number;
  codec: string;
  /** Display rotation in degrees (phone videos), which ffmpeg applies when decoding. */
  rotation: number;
}

export interface ProbeOptions {
  tools?: VideoTools;
  /** Default 2 minutes (counting the packets of a long video that stores no frame count reads all of it). */
  timeoutMs?: number;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
  tags?: { rotate?: string };
  side_data_list?: { rotation?: number }[];
}

/** Demuxers that read single pictures: ffprobe "plays" a PNG as a one-frame stream, but it is no video. */
const IMAGE_DEMUXER = /(^|,)(image2|[a-z0-9]+_pipe)(,|$)/;

export async function probeVideo(file: string, options: ProbeOptions = {}): Promise<VideoInfo> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a regular file');
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (cause as Error).message;
    throw new InputError('VIDEO_UNREADABLE', `cannot read video ${file}: ${why}`, { subject: file, cause });
  }
  const ffprobe = options.tools?.ffprobe ?? 'ffprobe';
  const run = { file, timeoutMs: options.timeoutMs ?? 120_000, doing: 'probing' };
  const base = ['-v', 'error', '-print_format', 'json'];
  const json = parseJson(await toolText(ffprobe, [...base, '-show_streams', '-show_format', ffmpegInput(file)], run), file);
  const format = json.format?.format_name ?? '';
  const stream = json.streams?.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  if (IMAGE_DEMUXER.test(format)) {
    throw new InputError('VIDEO_UNREADABLE', `${file} is a still image (${format}), not a video: pass it as an image`, { subject: file });
  }
  if (!stream) throw new InputError('VIDEO_UNREADABLE', `${file} has no video stream (format ${format || 'unknown'})`, { subject: file });

  let frameCount = positiveInt(stream.nb_frames);
  if (frameCount === undefined) {
    // Matroska / WebM and raw streams do not store a frame count: count the packets (one per frame).
    const counted = parseJson(
      await toolText(ffprobe, [...base, '-count_packets', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_packets', ffmpegInput(file)], run),
      file,
    );
    frameCount = positiveInt(counted.streams?.[0]?.nb_read_packets);
  }
  const duration = positiveNumber(stream.duration) ?? positiveNumber(json.format?.duration);
  let fps = rate(stream.avg_frame_rate) ?? rate(stream.r_frame_rate);
  if (fps === undefined && frameCount !== undefined && duration !== undefined) fps = frameCount / duration;
  const { width, height } = stream;
  if (!frameCount || !fps || !width || !height) {
    throw new InputError(
      'VIDEO_UNREADABLE',
      `${file}: ffprobe reports no usable ${!frameCount ? 'frame count' : !fps ? 'frame rate' : 'frame size'} for its video stream (${stream.codec_name ?? 'unknown codec'})`,
      { subject: file },
    );
  }
  const rotation = stream.side_data_list?.find((d) => typeof d.rotation === 'number')?.rotation ?? Number(stream.tags?.rotate ?? 0);
  const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  return {
    file,
    width: quarter ? height : width,
    height: quarter ? width : height,
    fps,
    frameCount,
    durationSeconds: duration ?? frameCount / fps,
    codec: stream.codec_name ?? 'unknown',
    rotation,
  };
}

function parseJson(text: string, file: string): { streams?: ProbeStream[]; format?: { format_name?: string; duration?: string } } {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new InputError('VIDEO_UNREADABLE', `ffprobe printed no readable description of ${file}`, { subject: file, cause });
  }
}

function positiveInt(v: string | undefined): number | undefined {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function positiveNumber(v: string | undefined): number | undefined {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** ffprobe's "num/den" rates; "0/0" means unknown. */
function rate(v: string | undefined): number | undefined {
  const [num, den] = (v ?? '').split('/').map(Number);
  return num! > 0 && den! > 0 ? num! / den! : undefined;
}
