/** LlavaForConditionalGeneration: CLIP or SigLIP tower, a two-layer projector, a LLaMA or Qwen2 LLM. */
import type { LlavaSpec } from '../../checkpoint/spec.js';
import { loadPreprocessorConfig, prepareImage, type PreprocessorConfig } from '../../media/index.js';
import type { ModelFamily } from '../family.js';
import { encodeLlava, llavaFootprint } from './encode.js';
import { parseLlavaConfig } from './config.js';
import { buildProjectorGraph, buildVisionGraph } from './vision-graph.js';

export const llava: ModelFamily<LlavaSpec> = {
  name: 'llava',
  architectures: ['LlavaForConditionalGeneration'],
  // LlavaConfig is also what a config with neither field means (its model_type defaults to llava).
  claims: (config) => {
    const archs = config['architectures'];
    const first = Array.isArray(archs) ? archs[0] : archs;
    return first == null ? config['model_type'] == null || config['model_type'] === 'llava' : first === 'LlavaForConditionalGeneration';
  },
  format: {
    name: 'Llava',
    parseConfig: parseLlavaConfig,
    layouts: [
      {
        name: 'current',
        renames: [],
        marks: ['model.vision_tower.', 'model.language_model.', 'model.multi_modal_projector.'],
      },
      // transformers < 4.52 (most Hub checkpoints): the inverse of LlavaForConditionalGeneration's
      // `_checkpoint_conversion_mapping`.
      {
        name: 'legacy',
        renames: [
          ['model.vision_tower.', 'vision_tower.'],
          ['model.multi_modal_projector.', 'multi_modal_projector.'],
          ['model.language_model.', 'language_model.model.'],
          ['lm_head.', 'language_model.lm_head.'],
        ],
        marks: ['vision_tower.', 'language_model.', 'multi_modal_projector.'],
      },
    ],
  },
  graphs: ['vision', 'projector'],
  graph: (b, kind, w, checkpoint, options) => {
    const spec = checkpoint.spec as LlavaSpec;
    if (kind === 'vision') buildVisionGraph(b, w, spec, options);
    else buildProjectorGraph(b, w, spec, options);
  },
  imageToken: '<image>',
  loadProcessor: (dir) => loadPreprocessorConfig(dir),
  prepare: (image, processor) => prepareImage(image, processor as PreprocessorConfig),
  encode: encodeLlava,
  describe: (spec) => ({ vision: spec.vision.kind, imageTokens: spec.imageTokenCount }),
  footprint: llavaFootprint,
  batchesImages: true,
  // One rotary position per token, in prompt order.
  positions: (_spec, length, _spans, _layouts, start) => ({ rows: [Array.from({ length }, (_, i) => start + i)], next: start + length }),
};
