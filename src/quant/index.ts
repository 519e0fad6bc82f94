/** The quantization stage: AWQ search and plans, and AutoAWQ checkpoints, in the MatMulNBits int4 layout. */
export { ensureAwqPlan, searchAwqPlan, checkAwqCheckpoint, type Calibration, type AwqOptions, type AwqPlanRef } from './awq.js';
export { awqGroups, allAwqGroups, type AwqGroup, type AwqLinear } from './awq-groups.js';
export {
  readAwqPlan, writeAwqPlan, awqPlanId, awqPlanPath, scaleKey, AWQ_VERSION, SCALE_GRID, CLIP_GRID, CLIP_MAX_SHRINK,
  type AwqPlan, type AwqGroupReport, type AwqCalibrationInfo,
} from './awq-plan.js';
export { searchScale, searchClip, awqScale, effectiveWeight, scaleInput, type GroupActivations, type LinearWeight, type ScaleSearch } from './awq-search.js';
export { awqWeights, clipBlocks } from './awq-weights.js';
export { outputErrorMeter, type OutputErrorMeter } from './output-error.js';
export { collectActivations } from './calibrate.js';
export {
  buildCalibrationSet, worldCalibrationSamples, DEFAULT_CALIBRATION_SAMPLES,
  type CalibrationSample, type CalibrationPrompt, type CalibrationSet,
} from './calibration-set.js';
export { autoAwqWeights, repackAutoAwq, unpackAutoAwq, readAutoAwqLinear, AWQ_ORDER, type AutoAwqLinear } from './autoawq.js';
