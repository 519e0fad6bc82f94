/**
 * Test-only: writes tiny, deterministic, random-weight Llava checkpoints in the exact Hugging Face layout
 * (config.json shaped like /work/shared/fixtures, safetensors weights, processor configs, the fixtures'
 * tokenizer). Every test that needs a checkpoint uses this one helper, so a layout fix lands everywhere.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFloat16, getFloat16 } from '@petamoriken/float16';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES_DIR = path.resolve(REPO_ROOT, '../shared/fixtures');
export const CLIP_FIXTURE = path.join(FIXTURES_DIR, 'llava-clip-llama-tiny');
export const SIGLIP_FIXTURE = path.join(FIXTURES_DIR, 'llava-siglip-qwen2-tiny');

export type Dtype = 'F32' | 'F16' | 'BF16';

/** One tensor to write: float values encoded to `dtype`, or `raw` little-endian bytes written verbatim. */
export interface TensorToWrite {
  name: string;
  dtype: Dtype | string;
  shape: number[];
  values?: Float32Array;
  raw?: Uint8Array;
}

/** Round float32 values to what `dtype` stores (so tests know the exact decoded values). */
export function roundTo(dtype: Dtype, values: Float32Array): Float32Array {
  if (dtype === 'F32') return Float32Array.from(values);
  const bytes = encode(dtype, values);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = dtype === 'F16' ? getFloat16(view, 2 * i, true) : new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0]!;
  }
  return out;
}

/** Encode float32 values as little-endian F32 / F16 (round-to-nearest-even) / BF16 (round-to-nearest-even). */
export function encode(dtype: Dtype, values: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  const view = new DataView(new ArrayBuffer(values.length * 2));
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'F16') setFloat16(view, 2 * i, values[i]!, true);
    else {
      const b = bits[i]!;
      view.setUint16(2 * i, (b + 0x7fff + ((b >>> 16) & 1)) >>> 16, true);
    }
  }
  return new Uint8Array(view.buffer);
}

/** Write a safetensors file: u64 LE header length, JSON header padded with spaces to 8 bytes, data. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const blob = t.raw ?? encode(t.dtype as Dtype, t.values ?? new Float32Array(0));
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + blob.byteLength] };
    blobs.push(blob);
    offset += blob.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(json, 'utf8'), ...blobs]));
}

/** Seeded N(0, 1) source: mulberry32 + Box-Muller. */
export function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

export interface TinyLlavaOptions {
  vision?: 'clip' | 'siglip';
  text?: 'llama' | 'qwen2';
  layout?: 'legacy' | 'current';
  dtype?: Dtype;
  /** Split weights over this many `model-0000i-of-0000n.safetensors` files plus the index. */
  shards?: number;
  seed?: number;
  /** Standard deviation of random weights (norm weights are 1 + this much noise). */
  std?: number;
  visionHidden?: number; visionIntermediate?: number; visionLayers?: number; visionHeads?: number;
  imageSize?: number; patchSize?: number;
  textHidden?: number; textIntermediate?: number; textLayers?: number; textHeads?: number; textKvHeads?: number;
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
}

export interface WrittenTensor {
  /** The name as stored on disk (layout-dependent). */
  key: string;
  dtype: Dtype;
  shape: number[];
  /** Exactly the values a correct reader decodes (already rounded to dtype). */
  values: Float32Array;
}

export interface TinyLlava {
  dir: string;
  config: Record<string, any>;
  /** Keyed by CANONICAL name (current transformers layout). */
  tensors: Map<string, WrittenTensor>;
  /** Weight files written, in order. */
  files: string[];
}

const PREFIXES = {
  current: { v: 'model.vision_tower.vision_model.', p: 'model.multi_modal_projector.', l: 'model.language_model.', head: 'lm_head.weight' },
  legacy: { v: 'vision_tower.vision_model.', p: 'multi_modal_projector.', l: 'language_model.model.', head: 'language_model.lm_head.weight' },
} as const;

