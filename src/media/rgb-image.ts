/**
 * The picture every media step hands on: decoded images (image.ts), Pillow's resampler (pil-resample.ts),
 * the crop, and video frames (video-decode.ts) all take and return it. Kept in a file of its own so the
 * resampler, which image.ts calls, does not import image.ts back.
 */

/** Decoded 8-bit RGB pixels, row-major, channels last (H × W × 3). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}
