/**
 * What the graph builders read weights through: a checkpoint as it is, or a view of it that this stage
 * prepares — AutoAWQ's int4 linears repacked (autoawq.ts), or an AWQ plan's scales and clips applied to the
 * float weights (awq-weights.ts). The builders never know which.
 */
import type { PackedInt4 } from './int4.js';

/** The part of a checkpoint the graph builders read: canonical tensor names, decoded to float32. */
export interface WeightReader {
  has(name: string): boolean;
  read(name: string, expectedShape?: readonly number[]): Float32Array;
  /**
   * Present on readers of quantized checkpoints (AutoAWQ): a linear module's stored int4 weight in the
   * MatMulNBits layout, or undefined for a module the checkpoint keeps in float. int4 linears use the stored
   * weight as is, and leave the float ones (lm_head, `modules_to_not_convert`) in float, as the checkpoint's
   * authors chose.
   */
  packedInt4?(module: string): PackedInt4 | undefined;
}