export function writeTinyLlava(dir: string, o: TinyLlavaOptions = {}): TinyLlava {
  const vision = o.vision ?? 'clip';
  const text = o.text ?? (vision === 'clip' ? 'llama' : 'qwen2');
  const layout = o.layout ?? (vision === 'clip' ? 'legacy' : 'current');
  const dtype = o.dtype ?? 'F32';
  const clip = vision === 'clip';
  const V = { hidden: o.visionHidden ?? 32, inter: o.visionIntermediate ?? 64, layers: o.visionLayers ?? (clip ? 3 : 2),
    heads: o.visionHeads ?? 4, image: o.imageSize ?? (clip ? 28 : 32), patch: o.patchSize ?? (clip ? 7 : 8) };
  const T = { hidden: o.textHidden ?? (text === 'llama' ? 48 : 64), inter: o.textIntermediate ?? (text === 'llama' ? 96 : 128),
    layers: o.textLayers ?? 2, heads: o.textHeads ?? 4, kv: o.textKvHeads ?? 2, vocab: o.vocab ?? 260 };
  if (T.vocab < 260) throw new Error(`vocab ${T.vocab} < 260: the fixture tokenizer has ids up to 259`);
  const tie = o.tie ?? text === 'qwen2';
  const featureLayer = o.featureLayer ?? (clip ? -2 : -1);
  const strategy = o.strategy ?? (clip ? 'default' : 'full');
  const grid = Math.floor(V.image / V.patch);
  const headDim = T.hidden / T.heads;
  const nFeat = Array.isArray(featureLayer) ? featureLayer.length : 1;
  const qkvBias = text === 'qwen2' || o.attentionBias === true;
  const oBias = text === 'llama' && o.attentionBias === true;

  // Canonical name → shape, plus whether it is a norm weight (initialised near 1).
  const shapes: Array<[string, number[], boolean?]> = [];
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
  shapes.push([`${tp}embed_tokens.weight`, [T.vocab, T.hidden]]);
  for (let i = 0; i < T.layers; i++) {
    const lp = `${tp}layers.${i}.`;
    shapes.push([`${lp}input_layernorm.weight`, [T.hidden], true], [`${lp}post_attention_layernorm.weight`, [T.hidden], true]);
    const outs = { q_proj: T.heads * headDim, k_proj: T.kv * headDim, v_proj: T.kv * headDim };
    for (const [p, out] of Object.entries(outs)) {
      shapes.push([`${lp}self_attn.${p}.weight`, [out, T.hidden]]);
      if (qkvBias) shapes.push([`${lp}self_attn.${p}.bias`, [out]]);
    }
    shapes.push([`${lp}self_attn.o_proj.weight`, [T.hidden, T.heads * headDim]]);
    if (oBias) shapes.push([`${lp}self_attn.o_proj.bias`, [T.hidden]]);
    for (const [p, s] of [['gate_proj', [T.inter, T.hidden]], ['up_proj', [T.inter, T.hidden]], ['down_proj', [T.hidden, T.inter]]] as const) {
      shapes.push([`${lp}mlp.${p}.weight`, [...s]]);
      if (o.mlpBias) shapes.push([`${lp}mlp.${p}.bias`, [s[0]]]);
    }
  }
  shapes.push([`${tp}norm.weight`, [T.hidden], true]);
  if (!tie) shapes.push(['lm_head.weight', [T.vocab, T.hidden]]);

  const pre = PREFIXES[layout];
  const toDisk = (n: string): string =>
    n === 'lm_head.weight' ? pre.head
      : n.startsWith(vp) ? pre.v + n.slice(vp.length)
        : n.startsWith(pp) ? pre.p + n.slice(pp.length)
          : pre.l + n.slice(tp.length);
  const rand = gaussian(o.seed ?? 1234);
  const std = o.std ?? 0.02;
  const tensors = new Map<string, WrittenTensor>();
  for (const [name, shape, isNorm] of shapes) {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < v.length; i++) v[i] = (isNorm ? 1 : 0) + std * rand();
    tensors.set(name, { key: toDisk(name), dtype, shape, values: roundTo(dtype, v) });
  }

  fs.mkdirSync(dir, { recursive: true });
  const list = [...tensors.values()].map((t) => ({ name: t.key, dtype: t.dtype, shape: t.shape, values: t.values }));
  const files: string[] = [];
  const n = o.shards ?? 1;
  if (n <= 1) {
    files.push(path.join(dir, 'model.safetensors'));
    writeSafetensors(files[0]!, list, { format: 'pt' });
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(list.length / n);
    for (let s = 0; s < n; s++) {
      const base = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      const chunk = list.slice(s * per, (s + 1) * per);
      for (const t of chunk) weightMap[t.name] = base;
      files.push(path.join(dir, base));
      writeSafetensors(files[s]!, chunk, { format: 'pt' });
    }
    const totalSize = list.reduce((a, t) => a + t.values.length * (dtype === 'F32' ? 4 : 2), 0);
    writeJson(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: totalSize }, weight_map: weightMap });
  }

  const visionConfig: Record<string, unknown> = {
    model_type: clip ? 'clip_vision_model' : 'siglip_vision_model', hidden_size: V.hidden, intermediate_size: V.inter,
    num_hidden_layers: V.layers, num_attention_heads: V.heads, image_size: V.image, patch_size: V.patch, num_channels: 3,
    hidden_act: clip ? 'quick_gelu' : 'gelu_pytorch_tanh', layer_norm_eps: clip ? 1e-5 : 1e-6,
    ...(clip ? { projection_dim: V.hidden } : { vision_use_head: false }), ...o.configPatch?.vision,
  };
  const textConfig: Record<string, unknown> = {
    model_type: text, hidden_size: T.hidden, intermediate_size: T.inter, num_hidden_layers: T.layers,
    num_attention_heads: T.heads, num_key_value_heads: T.kv, vocab_size: T.vocab, rms_norm_eps: text === 'llama' ? 1e-5 : 1e-6,
    rope_theta: text === 'llama' ? 10000.0 : 1000000.0, max_position_embeddings: 4096, hidden_act: 'silu', tie_word_embeddings: tie,
    ...(o.ropeScaling !== undefined ? { rope_scaling: o.ropeScaling } : {}),
    ...(o.attentionBias !== undefined && text === 'llama' ? { attention_bias: o.attentionBias } : {}),
    ...(o.mlpBias !== undefined && text === 'llama' ? { mlp_bias: o.mlpBias } : {}), ...o.configPatch?.text,
  };
  const config: Record<string, any> = {
    architectures: ['LlavaForConditionalGeneration'], model_type: 'llava', vision_config: visionConfig, text_config: textConfig,
    image_token_index: 259, vision_feature_layer: featureLayer, vision_feature_select_strategy: strategy,
    projector_hidden_act: 'gelu', tie_word_embeddings: tie, ...o.configPatch?.top,
  };
  writeJson(path.join(dir, 'config.json'), config);
  writeProcessorConfigs(dir, clip, V.image, V.patch, strategy);
  const fixture = clip ? CLIP_FIXTURE : SIGLIP_FIXTURE;
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.chmodSync(path.join(dir, f), 0o644);
  return { dir, config, tensors, files };
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 1));
}

