/**
 * Group-wise asymmetric 4-bit weights, packed in the layout onnxruntime's `MatMulNBits` contrib operator
 * reads (onnxruntime docs/ContribOperators.md, com.microsoft.MatMulNBits):
 *   B           uint8 [N, blocks, blockSize / 2]   two weights a byte, the even k in the low nibble
 *   scales      f32   [N * blocks]
 *   zero_points uint8 [N * ceil(blocks / 2)]        two zero points a byte, the even block in the low nibble
 * and w[n, k] = (q[n, k] - zp[n, block(k)]) * scale[n, block(k)]. Rows are the output features, as in a
 * Hugging Face `nn.Linear` weight [out, in], so no transpose is needed. A K that is not a multiple of the
 * block size is zero-padded in its last block.
 *
 * Every int4 weight the graphs hold goes through `packInt4`: round-to-nearest (`quantizeInt4`), AWQ (the
 * same rounding of activation-scaled weights) and checkpoints already quantized by AutoAWQ (repacked codes).
 */

export type Int4BlockSize = 16 | 32 | 64 | 128;

export const INT4_BLOCK_SIZES: readonly Int4BlockSize[] = [16, 32, 64, 128];

export interface PackedInt4 {
  /** Output features (rows of the HF weight). */
  n: number;
  /** Input features. */
  k: number;
  blockSize: Int4BlockSize;
  blocks: number;
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
}

/** Unpacked int4 weights: one code a byte, [n, blocks · blockSize] (K zero-padded), and per-block parameters. */
export interface Int4Codes {
  n: number;
  k: number;
  blockSize: Int4BlockSize;
  /** Codes 0..15, row-major [n, blocks · blockSize]. */
  codes: Uint8Array;
  /** Zero points 0..15, [n, blocks]. */
  zeroPoints: Uint8Array;
  /** [n, blocks] */
  scales: Float32Array;
}

/**
 * The round-to-nearest parameters of one block whose values lie in [min, max]. The range always includes 0
 * so that zero (and the zero padding) is exactly representable.
 */
export function int4BlockParams(min: number, max: number): { scale: number; zeroPoint: number } {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = Math.fround((hi - lo) / 15) || 1;
  return { scale, zeroPoint: Math.min(15, Math.max(0, Math.round(-lo / scale))) };
}

/** The code of `v` in a block with these parameters. */
export function int4Code(v: number, scale: number, zeroPoint: number): number {
  return Math.min(15, Math.max(0, Math.round(v / scale) + zeroPoint));
}

/** Calls `fn(row, block, start, end)` for every block of an [n, k] weight (end is clipped to k). */
function forEachBlock(n: number, k: number, blockSize: number, fn: (row: number, block: number, start: number, end: number) => void): void {
  const blocks = Math.ceil(k / blockSize);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) fn(row, b, row * k + b * blockSize, row * k + Math.min((b + 1) * blockSize, k));
  }
}

/** The parameters of the block values[start, end). */
function blockParams(values: Float32Array, start: number, end: number): { scale: number; zeroPoint: number } {
  let min = 0;
  let max = 0;
  for (let i = start; i < end; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return int4BlockParams(min, max);
}

/** Round-to-nearest codes of an HF linear weight [n, k] (row-major), block by block. */
export function int4Codes(weight: Float32Array, n: number, k: number, blockSize: Int4BlockSize): Int4Codes {
  const blocks = Math.ceil(k / blockSize);
  const padded = blocks * blockSize;
  const out: Int4Codes = {
    n,
    k,
    blockSize,
    codes: new Uint8Array(n * padded),
    zeroPoints: new Uint8Array(n * blocks),
    scales: new Float32Array(n * blocks),
  };
  forEachBlock(n, k, blockSize, (row, b, start, end) => {
    const { scale, zeroPoint } = blockParams(weight, start, end);
    out.scales[row * blocks + b] = scale;
    out.zeroPoints[row * blocks + b] = zeroPoint;
    const codeAt = row * padded + b * blockSize;
    for (let i = 0; i < blockSize; i++) out.codes[codeAt + i] = int4Code(start + i < end ? weight[start + i]! : 0, scale, zeroPoint);
  });
  return out;
}

/** Packs codes, zero points and scales into the MatMulNBits layout. */
export function packInt4(c: Int4Codes): PackedInt4 {
  const { n, k, blockSize } = c;
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const zpRow = Math.ceil(blocks / 2);
  const packed = new Uint8Array(n * blocks * blob);
  const zeroPoints = new Uint8Array(n * zpRow);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      zeroPoints[row * zpRow + (b >> 1)]! |= (c.zeroPoints[row * blocks + b]! & 15) << ((b & 1) * 4);
      const codes = (row * blocks + b) * blockSize;
      const out = (row * blocks + b) * blob;
      for (let i = 0; i < blockSize; i++) packed[out + (i >> 1)]! |= (c.codes[codes + i]! & 15) << ((i & 1) * 4);
    }
  }
  return { n, k, blockSize, blocks, packed, scales: c.scales, zeroPoints };
}

/** Quantizes an HF linear weight [n, k] (row-major) block by block, rounding to nearest. */
export function quantizeInt4(weight: Float32Array, n: number, k: number, blockSize: Int4BlockSize): PackedInt4 {
  return packInt4(int4Codes(weight, n, k, blockSize));
}

/**
 * `dequantizeInt4(quantizeInt4(w))` without packing: the weights MatMulNBits computes with, as an [n, k]
 * matrix. The AWQ search calls this once per candidate scale.
 */
export function fakeQuantizeInt4(weight: Float32Array, n: number, k: number, blockSize: Int4BlockSize): Float32Array {
  const out = new Float32Array(n * k);
  forEachBlock(n, k, blockSize, (_row, _b, start, end) => fakeQuantizeBlock(weight, start, end, out));
  return out;
}

/** Rounds values[start, end) as one block; writes what MatMulNBits computes with to out[start, end). */
export function fakeQuantizeBlock(values: Float32Array, start: number, end: number, out: Float32Array): void {
  const { scale, zeroPoint } = blockParams(values, start, end);
  for (let i = start; i < end; i++) out[i] = (int4Code(values[i]!, scale, zeroPoint) - zeroPoint) * scale;
}

/** The weights `MatMulNBits` computes with, as an HF-layout [n, k] matrix: the packing math, inverted. */
export function dequantizeInt4(q: PackedInt4): Float32Array {
  const { n, k, blockSize, blocks } = q;
  const blob = blockSize / 2;
  const zpRow = Math.ceil(blocks / 2);
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const scale = q.scales[row * blocks + b]!;
      const zp = (q.zeroPoints[row * zpRow + (b >> 1)]! >> ((b & 1) * 4)) & 15;
      const base = (row * blocks + b) * blob;
      for (let i = 0; i < blockSize && b * blockSize + i < k; i++) {
        const nibble = (q.packed[base + (i >> 1)]! >> ((i & 1) * 4)) & 15;
        out[row * k + b * blockSize + i] = (nibble - zp) * scale;
      }
    }
  }
  return out;
}
