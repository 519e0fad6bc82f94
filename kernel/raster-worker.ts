/**
 * The worker behind kernel/raster.ts: SVG → PNG with sharp (librsvg draws the SVG, libvips encodes).
 * Each request carries a shared flag; the worker posts the answer on its port, then wakes the waiting
 * thread through the flag.
 */
import { parentPort, type MessagePort } from 'node:worker_threads';

export interface RasterRequest {
  svg: string;
  /** Device pixels per CSS pixel. */
  scale: number;
  /** Int32Array over a SharedArrayBuffer: set to 1, and notified, once the answer is on the port. */
  flag: Int32Array;
}
export type RasterAnswer = { png: Uint8Array } | { error: string };

parentPort!.once('message', ({ port }: { port: MessagePort }) => {
  port.on('message', async ({ svg, scale, flag }: RasterRequest) => {
    let answer: RasterAnswer;
    try {
      // Loaded here so that a sharp that cannot load is an answer, not a worker that dies while the kernel waits.
      const { default: sharp } = await import('sharp');
      // 72 dpi is librsvg's 1 px per SVG unit. A 256-colour palette (libimagequant, dithered) keeps the
      // photo-like tower pictures a quarter of their truecolour size with no visible banding at this scale;
      // effort 1 quantises 4× faster than the default for ~30% more bytes (measured on a 64-frame map).
      const png = await sharp(Buffer.from(svg), { density: 72 * scale })
        .png({ palette: true, colours: 256, effort: 1, compressionLevel: 9 })
        .toBuffer();
      answer = { png: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
    } catch (err) {
      answer = { error: (err as Error).message };
    }
    port.postMessage(answer);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
});
