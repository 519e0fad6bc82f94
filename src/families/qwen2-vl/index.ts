/**
 * Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration: a native-resolution tower (Conv3d
 * patches, 2-D rotary, Qwen2.5's window attention) whose PatchMerger is the projector, and a Qwen2 LLM with
 * multimodal rotary positions (M-RoPE).
 */
import { SparseVilaError } from '../../errors.js';
import type { ModelFamily } from '../family.js';
import { parseQwenConfig, qwenArchitecture, QWEN_ARCHITECTURES, type QwenVLSpec } from './config.js';

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
  graphs: [],
  graph: (_b, kind) => {
    throw new SparseVilaError('GRAPH_BUILD', `the Qwen2-VL ${kind} graph is not built yet`, { subject: kind });
  },
};
