/**
 * Group-wise asymmetric 4-bit quantization (round-to-nearest), packed in the layout onnxruntime's
 * `MatMulNBits` contrib operator reads (onnxruntime docs/ContribOperators.md, com.microsoft.MatMulNBits):
 *   B           uint8 [N, blocks, blockSize / 2]   two weights a byte, the even k in the low nibble
 *   scales      f32   [N * blocks]
 *   zero_points uint8 [N * ceil(blocks / 2)]        two zero points a byte, the even block in the low nibble
 * and w[n, k] = (q[n, k] - zp[n, block(k)]) * scale[n, block(k)]. Rows are the output features, as in a
 * Hugging Face `nn.Linear` weight [out, in], so no transpose is needed. A K that is not a multiple of the
 * block size is zero-padded in its last block.
 */

export type Int4BlockSize = 16 | 32 | 64 | 128;

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

/** Quantizes an HF linear weight [n, k] (row-major) block by block, rounding to nearest. */
export function quantizeInt4(weight: Float32Array, n: number, k: number, blockSize: Int4BlockSize): PackedInt4 {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const zpRow = Math.ceil(blocks / 2);
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * zpRow);
  for (let row = 0; row < n; row++) {
    const base = row * k;
    for (let b = 0; b < blocks; b++) {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, k);
      // The range always includes 0 so that zero (and the zero padding) is exactly representable.
      let min = 0;
      let max = 0;
      for (let i = start; i < end; i++) {
        const v = weight[base + i]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = (max - min) / 15 || 1;
      const zp = Math.min(15, Math.max(0, Math.round(-min / scale)));
      scales[row * blocks + b] = scale;
      zeroPoints[row * zpRow + (b >> 1)]! |= zp << ((b & 1) * 4);
      const out = (row * blocks + b) * blob;
      for (let i = 0; i < blockSize; i++) {
        const v = start + i < end ? weight[base + start + i]! : 0;
        const q = Math.min(15, Math.max(0, Math.round(v / scale) + zp));
        packed[out + (i >> 1)]! |= q << ((i & 1) * 4);
      }
    }
  }
  return { n, k, blockSize, blocks, packed, scales, zeroPoints };
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
