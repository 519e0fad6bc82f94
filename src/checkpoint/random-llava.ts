/**
 * Random-weight Llava checkpoints in the exact Hugging Face layout, for tests and benchmarks: config.json
 * shaped like transformers' (CLIP or SigLIP tower, LLaMA or Qwen2 text model, legacy or current key layout),
 * seeded N(0, std) weights (norm weights 1 + noise) in F32 / F16 / BF16 safetensors, single file or sharded,
 * processor configs, and the bundled model's tokenizer (byte-level BPE, ids 0-259; a larger `vocab` is fine,
 * the extra ids are simply never produced by the tokenizer).
 *
 * Weights are generated and written one tensor at a time (random-weights.ts), so the same generator
 * writes both the tiny test models (`writeTinyLlava`, which also returns every value written) and full-size
 * shapes such as a Qwen2-0.5B text model (`writeRandomLlava`, which keeps no values).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decoderTensors,
  writeJson,
  writeRandomWeights,
  type RandomCheckpoint,
  type RandomTensorSpec,
  type TextSizeOptions,
  type TinyCheckpoint,
} from './random-weights.js';
import type { WritableFloatDtype } from './safetensors-writer.js';

export { gaussian, type RandomTensorInfo, type WrittenTensor } from './random-weights.js';

/** Where the tokenizer files are copied from: the bundled checkpoint, resolved from src/ or dist/src/. */
const BUNDLED_TOKENIZER_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../../../src/models/tiny-random-llava' : '../models/tiny-random-llava',
);
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'];
/** The highest id the bundled tokenizer produces is 259 (`<image>`). */
const TOKENIZER_VOCAB = 260;
export interface RandomLlavaOptions extends TextSizeOptions {
  vision?: 'clip' | 'siglip';
  text?: 'llama' | 'qwen2';
  layout?: 'legacy' | 'current';
  dtype?: WritableFloatDtype;
  /** Split weights over this many `model-0000i-of-0000n.safetensors` files plus the index. */
  shards?: number;
  seed?: number;
  /** Standard deviation of random weights (norm weights are 1 + this much noise). */
  std?: number;
  visionHidden?: number;
  visionIntermediate?: number;
  visionLayers?: number;
  visionHeads?: number;
  imageSize?: number;
  patchSize?: number;
  vocab?: number;
  tie?: boolean;
  featureLayer?: number | number[];
  strategy?: 'default' | 'full';
  ropeScaling?: Record<string, unknown> | null;
  /** LLaMA `attention_bias` (q/k/v/o biases). Qwen2 always has q/k/v biases. */
  attentionBias?: boolean;
  mlpBias?: boolean;
  /** Shallow overrides merged into the top-level / text / vision config after it is built. */
  configPatch?: { top?: Record<string, unknown>; text?: Record<string, unknown>; vision?: Record<string, unknown> };
  /** Copy tokenizer.json and tokenizer_config.json from here instead of the bundled tiny model. */
  tokenizerDir?: string;
}

/** The options of `writeTinyLlava` (the same as `writeRandomLlava`). */
export type TinyLlavaOptions = RandomLlavaOptions;

export type RandomLlava = RandomCheckpoint;
export type TinyLlava = TinyCheckpoint;

const PREFIXES = {
  current: { v: 'model.vision_tower.vision_model.', p: 'model.multi_modal_projector.', l: 'model.language_model.', head: 'lm_head.weight' },
  legacy: { v: 'vision_tower.vision_model.', p: 'multi_modal_projector.', l: 'language_model.model.', head: 'language_model.lm_head.weight' },
} as const;

/** Writes a random Llava checkpoint into `dir` and returns every value written (small models: tests). */
export function writeTinyLlava(dir: string, o: RandomLlavaOptions = {}): TinyLlava {
  return writeLlava(dir, o, true) as TinyLlava;
}

/** Writes a random Llava checkpoint of any size into `dir`, one tensor at a time; keeps no values. */
export function writeRandomLlava(dir: string, o: RandomLlavaOptions = {}): RandomLlava {
  return writeLlava(dir, o, false);
}

