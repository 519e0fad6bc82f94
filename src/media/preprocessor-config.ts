/**
 * `preprocessor_config.json` → a typed, validated description of the pixel pipeline. Only the two image
 * processors plain Llava checkpoints use are supported; their defaults for absent keys are the ones of
 * transformers' models/clip/image_processing_clip.py and models/siglip/image_processing_siglip.py.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { PIL_RESAMPLE, type ResampleFilter } from './pil-resample.js';

export type ResizeRule =
  /** CLIP: scale so the shorter side is `shortestEdge`, keeping the aspect ratio. */
  | { kind: 'shortest_edge'; shortestEdge: number }
  /** SigLIP (and CLIP given height/width): scale to exactly height × width. */
  | { kind: 'exact'; height: number; width: number };

export interface PreprocessorConfig {
  processor: 'clip' | 'siglip';
  /** `image_processor_type` as written in the file. */
  processorType: string;
  /** Null when do_resize is false. */
  resize: ResizeRule | null;
  /** `resample` as PIL.Image.Resampling code and filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming). */
  resample: { pil: number; filter: ResampleFilter };
  /** Null when do_center_crop is false (always null for SigLIP, which has no center crop step). */
  centerCrop: { height: number; width: number } | null;
  /** Null when do_rescale is false. */
  rescaleFactor: number | null;
  /** Null when do_normalize is false. */
  normalize: { mean: [number, number, number]; std: [number, number, number] } | null;
}

const CLIP_TYPES = new Set(['CLIPImageProcessor', 'CLIPImageProcessorFast', 'CLIPFeatureExtractor']);
const SIGLIP_TYPES = new Set(['SiglipImageProcessor', 'SiglipImageProcessorFast']);
/** Processors of Llava variants whose image handling (tiling, any-res, dynamic resolution) is not implemented. */
const KNOWN_UNSUPPORTED = new Set([
  'LlavaNextImageProcessor',
  'LlavaNextImageProcessorFast',
  'LlavaOnevisionImageProcessor',
  'LlavaOnevisionImageProcessorFast',
  'LlavaImageProcessor',
  'LlavaImageProcessorFast',
  'Qwen2VLImageProcessor',
  'Qwen2VLImageProcessorFast',
  'PixtralImageProcessor',
  'PixtralImageProcessorFast',
]);
// transformers' constants (image_utils.py OPENAI_CLIP_MEAN/STD, IMAGENET_STANDARD_MEAN/STD).
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const HALF: [number, number, number] = [0.5, 0.5, 0.5];

