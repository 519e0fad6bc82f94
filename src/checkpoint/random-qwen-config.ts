/**
 * The config.json of a random Qwen2-VL / Qwen2.5-VL checkpoint (random-qwen.ts), in either shape transformers
 * reads: "hub", as Qwen published it (text fields flat at the top level, `rope_scaling: {type: "mrope",
 * mrope_section}`, vision `in_chans`), or "current", as transformers >= 4.52 saves it (Qwen2VLConfig /
 * Qwen2_5_VLConfig with `text_config` nested, whose `rope_scaling` says `type` and `rope_type` "default" beside
 * `mrope_section`, and vision `in_channels` and `model_type`).
 */
import type { WritableFloatDtype } from './safetensors-writer.js';

/** Every size and id of one checkpoint, resolved from the writer's options. */
export interface QwenSizes {
  version: '2' | '2.5';
  layout: 'hub' | 'current';
  tied: boolean;
  text: { hidden: number; inter: number; layers: number; heads: number; kv: number; headDim: number; vocab: number };
  mropeSection: [number, number, number];
  ropeTheta: number;
  maxPos: number;
  vision: {
    depth: number;
    hidden: number;
    heads: number;
    inter: number;
    patch: number;
    merge: number;
    temporal: number;
    windowSize: number;
    fullAtt: number[];
    tokensPerSecond: number;
  };
  ids: { bos: number; eos: number; visionStart: number; visionEnd: number; image: number; video: number };
}

const TORCH_DTYPES: Record<WritableFloatDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

type Patch = { top?: Record<string, unknown>; text?: Record<string, unknown>; vision?: Record<string, unknown> };

export function qwenConfig(s: QwenSizes, dtype: WritableFloatDtype, patch: Patch = {}): Record<string, any> {
  const v2 = s.version === '2';
  const hub = s.layout === 'hub';
  const modelType = v2 ? 'qwen2_vl' : 'qwen2_5_vl';
  const T = s.text;
  const text: Record<string, unknown> = {
    vocab_size: T.vocab,
    hidden_size: T.hidden,
    intermediate_size: T.inter,
    num_hidden_layers: T.layers,
    num_attention_heads: T.heads,
    num_key_value_heads: T.kv,
    hidden_act: 'silu',
    max_position_embeddings: s.maxPos,
    rms_norm_eps: 1e-6,
    rope_theta: s.ropeTheta,
    use_sliding_window: false,
    sliding_window: s.maxPos,
    max_window_layers: T.layers,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
    tie_word_embeddings: s.tied,
    bos_token_id: s.ids.bos,
    eos_token_id: s.ids.eos,
    // Qwen2VLTextConfig (>= 4.52) rewrites the published "mrope" type to "default" and copies it to rope_type.
    rope_scaling: hub ? { type: 'mrope', mrope_section: s.mropeSection } : { rope_type: 'default', type: 'default', mrope_section: s.mropeSection },
    ...patch.text,
  };
  const ids = {
    vision_start_token_id: s.ids.visionStart,
    vision_end_token_id: s.ids.visionEnd,
    image_token_id: s.ids.image,
    video_token_id: s.ids.video,
  };
  const top = {
    architectures: [v2 ? 'Qwen2VLForConditionalGeneration' : 'Qwen2_5_VLForConditionalGeneration'],
    model_type: modelType,
    ...(hub ? text : { text_config: { model_type: `${modelType}_text`, ...text } }),
    ...ids,
    tie_word_embeddings: s.tied,
    torch_dtype: TORCH_DTYPES[dtype],
    vision_config: { ...visionConfig(s, hub), ...patch.vision },
    ...patch.top,
  };
  return top;
}

/** Qwen2VLVisionConfig / Qwen2_5_VLVisionConfig fields, as the published configs and the config classes name them. */
function visionConfig(s: QwenSizes, hub: boolean): Record<string, unknown> {
  const V = s.vision;
  const v2 = s.version === '2';
  const channels = hub ? { in_chans: 3 } : { in_channels: 3 };
  const shape = { patch_size: V.patch, spatial_merge_size: V.merge, ...(hub && { spatial_patch_size: V.patch }), temporal_patch_size: V.temporal };
  const head = hub ? {} : { model_type: v2 ? 'qwen2_vl' : 'qwen2_5_vl' };
  const tail = hub ? {} : { initializer_range: 0.02 };
  if (v2) {
    // Qwen2-VL: embed_dim is the tower width, hidden_size the merger's output (the LLM width).
    const width = { depth: V.depth, embed_dim: V.hidden, mlp_ratio: V.inter / V.hidden, num_heads: V.heads };
    return { ...head, ...width, ...channels, hidden_size: s.text.hidden, hidden_act: 'quick_gelu', ...shape, ...tail };
  }
  return {
    ...head,
    depth: V.depth,
    hidden_size: V.hidden,
    hidden_act: 'silu',
    intermediate_size: V.inter,
    num_heads: V.heads,
    ...channels,
    out_hidden_size: s.text.hidden,
    ...shape,
    window_size: V.windowSize,
    fullatt_block_indexes: V.fullAtt,
    tokens_per_second: V.tokensPerSecond,
    ...tail,
  };
}