/** CLIPImageProcessor (shortest_edge + center crop) or SiglipImageProcessor (height/width), as in the fixtures. */
function writeProcessorConfigs(dir: string, clip: boolean, image: number, patch: number, strategy: string): void {
  writeJson(path.join(dir, 'preprocessor_config.json'), {
    image_processor_type: clip ? 'CLIPImageProcessor' : 'SiglipImageProcessor', do_resize: true,
    size: clip ? { shortest_edge: image } : { height: image, width: image }, do_center_crop: clip,
    crop_size: { height: image, width: image }, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
    image_mean: clip ? [0.48145466, 0.4578275, 0.40821073] : [0.5, 0.5, 0.5],
    image_std: clip ? [0.26862954, 0.26130258, 0.27577711] : [0.5, 0.5, 0.5], resample: 3, do_convert_rgb: true,
  });
  writeJson(path.join(dir, 'processor_config.json'), {
    processor_class: 'LlavaProcessor', patch_size: patch, vision_feature_select_strategy: strategy,
    image_token: '<image>', num_additional_image_tokens: clip ? 1 : 0,
  });
}

export type CorruptKind = 'truncate' | 'bad-json' | 'header-too-long' | 'bad-offsets';

/**
 * Damage a written safetensors file in place. `truncate`: drop the last `bytes` (default 16) so the last
 * tensor runs past the end. `bad-json`: overwrite the header with non-JSON. `header-too-long`: the length
 * prefix claims more bytes than the file has. `bad-offsets`: first tensor's data_offsets disagree with its shape.
 */
export function corruptSafetensors(file: string, kind: CorruptKind, bytes = 16): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  if (kind === 'truncate') fs.writeFileSync(file, buf.subarray(0, buf.length - bytes));
  else if (kind === 'header-too-long') {
    buf.writeBigUInt64LE(BigInt(buf.length * 2), 0);
    fs.writeFileSync(file, buf);
  } else if (kind === 'bad-json') {
    buf.fill(0x7b, 8, 8 + n); // '{{{{…' is not JSON
    fs.writeFileSync(file, buf);
  } else {
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    const first = Object.keys(header).find((k) => k !== '__metadata__')!;
    header[first].data_offsets[1] -= 2;
    const tensorBytes = buf.subarray(8 + n);
    writeRawHeader(file, header, tensorBytes);
  }
}

function writeRawHeader(file: string, header: unknown, data: Uint8Array): void {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, json, data]));
}
