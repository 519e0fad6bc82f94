/** The AWQ search: calibration runs, then the scale and clip search that writes a plan (src/weights/awq-plan.ts). */
export { ensureAwqPlan, searchAwqPlan, checkAwqCheckpoint, type Calibration, type AwqOptions } from './awq.js';
export { searchScale, searchClip, awqScale, effectiveWeight, scaleInput, type GroupActivations, type LinearWeight, type ScaleSearch } from './awq-search.js';
export { outputErrorMeter, type OutputErrorMeter } from './output-error.js';
export { collectActivations } from './calibrate.js';
export {
  buildCalibrationSet,
  worldCalibrationSamples,
  DEFAULT_CALIBRATION_SAMPLES,
  type CalibrationSample,
  type CalibrationPrompt,
  type CalibrationSet,
} from './calibration-set.js';
