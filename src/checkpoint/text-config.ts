/**
 * The LLM's config (a LLaMA or Qwen2 decoder) → TextSpec, as transformers reads it: absent fields take the
 * defaults of models/llama/configuration_llama.py (LlamaConfig) and models/qwen2/configuration_qwen2.py
 * (Qwen2Config) — or the family's own text config defaults — and rope parameters as modeling_rope_utils.py
 * reads them (rope.ts). Every family's reader calls this on the section that holds its text fields.
 */
import { Fields } from './config-fields.js';
import type { TextSpec } from './spec.js';
import { readRopeScaling } from './rope.js';

export interface TextDefaults {
  vocab: number;
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  maxPos: number;
  eps: number;
  theta: number;
  /** Absent num_key_value_heads: Qwen2Config's 32 unless the family says otherwise. */
  kvHeads?: number;
}

export interface TextConfigOptions {
  /** The decoder, when the family fixes it (Qwen2-VL's is Qwen2); default: read from `model_type`. */
  kind?: TextSpec['kind'];
  /** The family's text config defaults; default: LlamaConfig's or Qwen2Config's. */
  defaults?: TextDefaults;
  /** The family's LLM takes multimodal rotary positions (`mrope_section` required). */
  mrope?: boolean;
}

/** Per-model defaults, from LlamaConfig / Qwen2Config `__init__`. */
const TEXT_DEFAULTS: Record<TextSpec['kind'], TextDefaults> = {
  llama: { vocab: 32000, hidden: 4096, inter: 11008, layers: 32, heads: 32, maxPos: 2048, eps: 1e-6, theta: 10000 },
  qwen2: { vocab: 151936, hidden: 4096, inter: 22016, layers: 32, heads: 32, maxPos: 32768, eps: 1e-6, theta: 10000 },
};

export function parseTextConfig(f: Fields, top: Fields, options: TextConfigOptions = {}): TextSpec {
  // LlavaConfig: `text_config["model_type"] = text_config.get("model_type", "llama")`.
  const kind: TextSpec['kind'] = options.kind ?? f.oneOf('model_type', ['llama', 'qwen2'] as const, 'llama');
  const d = options.defaults ?? TEXT_DEFAULTS[kind];
  const hiddenSize = f.posInt('hidden_size', d.hidden);
  const numHeads = f.posInt('num_attention_heads', d.heads);
  // LlamaConfig defaults num_key_value_heads to None, Qwen2Config to 32; both then map None (null) to
  // num_attention_heads.
  const numKvHeads =
    f.obj['num_key_value_heads'] === null || (kind === 'llama' && !('num_key_value_heads' in f.obj))
      ? numHeads
      : f.posInt('num_key_value_heads', d.kvHeads ?? 32);
  if (numHeads % numKvHeads !== 0) {
    throw f.invalid('num_key_value_heads', `does not divide num_attention_heads ${numHeads}`);
  }
  // LlamaConfig: `head_dim if head_dim is not None else hidden_size // num_attention_heads`; Qwen2Attention
  // reads `getattr(config, "head_dim", hidden_size // num_attention_heads)`.
  let headDim: number;
  if (f.obj['head_dim'] == null) {
    if (hiddenSize % numHeads !== 0) throw f.invalid('num_attention_heads', `does not divide hidden_size ${hiddenSize}`);
    headDim = hiddenSize / numHeads;
  } else {
    headDim = f.posInt('head_dim');
  }
  if (headDim % 2 !== 0) throw f.invalid('head_dim', `(${headDim}) must be even for rotary embeddings`);
  f.oneOf('hidden_act', ['silu'], 'silu');
  // Qwen2 with use_sliding_window masks layers >= max_window_layers to a window; we run full attention only.
  if (kind === 'qwen2' && f.bool('use_sliding_window', false)) throw f.unsupported('use_sliding_window', true, ['false']);
  const { ropeTheta, ropeScaling, mropeSection } = readRopeScaling(f, d.theta);
  if (mropeSection && !options.mrope) throw f.unsupported('rope_scaling.mrope_section', mropeSection, ['absent: this architecture has one position row']);
  if (!mropeSection && options.mrope) throw f.invalid('rope_scaling', 'needs mrope_section: this architecture uses multimodal rotary positions');
  if (mropeSection && mropeSection.reduce((a, b) => a + b, 0) * 2 !== headDim) {
    throw f.invalid('rope_scaling', `mrope_section ${JSON.stringify(mropeSection)} must sum to head_dim / 2 = ${headDim / 2}`);
  }
  // Llama: attention_bias covers q, k, v and o; mlp_bias covers gate/up/down. Qwen2: q/k/v bias, no o/mlp bias.
  const attnBias = kind === 'qwen2' ? true : f.bool('attention_bias', false);
  // The brief's rule: text_config first, then the top-level LlavaConfig field, then the model default (False).
  const tie = f.obj['tie_word_embeddings'] ?? top.obj['tie_word_embeddings'] ?? false;
  if (typeof tie !== 'boolean') throw f.invalid('tie_word_embeddings', 'must be true or false');
  return {
    kind,
    hiddenSize,
    intermediateSize: f.posInt('intermediate_size', d.inter),
    numLayers: f.posInt('num_hidden_layers', d.layers),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: f.posInt('vocab_size', d.vocab),
    rmsNormEps: f.posNum('rms_norm_eps', d.eps),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: f.posInt('max_position_embeddings', d.maxPos),
    attentionBias: attnBias,
    outputBias: kind === 'qwen2' ? false : attnBias,
    mlpBias: kind === 'qwen2' ? false : f.bool('mlp_bias', false),
    tieWordEmbeddings: tie,
    act: 'silu',
    ...(mropeSection && { mropeSection }),
  };
}
