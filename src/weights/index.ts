/**
 * The weights stage: a checkpoint's tensors made into the weights a graph stores — int4 in the MatMulNBits
 * layout, AutoAWQ checkpoints repacked into it, and AWQ plans read and applied to the float weights.
 */
export {
  quantizeInt4,
  dequantizeInt4,
  fakeQuantizeInt4,
  int4Codes,
  packInt4,
  INT4_BLOCK_SIZES,
  type PackedInt4,
  type Int4Codes,
  type Int4BlockSize,
} from './int4.js';
export type { WeightReader } from './weight-reader.js';
export { awqGroups, allAwqGroups, CALIBRATION_TAPS, type AwqGroup, type AwqLinear, type CalibrationTap } from './awq-groups.js';
export {
  readAwqPlan,
  writeAwqPlan,
  awqPlanId,
  awqPlanPath,
  scaleKey,
  AWQ_VERSION,
  SCALE_GRID,
  CLIP_GRID,
  CLIP_MAX_SHRINK,
  type AwqPlan,
  type AwqPlanRef,
  type AwqGroupReport,
  type AwqCalibrationInfo,
} from './awq-plan.js';
export { awqWeights, clipBlocks } from './awq-weights.js';
export { autoAwqWeights, repackAutoAwq, unpackAutoAwq, readAutoAwqLinear, AWQ_ORDER, type AutoAwqLinear } from './autoawq.js';
