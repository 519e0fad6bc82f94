export { centerCrop, loadImage, preprocessImage, resizeOutputSize, resizeRgb } from './image.js';
export type { PixelTensor, RgbImage } from './image.js';
export { loadPreprocessorConfig, parsePreprocessorConfig } from './preprocessor-config.js';
export type { PreprocessorConfig, ResampleKernel, ResizeRule } from './preprocessor-config.js';
