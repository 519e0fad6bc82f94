/**
 * Seeded random weights written as a safetensors checkpoint, shared by the random checkpoint writers
 * (random-llava.ts, random-qwen.ts): one N(0, std) stream over all tensors in list order (norm weights
 * 1 + noise), each tensor generated when the writer reaches it (safetensors-writer.ts), so the values are the
 * same whether they are kept (tiny test models) or streamed in chunks (full-size shapes, nothing kept); and
 * the LLaMA / Qwen2 decoder's tensor list, which both families' LLMs share.
 */
import * as fs from 'node:fs';
import { roundToDtype, writeSafetensorsCheckpoint, type TensorChunk, type TensorToWrite, type WritableFloatDtype } from './safetensors-writer.js';

/** Values generated per chunk when values are not kept. */
const GENERATE_CHUNK = 1 << 20;

/** Seeded N(0, 1) source: mulberry32 + Box-Muller (one value per pair of uniforms). */
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

export interface RandomTensorInfo {
  /** The name as stored on disk (layout-dependent). */
  key: string;
  dtype: WritableFloatDtype;
  shape: number[];
}

export interface WrittenTensor extends RandomTensorInfo {
  /** Exactly the values a correct reader decodes (already rounded to dtype). */
  values: Float32Array;
}

/** The LLM's sizes, as every random writer takes them. */
export interface TextSizeOptions {
  textHidden?: number;
  textIntermediate?: number;
  textLayers?: number;
  textHeads?: number;
  textKvHeads?: number;
}

/** A random checkpoint as written: its config, every tensor (by canonical name, in the order written), files, sizes. */
export interface RandomCheckpoint {
  dir: string;
  config: Record<string, any>;
  /** Keyed by CANONICAL name (transformers' current layout), in the order written. */
  tensors: Map<string, RandomTensorInfo>;
  /** Weight files written, in order. */
  files: string[];
  /** Parameters written (all tensors). */
  parameters: number;
  /** Bytes of tensor data written. */
  bytes: number;
}

/** The same, with every value written kept (the tiny writers). */
export interface TinyCheckpoint extends RandomCheckpoint {
  tensors: Map<string, WrittenTensor>;
}

/** One tensor to generate: canonical name, shape, and whether it is a norm weight (initialised near 1). */
export type RandomTensorSpec = [name: string, shape: number[], isNorm?: boolean];

/** The sizes and biases of a LLaMA / Qwen2 decoder. */
export interface DecoderShape {
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kv: number;
  headDim: number;
  vocab: number;
  /** q/k/v biases (Qwen2; LLaMA's attention_bias). */
  qkvBias: boolean;
  /** o_proj bias (LLaMA's attention_bias). */
  oBias: boolean;
  mlpBias: boolean;
  /** Tied embeddings: no lm_head.weight. */
  tie: boolean;
}

/** The decoder's tensors under canonical names (`model.language_model.*`, `lm_head.weight`), in module order. */
export function decoderTensors(T: DecoderShape): RandomTensorSpec[] {
  const tp = 'model.language_model.';
  const shapes: RandomTensorSpec[] = [[`${tp}embed_tokens.weight`, [T.vocab, T.hidden]]];
  for (let i = 0; i < T.layers; i++) {
    const lp = `${tp}layers.${i}.`;
    shapes.push([`${lp}input_layernorm.weight`, [T.hidden], true], [`${lp}post_attention_layernorm.weight`, [T.hidden], true]);
    const outs = { q_proj: T.heads * T.headDim, k_proj: T.kv * T.headDim, v_proj: T.kv * T.headDim };
    for (const [p, out] of Object.entries(outs)) {
      shapes.push([`${lp}self_attn.${p}.weight`, [out, T.hidden]]);
      if (T.qkvBias) shapes.push([`${lp}self_attn.${p}.bias`, [out]]);
    }
    shapes.push([`${lp}self_attn.o_proj.weight`, [T.hidden, T.heads * T.headDim]]);
    if (T.oBias) shapes.push([`${lp}self_attn.o_proj.bias`, [T.hidden]]);
    for (const [p, s] of [
      ['gate_proj', [T.inter, T.hidden]],
      ['up_proj', [T.inter, T.hidden]],
      ['down_proj', [T.hidden, T.inter]],
    ] as const) {
      shapes.push([`${lp}mlp.${p}.weight`, [...s]]);
      if (T.mlpBias) shapes.push([`${lp}mlp.${p}.bias`, [s[0]]]);
    }
  }
  shapes.push([`${tp}norm.weight`, [T.hidden], true]);
  if (!T.tie) shapes.push(['lm_head.weight', [T.vocab, T.hidden]]);
  return shapes;
}

export interface RandomWeightsOptions {
  dtype: WritableFloatDtype;
  seed: number;
  std: number;
  /** Weight files to split over (1: a single model.safetensors). */
  shards: number;
  /** Keep every tensor's values (returned as WrittenTensor); otherwise stream them and keep nothing. */
  keepValues: boolean;
}

export interface RandomWeights {
  /** Keyed by CANONICAL name, in the order written; values only when kept. */
  tensors: Map<string, RandomTensorInfo | WrittenTensor>;
  /** Weight files written, in order. */
  files: string[];
  /** Parameters written (all tensors). */
  parameters: number;
  /** Bytes of tensor data written. */
  bytes: number;
}

/** Writes `specs` into `dir` under the on-disk names `toDisk` gives. */
export function writeRandomWeights(dir: string, specs: readonly RandomTensorSpec[], toDisk: (name: string) => string, o: RandomWeightsOptions): RandomWeights {
  const { dtype, std } = o;
  const rand = gaussian(o.seed);
  const fill = (v: Float32Array, isNorm: boolean): Float32Array => {
    for (let i = 0; i < v.length; i++) v[i] = (isNorm ? 1 : 0) + std * rand();
    return v;
  };
  const tensors = new Map<string, RandomTensorInfo | WrittenTensor>();
  let parameters = 0;
  const list: TensorToWrite[] = specs.map(([name, shape, isNorm]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    parameters += count;
    const info: RandomTensorInfo = { key: toDisk(name), dtype, shape };
    tensors.set(name, info);
    const generate = o.keepValues
      ? () => {
          const values = roundToDtype(dtype, fill(new Float32Array(count), isNorm === true));
          tensors.set(name, { ...info, values });
          return values;
        }
      : function* (): Iterable<TensorChunk> {
          const buf = new Float32Array(Math.min(count, GENERATE_CHUNK));
          for (let at = 0; at < count; at += buf.length) {
            yield fill(buf.subarray(0, Math.min(buf.length, count - at)), isNorm === true);
          }
        };
    return { name: info.key, dtype, shape, generate };
  });
  fs.mkdirSync(dir, { recursive: true });
  const written = writeSafetensorsCheckpoint(dir, list, { shards: o.shards > 1 ? o.shards : 1 });
  return { tensors, files: written.files, parameters, bytes: written.totalSize };
}

export function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 1));
}
