/**
 * Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration: a native-resolution tower (Conv3d
 * patches, 2-D rotary, Qwen2.5's window attention) whose PatchMerger is the projector, and a Qwen2 LLM with
 * multimodal rotary positions (M-RoPE).
 */
import type { ModelFamily } from '../family.js';
import { parseQwenConfig, qwenArchitecture, QWEN_ARCHITECTURES, type QwenVLSpec } from './config.js';
import { encodeQwen, qwenFootprint, qwenVideoFootprint } from './encode.js';
import { qwenPositions } from './positions.js';
import { loadQwenProcessors, qwenFrameCount, qwenResize } from './processor.js';
import type { QwenProcessors } from './spec.js';
import { buildQwenVisionGraph } from './vision-graph.js';

export const qwen2VL: ModelFamily<QwenVLSpec> = {
  name: 'qwen2-vl',
  architectures: QWEN_ARCHITECTURES,
  claims: (config) => qwenArchitecture(config) !== undefined,
  format: {
    name: 'Qwen2-VL',
    parseConfig: parseQwenConfig,
    layouts: [
      { name: 'current', renames: [], marks: ['model.visual.', 'model.language_model.'] },
      // The published checkpoints (Qwen/Qwen2-VL-*, Qwen/Qwen2.5-VL-*): the inverse of the classes'
      // `_checkpoint_conversion_mapping` (`^visual` → `model.visual`, `^model(?!\.(language_model|visual))` →
      // `model.language_model`).
      {
        name: 'hub',
        renames: [
          ['model.visual.', 'visual.'],
          ['model.language_model.', 'model.'],
        ],
        marks: ['visual.', 'model.layers.', 'model.embed_tokens.', 'model.norm.'],
      },
    ],
  },
  // The PatchMerger ends the tower: no separate projector graph.
  graphs: ['vision'],
  graph: (b, _kind, w, checkpoint, options) => buildQwenVisionGraph(b, w, (checkpoint.spec as QwenVLSpec).vision, options),
  imageToken: '<|image_pad|>',
  videoToken: '<|video_pad|>',
  videoFootprint: qwenVideoFootprint,
  loadProcessor: (dir) => loadQwenProcessors(dir),
  prepare: (image, processor) => qwenResize(image, (processor as QwenProcessors).image),
  videoFrames: (processor, info, fps) => {
    const { video, sampling } = processor as QwenProcessors;
    return qwenFrameCount(sampling, video.temporalPatchSize, info.frameCount, info.fps, fps);
  },
  encode: encodeQwen,
  describe: (spec) => ({ vision: spec.vision.version === '2' ? 'qwen2-vl' : 'qwen2.5-vl', imageTokens: 0 }),
  footprint: qwenFootprint,
  batchesImages: false,
  positions: qwenPositions,
};
