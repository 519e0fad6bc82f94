/**
 * Image decoding (sharp) and the CLIP / SigLIP pixel pipeline, step for step as transformers' slow image
 * processors run it (models/clip/image_processing_clip.py, models/siglip/image_processing_siglip.py):
 * convert_rgb → resize (PIL, uint8) → center_crop (CLIP only) → rescale → normalize → CHW float32.
 *
 * sharp (libvips) only decodes: EXIF orientation, colour conversion, alpha removal. Resizing is a port of
 * Pillow's resampler (pil-resample.ts), bit-identical to PIL's Image.resize for every `resample` filter, so
 * the uint8 image after resize (and after center crop) equals transformers' exactly.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { InputError } from '../errors.js';
import { pilResize, type ResampleFilter } from './pil-resample.js';
import type { PreprocessorConfig, ResizeRule } from './preprocessor-config.js';
import type { RgbImage } from './rgb-image.js';

/** Model input for one image: float32, channels first [3, height, width]. */
export interface PixelTensor {
  data: Float32Array;
  dims: [3, number, number];
}

/**
 * Default bound on an image's pixels: Pillow's, where Image.open raises DecompressionBombError
 * (Image.py: `MAX_IMAGE_PIXELS * 2`, 2 × 89,478,485). Decoded to RGB that is 537 MB; a few such images
 * would already pass most memory limits, so the turn's memory estimate counts them too (imagePixelCounts).
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485;

export interface ImageLoadOptions {
  /** Refuse an image with more pixels than this (width × height from its header), before decoding it. Default DEFAULT_MAX_IMAGE_PIXELS. */
  maxPixels?: number;
}

/** An image's size from its header (sharp's metadata reads no pixels), after EXIF orientation. */
export interface ImageHeader {
  width: number;
  height: number;
}

/**
 * Decodes a PNG / JPEG / WebP / GIF (first frame) / TIFF / AVIF file or buffer to RGB.
 * As transformers' image_utils.load_image: EXIF orientation is applied, then `.convert('RGB')`, which for
 * RGBA / LA / palette-with-transparency simply drops the alpha channel (no compositing onto a background) and
 * replicates grey into R, G, B. Embedded ICC profiles are ignored, as PIL ignores them.
 * The header is read first: an image over `maxPixels` is refused (MEMORY_LIMIT, naming it) undecoded.
 */
export async function loadImage(source: string | Uint8Array, options: ImageLoadOptions = {}): Promise<RgbImage> {
  const subject = typeof source === 'string' ? source : '<buffer>';
  const bytes = await imageBytes(source);
  const maxPixels = checkMaxPixels(options.maxPixels);
  const header = await headerOf(bytes, subject);
  checkPixels(header, maxPixels, subject);
  try {
    // limitInputPixels holds libvips to the same bound should the header and the data disagree.
    const { data, info } = await sharp(bytes, { autoOrient: true, ignoreIcc: true, limitInputPixels: maxPixels })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (cause) {
    throw new InputError('IMAGE_UNREADABLE', `${subject} is not a readable image: ${(cause as Error).message}`, { subject, cause });
  }
}

/**
 * Each image's pixel count from its header, undecoded (a file is read, not decoded), refusing any over
 * `maxPixels`: what a turn's memory check counts before any image is decoded (runtime/memory.ts imagePixels).
 */
export async function imagePixelCounts(sources: readonly (string | Uint8Array)[], options: ImageLoadOptions = {}): Promise<number[]> {
  const maxPixels = checkMaxPixels(options.maxPixels);
  const counts: number[] = [];
  for (const source of sources) {
    const subject = typeof source === 'string' ? source : '<buffer>';
    const header = await headerOf(await imageBytes(source), subject);
    checkPixels(header, maxPixels, subject);
    counts.push(header.width * header.height);
  }
  return counts;
}

async function imageBytes(source: string | Uint8Array): Promise<Uint8Array> {
  if (typeof source !== 'string') return source;
  try {
    return await readFile(source);
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (cause as Error).message;
    throw new InputError('IMAGE_UNREADABLE', `cannot read image ${source}: ${why}`, { subject: source, cause });
  }
}

async function headerOf(bytes: Uint8Array, subject: string): Promise<ImageHeader> {
  try {
    const m = await sharp(bytes).metadata();
    if (!m.width || !m.height) throw new Error('its header gives no size');
    return { width: m.autoOrient?.width ?? m.width, height: m.autoOrient?.height ?? m.height };
  } catch (cause) {
    throw new InputError('IMAGE_UNREADABLE', `${subject} is not a readable image: ${(cause as Error).message}`, { subject, cause });
  }
}

export function checkMaxPixels(maxPixels: number | undefined): number {
  const n = maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  if (!(Number.isInteger(n) && n > 0)) throw new InputError('OPTION_INVALID', `maxPixels must be a positive integer, got ${n}`, { subject: 'maxPixels' });
  return n;
}

function checkPixels({ width, height }: ImageHeader, maxPixels: number, subject: string): void {
  if (width * height <= maxPixels) return;
  throw new InputError(
    'MEMORY_LIMIT',
    `${subject} is ${width}×${height} = ${width * height} pixels, over the image pixel limit of ${maxPixels} ` +
      `(${Math.round((width * height * 3) / 2 ** 20)} MiB decoded); downscale it, or raise the limit (maxPixels)`,
    { subject },
  );
}

/** Runs the preprocessor's pixel pipeline; the result is [3, H, W] float32 for the vision tower. */
export async function preprocessImage(image: RgbImage, config: PreprocessorConfig): Promise<PixelTensor> {
  return pixelTensor(prepareImage(image, config), config);
}

/** The preprocessor's geometry (resize, then center crop): the image as the tower sees it. */
export function prepareImage(image: RgbImage, config: PreprocessorConfig): RgbImage {
  let img = image;
  if (config.resize) {
    const size = resizeOutputSize(config.resize, img.width, img.height);
    img = resizeRgb(img, size.width, size.height, config.resample.filter);
  }
  if (config.centerCrop) img = centerCrop(img, config.centerCrop.height, config.centerCrop.width);
  return img;
}

/**
 * Output size of the resize step. shortest_edge follows transformers' image_transforms.py
 * get_resize_output_image_size(default_to_square=False): the short side becomes `size`, the long side
 * `int(size * long / short)` (truncated, not rounded).
 */
export function resizeOutputSize(rule: ResizeRule, width: number, height: number): { width: number; height: number } {
  if (rule.kind === 'exact') return { width: rule.width, height: rule.height };
  const size = rule.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: size, height: newLong } : { width: newLong, height: size };
}

