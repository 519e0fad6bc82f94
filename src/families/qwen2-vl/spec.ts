/**
 * What the Qwen2-VL / Qwen2.5-VL family reads from config.json and the processor configs, typed. Field names
 * follow transformers' config attributes in camelCase (models/qwen2_vl/configuration_qwen2_vl.py,
 * models/qwen2_5_vl/configuration_qwen2_5_vl.py).
 */

/** The vision tower (`model.visual`): Conv3d patches → blocks → PatchMerger. */
export interface QwenVisionSpec {
  /** '2': LayerNorm + fc1/fc2 QuickGELU MLP, full attention everywhere. '2.5': RMSNorm + gated SiLU MLP, window attention. */
  version: '2' | '2.5';
  /** Tower width (Qwen2-VL `embed_dim`, Qwen2.5-VL `hidden_size`). */
  hiddenSize: number;
  /** MLP width (Qwen2-VL `embed_dim * mlp_ratio`, Qwen2.5-VL `intermediate_size`). */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Both versions: `hidden_act` (quick_gelu for 2, silu for 2.5). */
  act: 'quick_gelu' | 'silu' | 'gelu' | 'gelu_pytorch_tanh';
  inChannels: number;
  patchSize: number;
  temporalPatchSize: number;
  /** PatchMerger groups mergeSize × mergeSize patches into one LLM token. */
  mergeSize: number;
  /** Merger output width: the LLM's hidden size (Qwen2-VL `vision_config.hidden_size`, 2.5 `out_hidden_size`). */
  outHiddenSize: number;
  /** Qwen2.5-VL: window side in pixels (`window_size`); null for Qwen2-VL (no windows). */
  windowSize: number | null;
  /** Blocks that attend over a whole image / temporal slice (Qwen2-VL: every block). */
  fullAttentionBlocks: number[];
  /** The full-attention block whose attention scores salience (default: the last one). */
  salienceBlock: number;
  /** Qwen2.5-VL `tokens_per_second`: temporal positions per second of video (M-RoPE). */
  tokensPerSecond: number;
  /** Norm epsilon: both towers build their norms with eps 1e-6. */
  eps: number;
}

/** How the image and video processors size and normalise pixels (preprocessor_config.json). */
export interface QwenProcessorSpec {
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
}

/**
 * How many frames a video gives when the caller names no count (Qwen's rule: qwen-vl-utils and
 * Qwen2VLVideoProcessor.sample_frames): `fps` frames a second, within [minFrames, maxFrames].
 */
export interface QwenVideoSampling {
  fps: number;
  minFrames: number;
  maxFrames: number;
}

/** The family's processors: images (preprocessor_config.json) and video (video_preprocessor_config.json). */
export interface QwenProcessors {
  image: QwenProcessorSpec;
  video: QwenProcessorSpec;
  sampling: QwenVideoSampling;
}

/** One image or video after the processor: [t, h, w] in patches (`image_grid_thw` / `video_grid_thw`). */
export type GridThw = readonly [number, number, number];
