/** PNG files for rendered scenes, through sharp (the only Node-specific part of the world). */
import sharp from 'sharp';

/** Encodes RGB bytes (height × width × 3) as PNG. */
export async function toPng(rgb: Uint8Array, width: number, height: number, compressionLevel = 6): Promise<Buffer> {
  checkRaster(rgb, width, height);
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel })
    .toBuffer();
}

/** Writes RGB bytes as a PNG file. */
export async function writePng(file: string, rgb: Uint8Array, width: number, height: number, compressionLevel = 6): Promise<void> {
  checkRaster(rgb, width, height);
  await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel })
    .toFile(file);
}

/** Reads a PNG (or any image sharp reads) back to RGB bytes. */
export async function readRgb(file: string | Buffer): Promise<{ width: number; height: number; pixels: Uint8Array }> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function checkRaster(rgb: Uint8Array, width: number, height: number): void {
  if (rgb.length !== width * height * 3) throw new RangeError(`RGB buffer holds ${rgb.length} bytes, expected ${width}×${height}×3 = ${width * height * 3}`);
}
