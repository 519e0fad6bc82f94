export { centerCrop, loadImage, preprocessImage, resizeOutputSize, resizeRgb } from './image.js';
export type { PixelTensor, RgbImage } from './image.js';
export { loadPreprocessorConfig, parsePreprocessorConfig } from './preprocessor-config.js';
export type { PreprocessorConfig, ResizeRule } from './preprocessor-config.js';
export { PIL_RESAMPLE, pilResize } from './pil-resample.js';
export type { ResampleFilter } from './pil-resample.js';
