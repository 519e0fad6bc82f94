/**
 * A small JPEG of what the vision tower saw (the preprocessed pixels, denormalised), for traces: the
 * profiler and notebooks draw retention maps over it. The patch grid maps onto it exactly, since it is the
 * model's own input, resized and cropped.
 */
import sharp from 'sharp';
import type { PreprocessorConfig } from './preprocessor-config.js';
import type { RgbImage } from './rgb-image.js';

export interface Thumbnail {
  width: number;
  height: number;
  /** JPEG bytes, base64. */
  jpeg: string;
}

/** pixels: one image [3, H, W] as the model takes it. */
export async function thumbnail(pixels: Float32Array, height: number, width: number, config: PreprocessorConfig, maxSide = 256): Promise<Thumbnail> {
  const rgb = new Uint8Array(height * width * 3);
  denormalize(pixels, rgb, height, width, config);
  return thumbnailOf({ width, height, data: rgb }, maxSide);
}

function denormalize(pixels: Float32Array, rgb: Uint8Array, height: number, width: number, config: PreprocessorConfig): void {
  const mean = config.normalize?.mean ?? [0, 0, 0];
  const std = config.normalize?.std ?? [1, 1, 1];
  const scale = config.rescaleFactor ?? 1;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < height * width; i++) {
      const v = (pixels[c * height * width + i]! * std[c]! + mean[c]!) / scale;
      rgb[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
}

/** An image as the tower sees it (resized, cropped), as a JPEG at most `maxSide` a side. */
export async function thumbnailOf(image: RgbImage, maxSide = 256): Promise<Thumbnail> {
  const { width, height } = image;
  const side = Math.min(maxSide, Math.max(height, width));
  const out = await sharp(image.data, { raw: { width, height, channels: 3 } })
    .resize({ width: Math.round((side * width) / Math.max(height, width)), height: Math.round((side * height) / Math.max(height, width)), fit: 'fill' })
    .jpeg({ quality: 85 })
    .toBuffer({ resolveWithObject: true });
  return { width: out.info.width, height: out.info.height, jpeg: out.data.toString('base64') };
}
