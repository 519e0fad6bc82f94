/**
 * The Qwen2-VL / Qwen2.5-VL vision tower (`model.visual`) as ONNX, following transformers 4.57's
 * models/qwen2_vl/modeling_qwen2_vl.py and models/qwen2_5_vl/modeling_qwen2_5_vl.py: Conv3d patch embed →
 * blocks (x + attn(norm1(x)), x + mlp(norm2(x))) with the 2-D vision rotary → PatchMerger.
 *
 * One call runs the patches of one or more images (or videos); the patch count is dynamic. The host does the
 * row bookkeeping (vision-order.ts): the rows arrive in window order with their rotary positions and
 * segment ids, and `unit_order` (the inverse window permutation) puts every output back in image order.
 * Attention is block-diagonal, as transformers' per-`cu_seqlens` chunks are: full blocks attend within
 * `full_segment` (a temporal slice of one image), the others within `window_segment`; the mask is built
 * in-graph from the ids with Equal, so no [patches × patches] input crosses the boundary.
 *
 *   inputs   pixel_values [patches, C·tp·p·p]  rotary_pos [patches, 2] (row, col)  full_segment [patches]
 *            window_segment [patches] (Qwen2.5-VL only)  unit_order [units]
 *   outputs  image_embeds [units, outHiddenSize]  image order
 *            received_attention.<block> [patches]  per full block: the attention each patch receives, mean
 *                     over heads and over its segment's query rows (each segment sums to 1), processor order
 *            key_metric [units, headDim]  the salience block's keys (before rotary: their content, not their
 *                     position), mean over heads and over each unit's m² patches, image order
 */
import { ConfigError } from '../../errors.js';
import { activation, attentionMatMul, layerNorm, linear, rmsNorm, type LinearOptions } from '../../graph/layers.js';
import type { OnnxGraphBuilder } from '../../graph/onnx-builder.js';
import type { WeightReader } from '../../weights/weight-reader.js';
import type { QwenVisionSpec } from './spec.js';
import { hasWindowBlocks } from './vision-order.js';

const PREFIX = 'model.visual';
/** Qwen2_5_VisionRotaryEmbedding / VisionRotaryEmbedding: theta 10000 over head_dim / 2 channels. */
const ROTARY_THETA = 10000;

interface Masks {
  /** Additive [patches, patches]: 0 within a segment, −∞ across. */
  bias: string;
  /** Rows per segment, per patch [patches]: the divisor of the mean over query rows. */
  rows: string;
}

interface Rows {
  cos: string;
  sin: string;
  full: Masks;
  window?: Masks;
  unitOrder: string;
}

export function buildQwenVisionGraph(
  b: OnnxGraphBuilder,
  w: WeightReader,
  v: QwenVisionSpec,
  options: LinearOptions & { onLayer?(done: number, total: number): void },
): void {
  checkSpec(v);
  const rowLen = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const pixels = b.input('pixel_values', 'float32', ['patches', rowLen]);
  const rotaryPos = b.input('rotary_pos', 'int64', ['patches', 2]);
  const fullSegment = b.input('full_segment', 'int64', ['patches']);
  const windowSegment = hasWindowBlocks(v) ? b.input('window_segment', 'int64', ['patches']) : undefined;
  const unitOrder = b.input('unit_order', 'int64', ['units']);
  const rows = b.scope('model/visual', () => ({
    ...b.scope('rotary_pos_emb', () => rotaryCosSin(b, v, rotaryPos)),
    full: b.scope('full_mask', () => segmentMask(b, fullSegment)),
    window: windowSegment === undefined ? undefined : b.scope('window_mask', () => segmentMask(b, windowSegment)),
    unitOrder,
  }));
  let x = b.scope('model/visual/patch_embed', () => patchEmbed(b, w, v, pixels));
  for (let i = 0; i < v.numLayers; i++) {
    const out = b.scope(`model/visual/blocks.${i}`, () => block(b, w, v, x, i, rows, options));
    x = out.hidden;
    if (out.received) b.output(out.received, `received_attention.${i}`, 'float32', ['patches']);
    if (out.keys) b.output(out.keys, 'key_metric', 'float32', ['units', v.hiddenSize / v.numHeads]);
    options.onLayer?.(i + 1, v.numLayers);
  }
  const embeds = b.scope('model/visual/merger', () => merger(b, w, v, x, options));
  b.output(b.op('Gather', [embeds, unitOrder], { axis: 0 }, undefined, 'image_order'), 'image_embeds', 'float32', ['units', v.outHiddenSize]);
}