function writeLlava(dir: string, o: RandomLlavaOptions, keepValues: boolean): RandomLlava {
  const vision = o.vision ?? 'clip';
  const text = o.text ?? (vision === 'clip' ? 'llama' : 'qwen2');
  const layout = o.layout ?? (vision === 'clip' ? 'legacy' : 'current');
  const dtype = o.dtype ?? 'F32';
  const clip = vision === 'clip';
  const V = {
    hidden: o.visionHidden ?? 32,
    inter: o.visionIntermediate ?? 64,
    layers: o.visionLayers ?? (clip ? 3 : 2),
    heads: o.visionHeads ?? 4,
    image: o.imageSize ?? (clip ? 28 : 32),
    patch: o.patchSize ?? (clip ? 7 : 8),
  };
  const T = {
    hidden: o.textHidden ?? (text === 'llama' ? 48 : 64),
    inter: o.textIntermediate ?? (text === 'llama' ? 96 : 128),
    layers: o.textLayers ?? 2,
    heads: o.textHeads ?? 4,
    kv: o.textKvHeads ?? 2,
    vocab: o.vocab ?? TOKENIZER_VOCAB,
  };
  if (T.vocab < TOKENIZER_VOCAB) throw new Error(`vocab ${T.vocab} < ${TOKENIZER_VOCAB}: the bundled tokenizer has ids up to ${TOKENIZER_VOCAB - 1}`);
  const tie = o.tie ?? text === 'qwen2';
  const featureLayer = o.featureLayer ?? (clip ? -2 : -1);
  const strategy = o.strategy ?? (clip ? 'default' : 'full');
  const grid = Math.floor(V.image / V.patch);
  const headDim = T.hidden / T.heads;
  const nFeat = Array.isArray(featureLayer) ? featureLayer.length : 1;
  const qkvBias = text === 'qwen2' || o.attentionBias === true;
  const oBias = text === 'llama' && o.attentionBias === true;

  // Canonical name → shape, plus whether it is a norm weight (initialised near 1).
  const shapes: RandomTensorSpec[] = [];
  const vp = 'model.vision_tower.vision_model.';
  shapes.push([`${vp}embeddings.patch_embedding.weight`, [V.hidden, 3, V.patch, V.patch]]);
  if (!clip) shapes.push([`${vp}embeddings.patch_embedding.bias`, [V.hidden]]);
  if (clip) shapes.push([`${vp}embeddings.class_embedding`, [V.hidden]]);
  shapes.push([`${vp}embeddings.position_embedding.weight`, [grid * grid + (clip ? 1 : 0), V.hidden]]);
  if (clip) shapes.push([`${vp}pre_layrnorm.weight`, [V.hidden], true], [`${vp}pre_layrnorm.bias`, [V.hidden]]);
  for (let i = 0; i < V.layers; i++) {
    const lp = `${vp}encoder.layers.${i}.`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      shapes.push([`${lp}self_attn.${p}.weight`, [V.hidden, V.hidden]], [`${lp}self_attn.${p}.bias`, [V.hidden]]);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) shapes.push([`${lp}${n}.weight`, [V.hidden], true], [`${lp}${n}.bias`, [V.hidden]]);
    shapes.push([`${lp}mlp.fc1.weight`, [V.inter, V.hidden]], [`${lp}mlp.fc1.bias`, [V.inter]]);
    shapes.push([`${lp}mlp.fc2.weight`, [V.hidden, V.inter]], [`${lp}mlp.fc2.bias`, [V.hidden]]);
  }
  shapes.push([`${vp}post_layernorm.weight`, [V.hidden], true], [`${vp}post_layernorm.bias`, [V.hidden]]);
  const pp = 'model.multi_modal_projector.';
  shapes.push([`${pp}linear_1.weight`, [T.hidden, V.hidden * nFeat]], [`${pp}linear_1.bias`, [T.hidden]]);
  shapes.push([`${pp}linear_2.weight`, [T.hidden, T.hidden]], [`${pp}linear_2.bias`, [T.hidden]]);
  const tp = 'model.language_model.';
  shapes.push(...decoderTensors({ ...T, headDim, qkvBias, oBias, mlpBias: o.mlpBias === true, tie }));

  const pre = PREFIXES[layout];
  const toDisk = (n: string): string =>
    n === 'lm_head.weight'
      ? pre.head
      : n.startsWith(vp)
        ? pre.v + n.slice(vp.length)
        : n.startsWith(pp)
          ? pre.p + n.slice(pp.length)
          : pre.l + n.slice(tp.length);

  const { tensors, files, parameters, bytes } = writeRandomWeights(dir, shapes, toDisk, {
    dtype,
    seed: o.seed ?? 1234,
    std: o.std ?? 0.02,
    shards: o.shards ?? 1,
    keepValues,
  });

  const visionConfig: Record<string, unknown> = {
    model_type: clip ? 'clip_vision_model' : 'siglip_vision_model',
    hidden_size: V.hidden,
    intermediate_size: V.inter,
    num_hidden_layers: V.layers,
    num_attention_heads: V.heads,
    image_size: V.image,
    patch_size: V.patch,
    num_channels: 3,
    hidden_act: clip ? 'quick_gelu' : 'gelu_pytorch_tanh',
    layer_norm_eps: clip ? 1e-5 : 1e-6,
    ...(clip ? { projection_dim: V.hidden } : { vision_use_head: false }),
    ...o.configPatch?.vision,
  };
  const textConfig: Record<string, unknown> = {
    model_type: text,
    hidden_size: T.hidden,
    intermediate_size: T.inter,
    num_hidden_layers: T.layers,
    num_attention_heads: T.heads,
    num_key_value_heads: T.kv,
    vocab_size: T.vocab,
    rms_norm_eps: text === 'llama' ? 1e-5 : 1e-6,
    rope_theta: text === 'llama' ? 10000.0 : 1000000.0,
    max_position_embeddings: 4096,
    hidden_act: 'silu',
    tie_word_embeddings: tie,
    ...(o.ropeScaling !== undefined ? { rope_scaling: o.ropeScaling } : {}),
    ...(o.attentionBias !== undefined && text === 'llama' ? { attention_bias: o.attentionBias } : {}),
    ...(o.mlpBias !== undefined && text === 'llama' ? { mlp_bias: o.mlpBias } : {}),
    ...o.configPatch?.text,
  };
  const config: Record<string, any> = {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    vision_config: visionConfig,
    text_config: textConfig,
    image_token_index: 259,
    vision_feature_layer: featureLayer,
    vision_feature_select_strategy: strategy,
    projector_hidden_act: 'gelu',
    tie_word_embeddings: tie,
    ...o.configPatch?.top,
  };
  writeJson(path.join(dir, 'config.json'), config);
  writeProcessorConfigs(dir, clip, V.image, V.patch, strategy);
  const tokenizerDir = o.tokenizerDir ?? BUNDLED_TOKENIZER_DIR;
  for (const f of TOKENIZER_FILES) {
    fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
    fs.chmodSync(path.join(dir, f), 0o644);
  }
  return { dir, config, tensors, files, parameters, bytes };
}

/** CLIPImageProcessor (shortest_edge + center crop) or SiglipImageProcessor (height/width), as transformers writes them. */
function writeProcessorConfigs(dir: string, clip: boolean, image: number, patch: number, strategy: string): void {
  writeJson(path.join(dir, 'preprocessor_config.json'), {
    image_processor_type: clip ? 'CLIPImageProcessor' : 'SiglipImageProcessor',
    do_resize: true,
    size: clip ? { shortest_edge: image } : { height: image, width: image },
    do_center_crop: clip,
    crop_size: { height: image, width: image },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: clip ? [0.48145466, 0.4578275, 0.40821073] : [0.5, 0.5, 0.5],
    image_std: clip ? [0.26862954, 0.26130258, 0.27577711] : [0.5, 0.5, 0.5],
    resample: 3,
    do_convert_rgb: true,
  });
  writeJson(path.join(dir, 'processor_config.json'), {
    processor_class: 'LlavaProcessor',
    patch_size: patch,
    vision_feature_select_strategy: strategy,
    image_token: '<image>',
    num_additional_image_tokens: clip ? 1 : 0,
  });
}
