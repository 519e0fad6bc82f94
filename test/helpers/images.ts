/** Image files for tests of what a loader does before decoding, seeded noise pictures of any size, and Llava pixels for tests that run the tower graph directly. */
import sharp from 'sharp';
import zlib from 'node:zlib';
import { loadImage, preprocessImage } from '../../dist/src/media/image.js';
import type { PreprocessorConfig } from '../../dist/src/media/preprocessor-config.js';

/** A PNG whose header claims width × height with one tiny row of data: what a decompression bomb's header says. */
export function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no interlace
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([
    signature,
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1 + width * 3 > 4096 ? 4096 : 1 + width * 3))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Llava pixels for the tower graph, [n, 3, H, W]: each image loaded and preprocessed as the model's processor does it. */
export async function llavaPixels(model: { processor: unknown }, images: readonly string[]): Promise<{ data: Float32Array; dims: number[] }> {
  const tensors = await Promise.all(images.map(async (img) => preprocessImage(await loadImage(img), model.processor as PreprocessorConfig)));
  const [, h, w] = tensors[0]!.dims as [number, number, number];
  const data = new Float32Array(tensors.length * 3 * h * w);
  tensors.forEach((t, i) => data.set(t.data, i * 3 * h * w));
  return { data, dims: [tensors.length, 3, h, w] };
}

/** A PNG of seeded noise, `width × height`, written to `file`; returns `file`. */
export async function noisePng(file: string, width: number, height: number, seed: number): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}