function checkSpec(v: QwenVisionSpec): void {
  const bad = (what: string) => new ConfigError('CONFIG_INVALID', `Qwen vision tower: ${what}`, { subject: 'vision_config' });
  if (v.hiddenSize % v.numHeads !== 0 || (v.hiddenSize / v.numHeads) % 4 !== 0) {
    throw bad(`head_dim ${v.hiddenSize}/${v.numHeads} must be a multiple of 4 (the 2-D rotary splits it in h and w halves)`);
  }
  if (!v.fullAttentionBlocks.includes(v.salienceBlock)) throw bad(`salience block ${v.salienceBlock} is not a full-attention block`);
  if (v.fullAttentionBlocks.length < v.numLayers && v.windowSize === null) throw bad('blocks without full attention need window_size');
}

/** Conv3d with kernel = stride = (tp, p, p) on one patch row is a dot product with the flattened kernel. */
function patchEmbed(b: OnnxGraphBuilder, w: WeightReader, v: QwenVisionSpec, pixels: string): string {
  const name = `${PREFIX}.patch_embed.proj.weight`;
  const rowLen = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const weight = w.read(name, [v.hiddenSize, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize]);
  const kernel = b.initializer(name, { type: 'float32', data: weight }, [v.hiddenSize, rowLen]);
  return b.op('Gemm', [pixels, kernel], { transB: 1 }, undefined, 'proj');
}

/**
 * `rot_pos_emb` then `emb = cat(freqs, freqs)`: freqs = [row · inv_freq, col · inv_freq] in float32 with
 * inv_freq = 1 / 10000^(2i / (head_dim / 2)); cos and sin [patches, 1, head_dim] broadcast over heads.
 */
function rotaryCosSin(b: OnnxGraphBuilder, v: QwenVisionSpec, rotaryPos: string): { cos: string; sin: string } {
  const dim = v.hiddenSize / v.numHeads / 2;
  const invFreq = Array.from({ length: dim / 2 }, (_, i) => Math.fround(1 / Math.fround(Math.pow(ROTARY_THETA, Math.fround((2 * i) / dim)))));
  const pos = b.op('Unsqueeze', [b.op('Cast', [rotaryPos], { to: 1 }), b.constInt64([2])]); // [N, 2, 1]
  const freqs = b.op('Reshape', [b.op('Mul', [pos, b.constFloat(invFreq, [1, 1, dim / 2], 'inv_freq')]), b.constInt64([-1, dim])]);
  const emb = b.op('Unsqueeze', [b.op('Concat', [freqs, freqs], { axis: -1 }), b.constInt64([1])]); // [N, 1, head_dim]
  return { cos: b.op('Cos', [emb]), sin: b.op('Sin', [emb]) };
}

/** Block-diagonal attention from segment ids: equal ids attend to each other. */
function segmentMask(b: OnnxGraphBuilder, segment: string): Masks {
  const same = b.op('Equal', [b.op('Unsqueeze', [segment, b.constInt64([1])]), b.op('Unsqueeze', [segment, b.constInt64([0])])]);
  const bias = b.op('Where', [same, b.constFloat([0], [], 'attend'), b.constFloat([-Infinity], [], 'masked')], undefined, undefined, 'bias');
  const rows = b.op('ReduceSum', [b.op('Cast', [same], { to: 1 }), b.constInt64([1])], { keepdims: 0 }, undefined, 'rows');
  return { bias, rows };
}

