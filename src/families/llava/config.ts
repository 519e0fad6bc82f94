/**
 * Llava's config.json → LlavaSpec. Absent fields take the defaults of transformers' config classes, so a checkpoint
 * means here what it means in transformers:
 *   models/llava/configuration_llava.py (LlavaConfig), models/clip/configuration_clip.py (CLIPVisionConfig),
 *   models/siglip/configuration_siglip.py (SiglipVisionConfig), the text config
 *   as checkpoint/text-config.ts reads it.
 * Present-but-wrong values (null, wrong type, non-positive) are CONFIG_INVALID; values we cannot run are
 * CONFIG_UNSUPPORTED. Every error names the field (e.g. `text_config.hidden_size`) and the file.
 */
import { ConfigError } from '../../errors.js';
import { Fields, type Obj } from '../../checkpoint/config-fields.js';
import type { LlavaSpec, ProjectorActivation, VisionActivation, VisionSpec } from '../../checkpoint/spec.js';
import { parseTextConfig } from '../../checkpoint/text-config.js';

const VISION_ACTS: readonly VisionActivation[] = ['quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new'];
const PROJECTOR_ACTS: readonly ProjectorActivation[] = ['gelu', 'gelu_pytorch_tanh', 'quick_gelu', 'relu', 'silu'];

/** LlavaConfig builds CLIPVisionConfig with these values when `vision_config` is absent (llava-1.5's CLIP-L/336). */
const DEFAULT_VISION_CONFIG: Obj = {
  model_type: 'clip_vision_model',
  intermediate_size: 4096,
  hidden_size: 1024,
  patch_size: 14,
  image_size: 336,
  num_hidden_layers: 24,
  num_attention_heads: 16,
  projection_dim: 768,
};

/** Per-tower defaults, from CLIPVisionConfig / SiglipVisionConfig `__init__`. */
const VISION_DEFAULTS = {
  clip: { hidden: 768, inter: 3072, layers: 12, heads: 12, image: 224, patch: 32, act: 'quick_gelu', eps: 1e-5 },
  siglip: { hidden: 768, inter: 3072, layers: 12, heads: 12, image: 224, patch: 16, act: 'gelu_pytorch_tanh', eps: 1e-6 },
} as const;

function parseVision(f: Fields): VisionSpec {
  // LlavaConfig: `vision_config["model_type"] = vision_config.get("model_type", "clip_vision_model")`.
  const type = f.oneOf('model_type', ['clip_vision_model', 'siglip_vision_model'], 'clip_vision_model');
  const kind = type === 'clip_vision_model' ? 'clip' : 'siglip';
  const d = VISION_DEFAULTS[kind];
  const hiddenSize = f.posInt('hidden_size', d.hidden);
  const numHeads = f.posInt('num_attention_heads', d.heads);
  // CLIPAttention / SiglipAttention raise when embed_dim is not divisible by num_heads.
  if (hiddenSize % numHeads !== 0) throw f.invalid('num_attention_heads', `does not divide hidden_size ${hiddenSize}`);
  const imageSize = f.posInt('image_size', d.image);
  const patchSize = f.posInt('patch_size', d.patch);
  if (patchSize > imageSize) throw f.invalid('patch_size', `is larger than image_size ${imageSize}`);
  // The patch conv has stride = kernel = patch_size, so a remainder is cropped: grid = floor(image / patch).
  const gridSize = Math.floor(imageSize / patchSize);
  return {
    kind,
    hiddenSize,
    intermediateSize: f.posInt('intermediate_size', d.inter),
    numLayers: f.posInt('num_hidden_layers', d.layers),
    numHeads,
    imageSize,
    patchSize,
    numChannels: f.posInt('num_channels', 3),
    act: f.oneOf('hidden_act', VISION_ACTS, d.act),
    layerNormEps: f.posNum('layer_norm_eps', d.eps),
    gridSize,
    // CLIPVisionEmbeddings: num_positions = num_patches + 1 (class embedding); SiglipVisionEmbeddings: num_patches.
    numPositions: gridSize * gridSize + (kind === 'clip' ? 1 : 0),
  };
}

/** `vision_feature_layer` (int or list, negative allowed) → indices into hidden_states (length numLayers + 1). */
function resolveFeatureLayers(top: Fields, numLayers: number): number[] {
  const raw = top.obj['vision_feature_layer'] ?? -2;
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw top.invalid('vision_feature_layer', 'is an empty list');
  const count = numLayers + 1;
  return list.map((v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -count || v >= count) {
      throw top.invalid(
        'vision_feature_layer',
        `is out of range: hidden_states has ${count} entries (embeddings + ${numLayers} layers), so valid values are ${-count}..${count - 1}`,
      );
    }
    return v < 0 ? v + count : v;
  });
}

export function parseLlavaConfig(config: unknown, file: string): LlavaSpec {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError('CONFIG_INVALID', `${file} is not a JSON object`, { subject: file });
  }
  const top = new Fields(config as Obj, '', file);
  const archs = top.obj['architectures'];
  if (archs !== undefined && archs !== null) {
    const first = Array.isArray(archs) ? archs[0] : archs;
    if (first !== 'LlavaForConditionalGeneration') {
      throw top.unsupported('architectures[0]', first, ['LlavaForConditionalGeneration']);
    }
  }
  top.oneOf('model_type', ['llava'], 'llava');
  const vision = parseVision(top.sub('vision_config', DEFAULT_VISION_CONFIG));
  const text = parseTextConfig(top.sub('text_config', {}), top);
  const featureLayers = resolveFeatureLayers(top, vision.numLayers);
  // LlavaConfig raises ValueError unless the strategy is "default" or "full".
  const selectStrategy = top.oneOf('vision_feature_select_strategy', ['default', 'full'], 'default');
  // LlavaConfig.attribute_map maps `image_token_id` onto `image_token_index` (default 32000).
  const tokenField = 'image_token_index' in top.obj || !('image_token_id' in top.obj) ? 'image_token_index' : 'image_token_id';
  const imageTokenId = top.obj[tokenField] ?? 32000;
  if (typeof imageTokenId !== 'number' || !Number.isSafeInteger(imageTokenId) || imageTokenId < 0) {
    throw top.invalid(tokenField, 'must be a non-negative integer token id');
  }
  return {
    family: 'llava',
    architecture: 'LlavaForConditionalGeneration',
    vision,
    text,
    projector: {
      act: top.oneOf('projector_hidden_act', PROJECTOR_ACTS, 'gelu'),
      bias: top.bool('multimodal_projector_bias', true),
      inputSize: vision.hiddenSize * featureLayers.length,
      outputSize: text.hiddenSize,
    },
    featureLayers,
    selectStrategy,
    imageTokenId,
    // modeling_llava get_image_features: strategy "default" slices `[:, 1:]` whatever the tower, i.e. drops
    // CLIP's CLS but also SigLIP's first patch (LlavaProcessor likewise subtracts 1 for "default").
    imageTokenCount: vision.numPositions - (selectStrategy === 'default' ? 1 : 0),
  };
}
