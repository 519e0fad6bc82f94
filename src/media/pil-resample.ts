/**
 * Pillow's `Image.resize` for 8-bit RGB, bit for bit (transformers' image processors resize with PIL).
 *
 * Ported from Pillow's libImaging (same formulas in 9.4 and current main; verified bit-exact against Pillow
 * 9.4 on ~5,000 random sizes, contents and all six filters, golden values in test/media.test.ts):
 * - Resample.c, used for every filter but NEAREST: separable convolution, horizontal pass first (only when
 *   the width changes, and only over the rows the vertical pass reads), then vertical pass (only when the
 *   height changes), with a uint8 image in between. `precompute_coeffs` centres output pixel `xx` on input
 *   coordinate `(xx + 0.5) * scale`, widens the filter by `max(scale, 1)` when shrinking, normalises each
 *   window's weights to sum 1 in float64, and `normalize_coeffs_8bpc` rounds them (half away from zero) to
 *   22-bit fixed point. A pixel is `clip8(2^21 + Σ pixel·coeff)`, i.e. rounded, clamped to 0..255.
 * - Geometry.c ImagingScaleAffine, used for NEAREST: source column `(int)` of the position `0.5·s`, `+ s`
 *   per output pixel, accumulated by repeated float64 addition exactly as the C loop does (s = in / out).
 */
import type { RgbImage } from './rgb-image.js';

/** A resampling filter of PIL.Image.Resampling. */
export type ResampleFilter = 'nearest' | 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming';

/** PIL.Image.Resampling codes, as `resample` holds them in preprocessor_config.json. */
export const PIL_RESAMPLE: Readonly<Record<number, ResampleFilter>> = {
  0: 'nearest',
  1: 'lanczos',
  2: 'bilinear',
  3: 'bicubic',
  4: 'box',
  5: 'hamming',
};

interface Filter {
  fn: (x: number) => number;
  support: number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const F32_054 = Math.fround(0.54);
const F32_046 = Math.fround(0.46);

const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, Filter> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  hamming: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      // Pillow writes 0.54f + 0.46f: float32 constants widened to double.
      return (Math.sin(x) / x) * (F32_054 + F32_046 * Math.cos(x));
    },
  },
  // Keys' cubic convolution with a = -0.5 (Catmull-Rom).
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  // Lanczos-3: sinc windowed by sinc(x / 3).
  lanczos: { support: 3, fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;
const MAX = ONE * 256; // clip8: a sum ≥ 256 << PRECISION_BITS is 255

/** Per output pixel: first input index, tap count, and `ksize` fixed-point weights (zero-padded). */
interface Coeffs {
  ksize: number;
  xmin: Int32Array;
  count: Int32Array;
  k: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc for the full box [0, inSize). */
function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterScale;
  const xminArr = new Int32Array(outSize);
  const countArr = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast: truncation toward zero.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      const v = filter.fn((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < count; x++) {
      const v = ww !== 0 ? w[x]! / ww : w[x]!;
      k[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * ONE : 0.5 + v * ONE);
    }
    xminArr[xx] = xmin;
    countArr[xx] = count;
  }
  return { ksize, xmin: xminArr, count: countArr, k };
}

function clip8(v: number): number {
  if (v >= MAX) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** ImagingResampleHorizontal_8bpc over input rows [y0, y0 + rows). */
function resampleHorizontal(src: Uint8Array, inW: number, y0: number, rows: number, outW: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outW * rows * 3);
  const { ksize, xmin, count, k } = c;
  for (let y = 0; y < rows; y++) {
    const rowIn = (y0 + y) * inW * 3;
    let o = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const n = count[xx]!;
      const kb = xx * ksize;
      let p = rowIn + xmin[xx]! * 3;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let i = 0; i < n; i++, p += 3) {
        const w = k[kb + i]!;
        s0 += src[p]! * w;
        s1 += src[p + 1]! * w;
        s2 += src[p + 2]! * w;
      }
      out[o++] = clip8(s0);
      out[o++] = clip8(s1);
      out[o++] = clip8(s2);
    }
  }
  return out;
}

/** ImagingResampleVertical_8bpc; `ySrc0` is the input row that coefficient bounds are relative to. */
function resampleVertical(src: Uint8Array, w: number, ySrc0: number, outH: number, c: Coeffs): Uint8Array {
  const stride = w * 3;
  const out = new Uint8Array(stride * outH);
  const { ksize, xmin, count, k } = c;
  for (let yy = 0; yy < outH; yy++) {
    const n = count[yy]!;
    const kb = yy * ksize;
    const base = (xmin[yy]! - ySrc0) * stride;
    const o = yy * stride;
    for (let x = 0; x < stride; x++) {
      let s = HALF;
      let p = base + x;
      for (let i = 0; i < n; i++, p += stride) s += src[p]! * k[kb + i]!;
      out[o + x] = clip8(s);
    }
  }
  return out;
}

/** ImagingScaleAffine (Image.resize with NEAREST). */
function resizeNearest(image: RgbImage, outW: number, outH: number): Uint8Array {
  const { width: inW, height: inH, data } = image;
  const out = new Uint8Array(outW * outH * 3);
  const a0 = inW / outW;
  const a4 = inH / outH;
  const xin = new Int32Array(outW);
  let xo = a0 * 0.5;
  for (let x = 0; x < outW; x++) {
    // COORD(v) = (int)v. Positions are in [s/2, in - s/2), never negative or past the edge; min() is a guard.
    xin[x] = Math.min(inW - 1, Math.trunc(xo));
    xo += a0;
  }
  let yo = a4 * 0.5;
  for (let y = 0; y < outH; y++) {
    const row = Math.min(inH - 1, Math.trunc(yo)) * inW * 3;
    let o = y * outW * 3;
    for (let x = 0; x < outW; x++) {
      const i = row + xin[x]! * 3;
      out[o++] = data[i]!;
      out[o++] = data[i + 1]!;
      out[o++] = data[i + 2]!;
    }
    yo += a4;
  }
  return out;
}

/**
 * `Image.resize((width, height), resample=filter)` on an RGB image (no box, no reducing_gap), bit-exact.
 * An image already at the requested size comes back as a copy, as Pillow's does.
 */
export function pilResize(image: RgbImage, width: number, height: number, filter: ResampleFilter): RgbImage {
  const { width: inW, height: inH, data } = image;
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new RangeError(`resize target must be positive integers, got ${width}x${height}`);
  }
  if (data.length !== inW * inH * 3) throw new RangeError(`RGB image ${inW}x${inH} needs ${inW * inH * 3} bytes, has ${data.length}`);
  if (inW === width && inH === height) return { width, height, data: data.slice() };
  if (filter === 'nearest') return { width, height, data: resizeNearest(image, width, height) };

  const f = FILTERS[filter];
  const needH = width !== inW;
  const needV = height !== inH;
  const vert = precomputeCoeffs(inH, height, f);
  let cur = data;
  let curRow0 = 0; // input row index of cur's first row
  if (needH) {
    // Only the rows the vertical pass reads: [first tap of the first output row, last tap of the last).
    const first = vert.xmin[0]!;
    const last = vert.xmin[height - 1]! + vert.count[height - 1]!;
    cur = resampleHorizontal(data, inW, first, last - first, width, precomputeCoeffs(inW, width, f));
    curRow0 = first;
  }
  if (needV) cur = resampleVertical(cur, width, curRow0, height, vert);
  return { width, height, data: cur };
}