function block(
  b: OnnxGraphBuilder,
  w: WeightReader,
  v: QwenVisionSpec,
  x: string,
  i: number,
  rows: Rows,
  options: LinearOptions,
): { hidden: string; received?: string; keys?: string } {
  const module = `${PREFIX}.blocks.${i}`;
  const full = v.fullAttentionBlocks.includes(i);
  const mask = full ? rows.full : rows.window!;
  const attn = b.scope('attn', () => attention(b, w, v, norm(b, w, v, x, `${module}.norm1`), `${module}.attn`, mask, rows, options));
  const x1 = b.op('Add', [x, attn.out], undefined, undefined, 'residual');
  const mlpOut = b.scope('mlp', () => mlp(b, w, v, norm(b, w, v, x1, `${module}.norm2`), `${module}.mlp`, options));
  const unit = v.mergeSize * v.mergeSize;
  return {
    hidden: b.op('Add', [x1, mlpOut], undefined, undefined, 'residual'),
    received: full ? b.scope('attn', () => receivedAttention(b, attn.probs, mask, unit, rows.unitOrder)) : undefined,
    keys: i === v.salienceBlock ? b.scope('attn', () => keyMetric(b, attn.keys, unit, v.hiddenSize / v.numHeads, rows.unitOrder)) : undefined,
  };
}

/** Qwen2-VL: LayerNorm (weight and bias); Qwen2.5-VL: Qwen2RMSNorm. Both eps 1e-6. */
function norm(b: OnnxGraphBuilder, w: WeightReader, v: QwenVisionSpec, x: string, module: string): string {
  return v.version === '2' ? layerNorm(b, w, x, module, v.hiddenSize, v.eps) : rmsNorm(b, w, x, module, v.hiddenSize, v.eps);
}

/**
 * VisionAttention / Qwen2_5_VLVisionAttention: fused qkv → (q, k) with the vision rotary → softmax(q kᵀ ·
 * head_dim^-0.5 + mask) v → proj. Returns the probabilities [H, N, N] and the keys before rotary [N, H, D]
 * too, for the salience outputs.
 */
function attention(
  b: OnnxGraphBuilder,
  w: WeightReader,
  v: QwenVisionSpec,
  x: string,
  module: string,
  mask: Masks,
  rows: Rows,
  options: LinearOptions,
): { out: string; probs: string; keys: string } {
  const [H, hid] = [v.numHeads, v.hiddenSize];
  const D = hid / H;
  const qkv = b.scope('qkv', () => linear(b, w, x, `${module}.qkv`, { in: hid, out: 3 * hid, bias: true }, options));
  // reshape(N, 3, H, D): q, k, v are consecutive thirds of the row.
  const parts = b.node('Split', [qkv, b.constInt64([hid, hid, hid])], { outputs: 3, attrs: { axis: -1 } });
  const [q, k, val] = parts.map((p) => b.op('Reshape', [p, b.constInt64([-1, H, D])])); // [N, H, D]
  const heads = (t: string) => b.op('Transpose', [t], { perm: [1, 0, 2] }); // [H, N, D]
  const qr = heads(b.scope('q_rotary', () => rotary(b, q!, rows.cos, rows.sin, D)));
  const kr = heads(b.scope('k_rotary', () => rotary(b, k!, rows.cos, rows.sin, D)));
  const scores = attentionMatMul(b, qr, kr, { transB: true, alpha: 1 / Math.sqrt(D), label: 'scores', portable: options.portable });
  const probs = b.op('Softmax', [b.op('Add', [scores, mask.bias], undefined, undefined, 'mask')], { axis: -1 });
  const ctx = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, heads(val!)])], { perm: [1, 0, 2] }), b.constInt64([-1, hid])]);
  const out = b.scope('proj', () => linear(b, w, ctx, `${module}.proj`, { in: hid, out: hid, bias: true }, options));
  return { out, probs, keys: k! };
}

/**
 * The attention each patch receives: mean over heads, then Σ over query rows / rows in the patch's segment
 * (rows outside it give exactly 0, so this is the segment's mean), put in processor order.
 */
