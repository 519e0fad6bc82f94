/**
 * Qwen2-VL / Qwen2.5-VL config.json → QwenVLSpec. Absent fields take the defaults of transformers' config
 * classes (4.57: models/qwen2_vl/configuration_qwen2_vl.py, models/qwen2_5_vl/configuration_qwen2_5_vl.py), so
 * a checkpoint means here what it means there. Two shapes are read: the published one (text fields flat at the
 * top level, `rope_scaling: {type: "mrope", mrope_section}`) and the one transformers >= 4.52 saves (`text_config`
 * nested, `rope_scaling.type` "default" beside `mrope_section`).
 */
import { Fields, type Obj } from '../../checkpoint/config-fields.js';
import type { ModelSpecBase } from '../../checkpoint/spec.js';
import { parseTextConfig, type TextDefaults } from '../../checkpoint/text-config.js';
import type { QwenVisionSpec } from './spec.js';

export const QWEN_ARCHITECTURES = ['Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration'] as const;
export type QwenArchitecture = (typeof QWEN_ARCHITECTURES)[number];

export interface QwenVLSpec extends ModelSpecBase {
  family: 'qwen2-vl';
  architecture: QwenArchitecture;
  vision: QwenVisionSpec;
  /** `<|video_pad|>`: one per visual token of a video. */
  videoTokenId: number;
  /** `<|vision_start|>`, which precedes every image or video's pad tokens. */
  visionStartTokenId: number;
  visionEndTokenId: number;
}

/** Qwen2VLTextConfig / Qwen2_5_VLTextConfig `__init__` (the two agree). */
const TEXT_DEFAULTS: TextDefaults = { vocab: 152064, hidden: 8192, inter: 29568, layers: 80, heads: 64, kvHeads: 8, maxPos: 32768, eps: 1e-5, theta: 1e6 };

const MODEL_TYPES: Record<QwenArchitecture, string> = {
  Qwen2VLForConditionalGeneration: 'qwen2_vl',
  Qwen2_5_VLForConditionalGeneration: 'qwen2_5_vl',
};

/** The architecture a config names, by `architectures[0]` or else `model_type`; undefined when it is not Qwen-VL. */
export function qwenArchitecture(config: Obj): QwenArchitecture | undefined {
  const archs = config['architectures'];
  const first = Array.isArray(archs) ? archs[0] : archs;
  if (typeof first === 'string') return (QWEN_ARCHITECTURES as readonly string[]).includes(first) ? (first as QwenArchitecture) : undefined;
  return QWEN_ARCHITECTURES.find((a) => MODEL_TYPES[a] === config['model_type']);
}

export function parseQwenConfig(config: Obj, file: string): QwenVLSpec {
  const top = new Fields(config, '', file);
  const architecture = qwenArchitecture(config);
  if (!architecture) throw top.unsupported('architectures[0]', config['architectures'], QWEN_ARCHITECTURES);
  // Current layout: text fields under text_config; published layout: at the top level.
  const textFields = config['text_config'] != null ? top.sub('text_config', {}) : top;
  const text = parseTextConfig(textFields, top, { kind: 'qwen2', defaults: TEXT_DEFAULTS, mrope: true });
  const version = architecture === 'Qwen2VLForConditionalGeneration' ? '2' : '2.5';
  const vision = parseVision(top.sub('vision_config', {}), version, text.hiddenSize);
  // Token ids: top level (both layouts), defaults from the config classes.
  const tokenId = (field: string, dflt: number) => {
    const v = config[field] ?? textFields.obj[field] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw top.invalid(field, 'must be a non-negative integer token id');
    if (v >= text.vocabSize) throw top.invalid(field, `is outside the vocabulary (vocab_size ${text.vocabSize})`);
    return v;
  };
  return {
    family: 'qwen2-vl',
    architecture,
    text,
    vision,
    imageTokenId: tokenId('image_token_id', 151655),
    videoTokenId: tokenId('video_token_id', 151656),
    visionStartTokenId: tokenId('vision_start_token_id', 151652),
    visionEndTokenId: tokenId('vision_end_token_id', 151653),
  };
}

function parseVision(f: Fields, version: '2' | '2.5', llmHidden: number): QwenVisionSpec {
  const v2 = version === '2';
  // Qwen2VLVisionConfig: embed_dim is the tower width and hidden_size the merger's output; Qwen2.5 renames
  // them hidden_size and out_hidden_size.
  const hiddenSize = v2 ? f.posInt('embed_dim', 1280) : f.posInt('hidden_size', 3584);
  const numHeads = f.posInt('num_heads', 16);
  if (hiddenSize % numHeads !== 0) throw f.invalid('num_heads', `does not divide the tower width ${hiddenSize}`);
  // The vision rotary splits head_dim / 2 between the height and width positions: head_dim must divide by 4.
  if ((hiddenSize / numHeads) % 4 !== 0)
    throw f.invalid('num_heads', `gives head_dim ${hiddenSize / numHeads}, which the 2-D vision rotary needs divisible by 4`);
  const outHiddenSize = v2 ? f.posInt('hidden_size', 3584) : f.posInt('out_hidden_size', 3584);
  if (outHiddenSize !== llmHidden) throw f.invalid(v2 ? 'hidden_size' : 'out_hidden_size', `must equal the LLM's hidden_size ${llmHidden}`);
  const numLayers = f.posInt('depth', 32);
  const patchSize = f.posInt('patch_size', 14);
  const mergeSize = f.posInt('spatial_merge_size', 2);
  const windowSize = v2 ? null : f.posInt('window_size', 112);
  if (windowSize !== null && windowSize % (patchSize * mergeSize) !== 0) {
    throw f.invalid('window_size', `must be a multiple of patch_size × spatial_merge_size = ${patchSize * mergeSize}`);
  }
  const fullAttentionBlocks = v2 ? Array.from({ length: numLayers }, (_, i) => i) : blockList(f, 'fullatt_block_indexes', [7, 15, 23, 31], numLayers);
  if (!fullAttentionBlocks.length) throw f.invalid('fullatt_block_indexes', 'is empty: salience needs a full-attention block');
  // Published 2.5 configs spell in_channels `in_chans`; the config class ignores it (3 either way).
  const inChannels = f.posInt('in_channels', typeof f.obj['in_chans'] === 'number' ? (f.obj['in_chans'] as number) : 3);
  return {
    version,
    hiddenSize,
    intermediateSize: v2 ? hiddenSize * f.posNum('mlp_ratio', 4) : f.posInt('intermediate_size', 3420),
    numLayers,
    numHeads,
    act: f.oneOf('hidden_act', ['quick_gelu', 'silu', 'gelu', 'gelu_pytorch_tanh'], v2 ? 'quick_gelu' : 'silu'),
    inChannels,
    patchSize,
    temporalPatchSize: f.posInt('temporal_patch_size', 2),
    mergeSize,
    outHiddenSize,
    windowSize,
    fullAttentionBlocks,
    salienceBlock: fullAttentionBlocks.at(-1)!,
    tokensPerSecond: v2 ? 1 : f.posNum('tokens_per_second', 4),
    eps: 1e-6,
  };
}

function blockList(f: Fields, field: string, dflt: number[], layers: number): number[] {
  const v = f.obj[field] ?? dflt;
  if (!Array.isArray(v) || !v.every((i) => Number.isSafeInteger(i) && i >= 0 && i < layers)) {
    throw f.invalid(field, `must list block indices in 0..${layers - 1}`);
  }
  return [...new Set(v as number[])].sort((a, b) => a - b);
}
