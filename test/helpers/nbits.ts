/**
 * Independent of src/: the MatMulNBits int4 layout as onnxruntime's ContribOperators.md describes it, decoded
 * nibble by nibble — B uint8 [N, blocks, blockSize / 2] (even k in the low nibble), zero points uint8
 * [N, ceil(blocks / 2)] (even block in the low nibble), w = (code − zero point) · scale.
 */
export interface NBits {
  n: number;
  k: number;
  blockSize: number;
  packed: Uint8Array;
  zeroPoints: Uint8Array;
  scales: Float32Array;
}

/** Codes [n, k], zero points [n, blocks] and weights [n, k] (a padded last block's padding dropped). */
export function decodeNBits(q: NBits): { codes: Uint8Array; zeros: Uint8Array; weights: Float32Array } {
  const blocks = Math.ceil(q.k / q.blockSize);
  const codes = new Uint8Array(q.n * q.k);
  const zeros = new Uint8Array(q.n * blocks);
  const weights = new Float32Array(q.n * q.k);
  for (let r = 0; r < q.n; r++) {
    for (let b = 0; b < blocks; b++) {
      const zpByte = q.zeroPoints[r * Math.ceil(blocks / 2) + Math.floor(b / 2)]!;
      const zp = b % 2 === 0 ? zpByte & 0x0f : zpByte >> 4;
      zeros[r * blocks + b] = zp;
      for (let i = 0; i < q.blockSize && b * q.blockSize + i < q.k; i++) {
        const byte = q.packed[(r * blocks + b) * (q.blockSize / 2) + Math.floor(i / 2)]!;
        const code = i % 2 === 0 ? byte & 0x0f : byte >> 4;
        codes[r * q.k + b * q.blockSize + i] = code;
        weights[r * q.k + b * q.blockSize + i] = (code - zp) * q.scales[r * blocks + b]!;
      }
    }
  }
  return { codes, zeros, weights };
}