/** Validates parsed `preprocessor_config.json` contents. `file` names the source in errors. */
export function parsePreprocessorConfig(json: unknown, file = 'preprocessor_config.json'): PreprocessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('CONFIG_INVALID', `${file} must hold a JSON object`, { subject: file });
  }
  const cfg = json as Record<string, unknown>;
  const type = cfg.image_processor_type ?? cfg.feature_extractor_type;
  if (typeof type !== 'string') {
    throw new ConfigError('CONFIG_INVALID', `${file} has no image_processor_type`, { subject: `${file}#image_processor_type` });
  }
  const subject = (key: string) => `${file}#${key}`;
  if (KNOWN_UNSUPPORTED.has(type)) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: image_processor_type ${type} is not supported: only plain Llava's fixed-resolution CLIPImageProcessor and SiglipImageProcessor are (no tiling / any-resolution)`,
      { subject: type },
    );
  }
  const isClip = CLIP_TYPES.has(type);
  if (!isClip && !SIGLIP_TYPES.has(type)) {
    throw new ConfigError('CONFIG_UNSUPPORTED', `${file}: unknown image_processor_type ${type}; supported: CLIPImageProcessor, SiglipImageProcessor`, {
      subject: type,
    });
  }

  const flag = (key: string, fallback: boolean): boolean => {
    const v = cfg[key];
    if (v == null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError('CONFIG_INVALID', `${file}: ${key} must be true or false`, { subject: subject(key) });
    return v;
  };
  const positiveInt = (v: unknown, key: string): number => {
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new ConfigError('CONFIG_INVALID', `${file}: ${key} must be a positive integer, got ${JSON.stringify(v)}`, { subject: subject(key) });
    }
    return v as number;
  };
  const triple = (key: string, fallback: [number, number, number]): [number, number, number] => {
    const v = cfg[key];
    if (v == null) return fallback;
    if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as [number, number, number];
    throw new ConfigError('CONFIG_INVALID', `${file}: ${key} must be a number or three numbers (R, G, B)`, { subject: subject(key) });
  };

  // get_size_dict: an int `size` means shortest_edge for CLIP (default_to_square=False) and a square for SigLIP.
  let resize: ResizeRule | null = null;
  if (flag('do_resize', true)) {
    const size = cfg.size ?? (isClip ? { shortest_edge: 224 } : { height: 224, width: 224 });
    const s = typeof size === 'number' ? (isClip ? { shortest_edge: size } : { height: size, width: size }) : (size as Record<string, unknown>);
    if (isClip && s.shortest_edge != null) {
      resize = { kind: 'shortest_edge', shortestEdge: positiveInt(s.shortest_edge, 'size.shortest_edge') };
    } else if (s.height != null && s.width != null) {
      resize = { kind: 'exact', height: positiveInt(s.height, 'size.height'), width: positiveInt(s.width, 'size.width') };
    } else {
      throw new ConfigError('CONFIG_INVALID', `${file}: size must have ${isClip ? 'shortest_edge or ' : ''}height and width`, { subject: subject('size') });
    }
  }

  const pil = cfg.resample ?? 3;
  const filter = typeof pil === 'number' && Object.hasOwn(PIL_RESAMPLE, pil) ? PIL_RESAMPLE[pil] : undefined;
  if (filter === undefined) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: resample ${JSON.stringify(pil)} is not supported (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`,
      {
        subject: subject('resample'),
      },
    );
  }

  // SiglipImageProcessor.preprocess has no center-crop step, whatever do_center_crop says.
  let centerCrop: PreprocessorConfig['centerCrop'] = null;
  if (isClip && flag('do_center_crop', true)) {
    const crop = cfg.crop_size ?? 224;
    const c = typeof crop === 'number' ? { height: crop, width: crop } : (crop as Record<string, unknown>);
    centerCrop = { height: positiveInt(c.height, 'crop_size.height'), width: positiveInt(c.width, 'crop_size.width') };
  }

  let rescaleFactor: number | null = null;
  if (flag('do_rescale', true)) {
    const f = cfg.rescale_factor ?? 1 / 255;
    if (typeof f !== 'number' || !Number.isFinite(f)) {
      throw new ConfigError('CONFIG_INVALID', `${file}: rescale_factor must be a number`, { subject: subject('rescale_factor') });
    }
    rescaleFactor = f;
  }

  let normalize: PreprocessorConfig['normalize'] = null;
  if (flag('do_normalize', true)) {
    const std = triple('image_std', isClip ? CLIP_STD : HALF);
    if (std.some((x) => x === 0)) throw new ConfigError('CONFIG_INVALID', `${file}: image_std must not contain 0`, { subject: subject('image_std') });
    normalize = { mean: triple('image_mean', isClip ? CLIP_MEAN : HALF), std };
  }
  // do_convert_rgb is not modelled: the pipeline always needs 3 channels, so images are always made RGB.
  return { processor: isClip ? 'clip' : 'siglip', processorType: type, resize, resample: { pil: pil as number, filter }, centerCrop, rescaleFactor, normalize };
}

/** Reads and validates `<dir>/preprocessor_config.json`. */
export async function loadPreprocessorConfig(dir: string): Promise<PreprocessorConfig> {
  const file = path.join(dir, 'preprocessor_config.json');
  return parsePreprocessorConfig(await readConfigFile(file), file);
}

/** A processor config file's JSON, or CONFIG_INVALID naming the file (unreadable, or not JSON). */
export async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `cannot read ${file}: ${(cause as Error).message}`, { subject: file, cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `${file} is not valid JSON: ${(cause as Error).message}`, { subject: file, cause });
  }
  return json;
}
