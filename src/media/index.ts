export {
  centerCrop,
  checkMaxPixels,
  pixelTensor,
  prepareImage,
  DEFAULT_MAX_IMAGE_PIXELS,
  imagePixelCounts,
  loadImage,
  preprocessImage,
  resizeOutputSize,
  resizeRgb,
} from './image.js';
export type { ImageHeader, ImageLoadOptions, PixelTensor } from './image.js';
export type { RgbImage } from './rgb-image.js';
export { loadPreprocessorConfig, parsePreprocessorConfig } from './preprocessor-config.js';
export type { PreprocessorConfig, ResizeRule } from './preprocessor-config.js';
export { PIL_RESAMPLE, pilResize } from './pil-resample.js';
export type { ResampleFilter } from './pil-resample.js';
export { DEFAULT_VIDEO_FRAMES, decodeVideo, planVideo, readVideo } from './video.js';
export type { FrameCountRule, VideoInput, VideoPlan, VideoSource } from './video.js';
export { probeVideo } from './video-probe.js';
export type { ProbeOptions, VideoInfo } from './video-probe.js';
export { sampleFrames, validateSampling } from './video-sample.js';
export type { FrameSample, FrameSampling } from './video-sample.js';
export { decodeFrames, selectExpression } from './video-decode.js';
export type { VideoDecodeOptions, VideoFrame } from './video-decode.js';
export { FFMPEG_INSTALL_HINT } from './video-tool.js';
export type { VideoTools } from './video-tool.js';
