/**
 * Checkpoints quantized by AutoAWQ (GEMM version), read as the graph builder wants them: each quantized
 * linear repacked into the MatMulNBits layout code for code (no float round trip, so exact), and its float
 * weight, when a float graph asks, dequantized as w = (q − z) · s.
 *
 * AutoAWQ's layout (awq/modules/linear/gemm.py `WQLinear_GEMM.from_linear`, awq/utils/packing_utils.py):
 *   qweight int32 [in, out / 8]           word c of input row i holds outputs 8c..8c+7
 *   qzeros  int32 [in / group, out / 8]   the same packing, one zero point per (group, output)
 *   scales  f16   [in / group, out]
 * Within a word, nibble j (bits 4j..4j+3) holds output 8c + AWQ_ORDER[j]: AutoAWQ interleaves the even and
 * odd outputs for its CUDA kernel's dequantization.
 */
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import { CheckpointError } from '../errors.js';
import { dequantizeInt4, packInt4, type Int4BlockSize, type Int4Codes, type PackedInt4 } from './int4.js';
import type { WeightReader } from './weight-reader.js';

/** Nibble j of a packed word holds output 8c + AWQ_ORDER[j]. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** One quantized linear as AutoAWQ stores it. */
export interface AutoAwqLinear {
  /** Input features (qweight rows). */
  k: number;
  /** Output features (scales columns). */
  n: number;
  groupSize: Int4BlockSize;
  qweight: Int32Array;
  qzeros: Int32Array;
  /** [k / groupSize, n] */
  scales: Float32Array;
}

/** Unpacks AutoAWQ's words into codes per output row: the transpose of its [in, out] layout. */
export function unpackAutoAwq(l: AutoAwqLinear): Int4Codes {
  const { k, n, groupSize } = l;
  const groups = k / groupSize;
  const words = n / 8;
  const codes = new Uint8Array(n * k);
  const zeroPoints = new Uint8Array(n * groups);
  const scales = new Float32Array(n * groups);
  for (let i = 0; i < k; i++) {
    for (let c = 0; c < words; c++) {
      const word = l.qweight[i * words + c]!;
      for (let j = 0; j < 8; j++) codes[(8 * c + AWQ_ORDER[j]!) * k + i] = (word >>> (4 * j)) & 15;
    }
  }
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < words; c++) {
      const word = l.qzeros[g * words + c]!;
      for (let j = 0; j < 8; j++) zeroPoints[(8 * c + AWQ_ORDER[j]!) * groups + g] = (word >>> (4 * j)) & 15;
    }
    for (let o = 0; o < n; o++) scales[o * groups + g] = l.scales[g * n + o]!;
  }
  return { n, k, blockSize: groupSize, codes, zeroPoints, scales };
}

/** AutoAWQ's tensors of `module` → MatMulNBits, exactly. */
export function repackAutoAwq(l: AutoAwqLinear): PackedInt4 {
  return packInt4(unpackAutoAwq(l));
}

/** The weight reader of an AutoAWQ checkpoint (see the header). */
export function autoAwqWeights(checkpoint: Checkpoint): WeightReader {
  const storage = checkpoint.quantization!;
  const quantized = (module: string) => checkpoint.has(`${module}.qweight`);
  const load = (module: string): PackedInt4 => repackAutoAwq(readAutoAwqLinear(checkpoint, module, storage.groupSize));
  return {
    has: (name) => checkpoint.has(name) || (name.endsWith('.weight') && quantized(name.slice(0, -'.weight'.length))),
    read(name, expectedShape) {
      const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
      if (module === undefined || checkpoint.has(name) || !quantized(module)) return checkpoint.read(name, expectedShape);
      // Only nn.Linear has an AutoAWQ form: a conv (Qwen's Conv3d patch embedding) stored as qweight is unusable.
      if (expectedShape && expectedShape.length !== 2) {
        throw new CheckpointError(
          'TENSOR_SHAPE',
          `${module}.qweight in ${checkpoint.dir} is an AutoAWQ linear, but ${name} is a [${expectedShape.join(', ')}] weight: ` +
            `store it in float (AutoAWQ quantizes only the decoder layers' linears)`,
          { subject: `${module}.qweight` },
        );
      }
      const q = load(module);
      if (expectedShape && (expectedShape[0] !== q.n || expectedShape[1] !== q.k || expectedShape.length !== 2)) {
        throw new CheckpointError(
          'TENSOR_SHAPE',
          `${module} in ${checkpoint.dir} is quantized as [${q.n}, ${q.k}] (out, in), expected [${expectedShape.join(', ')}]`,
          {
            subject: `${module}.qweight`,
          },
        );
      }
      return dequantizeInt4(q);
    },
    packedInt4: (module) => (quantized(module) ? load(module) : undefined),
  };
}

/** Reads and checks one linear's qweight / qzeros / scales. */
export function readAutoAwqLinear(checkpoint: Checkpoint, module: string, groupSize: Int4BlockSize): AutoAwqLinear {
  const [k, words] = checkpoint.shape(`${module}.qweight`) as [number, number];
  const n = words * 8;
  const where = `${checkpoint.dir} (config.json quantization_config.group_size = ${groupSize})`;
  if (k % groupSize !== 0) {
    throw new CheckpointError('TENSOR_SHAPE', `${module}.qweight in ${where} has ${k} input rows, not a multiple of the group size`, {
      subject: `${module}.qweight`,
    });
  }
  const groups = k / groupSize;
  return {
    k,
    n,
    groupSize,
    qweight: checkpoint.readInt32(`${module}.qweight`, [k, words]),
    qzeros: checkpoint.readInt32(`${module}.qzeros`, [groups, words]),
    scales: checkpoint.read(`${module}.scales`, [groups, n]),
  };
}
