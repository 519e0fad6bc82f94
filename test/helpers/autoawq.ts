/**
 * AutoAWQ (GEMM) checkpoints written from float ones, independent of src/weights/autoawq.ts: each chosen linear
 * gets known int4 codes, zero points and F16 scales, packed as AutoAWQ's WQLinear_GEMM.from_linear packs them
 * (awq/modules/linear/gemm.py); its float twin holds w = (q − z) · s. A correct loader holds exactly those codes
 * in MatMulNBits and computes with exactly the twin's weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { gaussian, roundTo, type TensorToWrite, type WrittenTensor } from './checkpoint-writer.js';

/** AutoAWQ's order_map: nibble j of a packed word holds column 8c + ORDER[j]. */
const ORDER = [0, 2, 4, 6, 1, 3, 5, 7];

/** The decoder linears AutoAWQ quantizes in every LLaMA / Qwen2 layer (awq/models/llama.py, qwen2_5_vl.py). */
export const DECODER_LINEARS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
];

/**
 * The decoder's MatMulNBits nodes: their block sizes and the output rows they compute in all. Linears that read one
 * input share a node (q/k/v_proj, gate/up_proj: graph/layers.ts `linears`), so a layer holds four.
 */
export function int4Nodes(nodes: onnxProto.onnx.INodeProto[]): { blockSizes: number[]; rows: number } {
  const nbits = nodes.filter((n) => n.opType === 'MatMulNBits' && n.name!.includes('layers.'));
  const attr = (n: onnxProto.onnx.INodeProto, name: string) => Number(n.attribute!.find((a) => a.name === name)!.i);
  return { blockSizes: nbits.map((n) => attr(n, 'block_size')), rows: nbits.reduce((sum, n) => sum + attr(n, 'N'), 0) };
}

/** AutoAWQ's packing of an [rows, cols] int4 matrix into int32 [rows, cols / 8] (from_linear's loop). */
export function packAutoAwq(value: (row: number, col: number) => number, rows: number, cols: number): Int32Array {
  const out = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols / 8; c++) {
      for (let j = 0; j < 8; j++) out[r * (cols / 8) + c]! |= value(r, 8 * c + ORDER[j]!) << (4 * j);
    }
  }
  return out;
}

/** One linear's known quantization. */
export interface Known {
  out: number;
  in: number;
  /** [out, in] */
  codes: Uint8Array;
  /** [out, groups] */
  zeros: Uint8Array;
  /** [groups, out], as AutoAWQ stores them (F16 values) */
  scales: Float32Array;
  /** (q − z) · s, [out, in] */
  weight: Float32Array;
}

/** Known codes, zero points and scales of an [out, in] linear; scales are `scale` · (0.25 + |N(0, 1)|). */
export function knownLinear(out: number, inF: number, group: number, seed: number, scale = 0.004): Known {
  const g = gaussian(seed);
  const groups = inF / group;
  const codes = Uint8Array.from({ length: out * inF }, () => Math.floor(Math.abs(g() * 7919)) % 16);
  const zeros = Uint8Array.from({ length: out * groups }, () => Math.floor(Math.abs(g() * 104729)) % 16);
  const scales = roundTo(
    'F16',
    Float32Array.from({ length: groups * out }, () => scale * (0.25 + Math.abs(g()))),
  );
  const weight = Float32Array.from({ length: out * inF }, (_, i) => {
    const [o, c] = [Math.floor(i / inF), i % inF];
    const grp = Math.floor(c / group);
    return (codes[i]! - zeros[o * groups + grp]!) * scales[grp * out + o]!;
  });
  return { out, in: inF, codes, zeros, scales, weight };
}

/** A linear's qweight / qzeros / scales under its on-disk module name `key`, as AutoAWQ stores them (the transpose). */
export function autoAwqTensors(key: string, k: Known, group: number): TensorToWrite[] {
  const qweight = packAutoAwq((i, o) => k.codes[o * k.in + i]!, k.in, k.out);
  const qzeros = packAutoAwq((g, o) => k.zeros[o * (k.in / group) + g]!, k.in / group, k.out);
  return [
    { name: `${key}.qweight`, dtype: 'I32', shape: [k.in, k.out / 8], raw: new Uint8Array(qweight.buffer) },
    { name: `${key}.qzeros`, dtype: 'I32', shape: [k.in / group, k.out / 8], raw: new Uint8Array(qzeros.buffer) },
    { name: `${key}.scales`, dtype: 'F16', shape: [k.in / group, k.out], values: k.scales },
  ];
}

export interface AutoAwqCopy {
  /** The quantized checkpoint's tensors: chosen linears as qweight / qzeros / scales, the rest as written. */
  quantized: TensorToWrite[];
  /** The float twin's: chosen linears as their dequantized weights (F32), the rest as written. */
  twin: TensorToWrite[];
  /** Canonical module name → its known quantization. */
  known: Map<string, Known>;
}

/**
 * Quantizes the `.weight` of every canonical name `quantize` picks (a checkpoint writer's tensors, keyed by
 * canonical name with their on-disk `key`), with known codes seeded from `seed` upward and scales of about
 * `scale` (knownLinear).
 */
export function quantizeAutoAwq(
  tensors: Map<string, WrittenTensor>,
  quantize: (name: string) => boolean,
  group: number,
  seed: number,
  scale?: number,
): AutoAwqCopy {
  const copy: AutoAwqCopy = { quantized: [], twin: [], known: new Map() };
  for (const [name, t] of tensors) {
    if (!quantize(name)) {
      copy.quantized.push({ name: t.key, dtype: t.dtype, shape: t.shape, values: t.values });
      copy.twin.push({ name: t.key, dtype: t.dtype, shape: t.shape, values: t.values });
      continue;
    }
    const [out, inF] = t.shape as [number, number];
    const k = knownLinear(out, inF, group, seed++, scale);
    copy.known.set(name.slice(0, -'.weight'.length), k);
    copy.quantized.push(...autoAwqTensors(t.key.slice(0, -'.weight'.length), k, group));
    copy.twin.push({ name: t.key, dtype: 'F32', shape: t.shape, values: k.weight });
  }
  return copy;
}

/** The LLM decoder linears of a checkpoint writer's canonical names: what AutoAWQ quantizes. */
export const isDecoderLinear = (name: string): boolean =>
  name.startsWith('model.language_model.layers.') && DECODER_LINEARS.some((l) => name.endsWith(`${l}.weight`));

/** Rewrites `dir`/config.json through `patch`. */
export function patchConfig(dir: string, patch: (config: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  patch(config);
  fs.writeFileSync(file, JSON.stringify(config));
}

/** A built graph's initializers' bytes by name, and its nodes. */
export function readGraph(modelPath: string): { bytesOf: (name: string) => Uint8Array; nodes: onnxProto.onnx.INodeProto[] } {
  const model = onnxProto.onnx.ModelProto.decode(fs.readFileSync(modelPath));
  const data = fs.existsSync(modelPath + '.data') ? fs.readFileSync(modelPath + '.data') : Buffer.alloc(0);
  // Initializers of up to 64 bytes are inline (onnx-builder.ts), the rest in the external data file.
  const bytesOf = (name: string) => {
    const init = model.graph!.initializer!.find((i) => i.name === name);
    if (!init) throw new Error(`no initializer ${name} in ${modelPath}`);
    if (init.rawData?.length) return new Uint8Array(init.rawData);
    const field = (key: string) => Number(init.externalData!.find((e) => e.key === key)!.value);
    return new Uint8Array(data.subarray(field('offset'), field('offset') + field('length')));
  };
  return { bytesOf, nodes: model.graph!.node! };
}