/**
 * PIL `Image.resize((width, height), resample)` as transformers' image_transforms.resize calls it (no box, no
 * reducing_gap). Returns the input itself when it already has the requested size (PIL copies it unchanged).
 */
export function resizeRgb(image: RgbImage, width: number, height: number, filter: ResampleFilter): RgbImage {
  if (image.width === width && image.height === height) return image;
  return pilResize(image, width, height, filter);
}

/**
 * transformers' image_transforms.py center_crop: offsets `(orig - crop) // 2` (floor); an image smaller than
 * the crop is first zero-padded, centred with `ceil((new - orig) / 2)` on the leading side.
 */
export function centerCrop(image: RgbImage, cropHeight: number, cropWidth: number): RgbImage {
  const { width: w, height: h } = image;
  if (w === cropWidth && h === cropHeight) return image;
  const padH = Math.max(cropHeight, h);
  const padW = Math.max(cropWidth, w);
  const padTop = Math.ceil((padH - h) / 2);
  const padLeft = Math.ceil((padW - w) / 2);
  // Crop window in padded coordinates.
  const top = Math.max(0, Math.floor((h - cropHeight) / 2) + padTop);
  const left = Math.max(0, Math.floor((w - cropWidth) / 2) + padLeft);
  const out = new Uint8Array(cropHeight * cropWidth * 3); // zeros = transformers' padding value
  for (let y = 0; y < cropHeight; y++) {
    const sy = top + y - padTop; // source row
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < cropWidth; x++) {
      const sx = left + x - padLeft;
      if (sx < 0 || sx >= w) continue;
      const o = (y * cropWidth + x) * 3;
      const i = (sy * w + sx) * 3;
      out[o] = image.data[i]!;
      out[o + 1] = image.data[i + 1]!;
      out[o + 2] = image.data[i + 2]!;
    }
  }
  return { width: cropWidth, height: cropHeight, data: out };
}

/**
 * rescale then normalize, with numpy's float rounding (image_transforms.py): `rescale` multiplies the uint8
 * value by the factor in float64 and casts to float32; `normalize` computes `(x - mean) / std` in float32 with
 * mean and std cast to float32.
 */
/** Rescale and normalize: a prepared image → [3, H, W] float32. */
export function pixelTensor(image: RgbImage, config: PreprocessorConfig): PixelTensor {
  const { width, height, data } = image;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const factor = config.rescaleFactor;
  for (let c = 0; c < 3; c++) {
    const mean = config.normalize ? Math.fround(config.normalize.mean[c]!) : 0;
    const std = config.normalize ? Math.fround(config.normalize.std[c]!) : 1;
    for (let p = 0; p < plane; p++) {
      const x = data[p * 3 + c]!;
      let v = factor === null ? x : Math.fround(x * factor);
      if (config.normalize) v = Math.fround(Math.fround(v - mean) / std);
      out[c * plane + p] = v;
    }
  }
  return { data: out, dims: [3, height, width] };
}