function receivedAttention(b: OnnxGraphBuilder, probs: string, mask: Masks, unit: number, unitOrder: string): string {
  const headMean = b.op('ReduceMean', [probs, b.constInt64([0])], { keepdims: 0 }, undefined, 'attention_head_mean');
  const windowOrder = b.op('Div', [b.op('ReduceSum', [headMean, b.constInt64([0])], { keepdims: 0 }), mask.rows], undefined, undefined, 'received');
  const units = b.op('Gather', [b.op('Reshape', [windowOrder, b.constInt64([-1, unit])]), unitOrder], { axis: 0 });
  return b.op('Reshape', [units, b.constInt64([-1])], undefined, undefined, 'received_attention');
}

/** Keys [N, H, D] → mean over heads → mean over each unit's m² patches → [units, D] in image order. */
function keyMetric(b: OnnxGraphBuilder, keys: string, unit: number, D: number, unitOrder: string): string {
  const perPatch = b.op('ReduceMean', [keys, b.constInt64([1])], { keepdims: 0 });
  const perUnit = b.op('ReduceMean', [b.op('Reshape', [perPatch, b.constInt64([-1, unit, D])]), b.constInt64([1])], { keepdims: 0 });
  return b.op('Gather', [perUnit, unitOrder], { axis: 0 }, undefined, 'key_metric');
}

/** apply_rotary_pos_emb_vision: x·cos + rotate_half(x)·sin, x [N, H, D]. */
function rotary(b: OnnxGraphBuilder, x: string, cos: string, sin: string, D: number): string {
  const [x1, x2] = b.node('Split', [x, b.constInt64([D / 2, D / 2])], { outputs: 2, attrs: { axis: -1 } });
  const rotated = b.op('Concat', [b.op('Neg', [x2!]), x1!], { axis: -1 });
  return b.op('Add', [b.op('Mul', [x, cos]), b.op('Mul', [rotated, sin])]);
}

/** Qwen2-VL VisionMlp: fc2(act(fc1(x))). Qwen2.5-VL Qwen2_5_VLMLP(bias=True): down(act(gate(x)) · up(x)). */
function mlp(b: OnnxGraphBuilder, w: WeightReader, v: QwenVisionSpec, x: string, module: string, options: LinearOptions): string {
  const into = { in: v.hiddenSize, out: v.intermediateSize, bias: true };
  const back = { in: v.intermediateSize, out: v.hiddenSize, bias: true };
  if (v.version === '2') {
    const up = b.scope('fc1', () => linear(b, w, x, `${module}.fc1`, into, options));
    return b.scope('fc2', () => linear(b, w, activation(b, up, v.act), `${module}.fc2`, back, options));
  }
  const gate = b.scope('gate_proj', () => activation(b, linear(b, w, x, `${module}.gate_proj`, into, options), v.act));
  const up = b.scope('up_proj', () => linear(b, w, x, `${module}.up_proj`, into, options));
  return b.scope('down_proj', () => linear(b, w, b.op('Mul', [gate, up]), `${module}.down_proj`, back, options));
}

/** PatchMerger: ln_q → view as [units, hidden · m²] → mlp.0 → GELU (exact, nn.GELU()) → mlp.2. Window order. */
function merger(b: OnnxGraphBuilder, w: WeightReader, v: QwenVisionSpec, x: string, options: LinearOptions): string {
  const module = `${PREFIX}.merger`;
  const wide = v.hiddenSize * v.mergeSize * v.mergeSize;
  const normed = v.version === '2' ? layerNorm(b, w, x, `${module}.ln_q`, v.hiddenSize, v.eps) : rmsNorm(b, w, x, `${module}.ln_q`, v.hiddenSize, v.eps);
  const units = b.op('Reshape', [normed, b.constInt64([-1, wide])]);
  const h = b.scope('mlp.0', () => linear(b, w, units, `${module}.mlp.0`, { in: wide, out: wide, bias: true }, options));
  return b.scope('mlp.2', () => linear(b, w, activation(b, h, 'gelu'), `${module}.mlp.2`, { in: wide, out: v.outHiddenSize, bias: true }, options));
}
