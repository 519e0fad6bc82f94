/**
 * The vision tower (CLIP or SigLIP) up to the feature layer, as ONNX. Follows
 * transformers/models/clip/modeling_clip.py and siglip/modeling_siglip.py: patch conv → (+CLS) → position
 * embedding → (CLIP: pre_layrnorm) → encoder layers. `hidden_states[0]` is the encoder input, `[i]` the
 * output of layer i; only the layers up to the deepest feature layer are built.
 *
 * Besides the features, the graph outputs the feature layer's self-attention averaged over heads, reduced
 * two ways (the salience the sparsity policies score visual tokens by, docs/design.md, "The SparseVILA path"):
 *   cls_attention   [images, tokens]  the CLS row (CLIP): attention from CLS to every token
 *   mean_attention  [images, tokens]  attention each token receives, averaged over all query rows
 *   key_metric      [images, tokens, headDim]  the layer's keys averaged over heads (VisionZip's merge metric)
 *   leading_rows    [images, R, tokens]  the first R = min(8, tokens) rows: attention FROM the leading
 *                   (summary) tokens, for RADIO-style salience from a chosen set of summary tokens
 * The full [tokens × tokens] matrix never leaves the graph.
 */
import type { LlavaSpec } from '../../checkpoint/spec.js';
import type { WeightReader } from '../../weights/weight-reader.js';
import { activation, attentionMatMul, layerNorm, linear, param, type LinearOptions } from '../../graph/layers.js';
import type { OnnxGraphBuilder } from '../../graph/onnx-builder.js';

const PREFIX = 'model.vision_tower.vision_model';

export function buildVisionGraph(
  b: OnnxGraphBuilder,
  w: WeightReader,
  spec: LlavaSpec,
  options: LinearOptions & { onLayer?: (done: number, total: number) => void },
): void {
  const v = spec.vision;
  const pixels = b.input('pixel_values', 'float32', ['images', v.numChannels, v.imageSize, v.imageSize]);
  const deepest = Math.max(...spec.featureLayers);
  const hidden: string[] = [];
  let x = b.scope('model/vision_tower/embeddings', () => embeddings(b, w, spec, pixels));
  if (v.kind === 'clip') {
    x = b.scope('model/vision_tower', () => layerNorm(b, w, x, `${PREFIX}.pre_layrnorm`, v.hiddenSize, v.layerNormEps));
  }
  hidden.push(x);
  let attention: { cls: string; mean: string; keys: string; leading: string } | undefined;
  for (let i = 0; i < deepest; i++) {
    const out = b.scope(`model/vision_tower/encoder/layers.${i}`, () =>
      encoderLayer(b, w, spec, x, `${PREFIX}.encoder.layers.${i}`, options, i === deepest - 1),
    );
    x = out.hidden;
    attention = out.attention ?? attention;
    hidden.push(x);
    options.onLayer?.(i + 1, deepest);
  }
  const selected = spec.featureLayers.map((i) => hidden[i]!);
  let features = selected.length === 1 ? selected[0]! : b.op('Concat', selected, { axis: -1 });
  if (spec.selectStrategy === 'default') {
    // `default` drops token 0 whatever the tower (transformers LlavaModel.get_image_features: features[:, 1:];
    // for CLIP that token is CLS).
    features = b.op('Slice', [features, b.constInt64([1]), b.constInt64([1 << 30]), b.constInt64([1])]);
  }
  b.output(features, 'image_features', 'float32', ['images', spec.imageTokenCount, spec.projector.inputSize]);
  if (attention) {
    b.output(attention.cls, 'cls_attention', 'float32', ['images', v.numPositions]);
    b.output(attention.mean, 'mean_attention', 'float32', ['images', v.numPositions]);
    b.output(attention.keys, 'key_metric', 'float32', ['images', v.numPositions, v.hiddenSize / v.numHeads]);
    b.output(attention.leading, 'leading_rows', 'float32', ['images', leadingRows(spec), v.numPositions]);
  }
}

function embeddings(b: OnnxGraphBuilder, w: WeightReader, spec: LlavaSpec, pixels: string): string {
  const v = spec.vision;
  const name = `${PREFIX}.embeddings`;
  const convInputs = [pixels, param(b, w, `${name}.patch_embedding.weight`, [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize])];
  // CLIP's patch conv has no bias; SigLIP's has one.
  if (w.has(`${name}.patch_embedding.bias`)) convInputs.push(param(b, w, `${name}.patch_embedding.bias`, [v.hiddenSize]));
  const patches = b.op('Conv', convInputs, { kernel_shape: [v.patchSize, v.patchSize], strides: [v.patchSize, v.patchSize] }, undefined, 'patch_embedding');
  // [images, C, g, g] → [images, g², C]
  const flat = b.op('Reshape', [patches, b.constInt64([0, v.hiddenSize, -1])]);
  let tokens = b.op('Transpose', [flat], { perm: [0, 2, 1] });
  if (v.kind === 'clip') {
    const cls = b.op('Reshape', [param(b, w, `${name}.class_embedding`, [v.hiddenSize]), b.constInt64([1, 1, v.hiddenSize])]);
    const images = b.op('Slice', [b.op('Shape', [pixels]), b.constInt64([0]), b.constInt64([1])]);
    const clsShape = b.op('Concat', [images, b.constInt64([1, v.hiddenSize])], { axis: 0 });
    tokens = b.op('Concat', [b.op('Expand', [cls, clsShape]), tokens], { axis: 1 });
  }
  const positions = param(b, w, `${name}.position_embedding.weight`, [v.numPositions, v.hiddenSize]);
  return b.op('Add', [tokens, positions], undefined, undefined, 'position_embedding');
}

function encoderLayer(
  b: OnnxGraphBuilder,
  w: WeightReader,
  spec: LlavaSpec,
  x: string,
  module: string,
  options: LinearOptions,
  withAttention: boolean,
): { hidden: string; attention?: { cls: string; mean: string; keys: string; leading: string } } {
  const v = spec.vision;
  const h = layerNorm(b, w, x, `${module}.layer_norm1`, v.hiddenSize, v.layerNormEps);
  // Only the salience layer's probabilities leave the graph; the CPU graph runs every other layer's attention
  // as one fused kernel.
  if (!withAttention && !options.portable && !options.half) {
    const out = b.scope('self_attn', () => fusedSelfAttention(b, w, spec, h, `${module}.self_attn`, options));
    return { hidden: mlpBlock(b, w, spec, b.op('Add', [x, out], undefined, undefined, 'residual'), module, options) };
  }
  const attn = b.scope('self_attn', () => selfAttention(b, w, spec, h, `${module}.self_attn`, options));
  const x1 = b.op('Add', [x, attn.out], undefined, undefined, 'residual');
  const hidden = mlpBlock(b, w, spec, x1, module, options);
  if (!withAttention) return { hidden };
  // Mean over heads, then the CLS row and the mean over query rows.
  const perToken = b.op('ReduceMean', [attn.probs, b.constInt64([1])], { keepdims: 0 }, undefined, 'attention_head_mean');
  const cls = b.op('Gather', [perToken, b.constInt64([0])], { axis: 1 });
  const clsRow = b.op('Reshape', [cls, b.constInt64([0, -1])], undefined, undefined, 'cls_attention');
  const mean = b.op('ReduceMean', [perToken, b.constInt64([1])], { keepdims: 0 }, undefined, 'mean_attention');
  // [images, H, N, d] → mean over heads → [images, N, d]
  const keys = b.op('ReduceMean', [attn.keys, b.constInt64([1])], { keepdims: 0 }, undefined, 'key_metric');
  const leading = b.op('Slice', [perToken, b.constInt64([0]), b.constInt64([leadingRows(spec)]), b.constInt64([1])], undefined, undefined, 'leading_rows');
  return { hidden, attention: { cls: clsRow, mean, keys, leading } };
}

/** x + mlp(layer_norm2(x)): the second half of an encoder layer. */
function mlpBlock(b: OnnxGraphBuilder, w: WeightReader, spec: LlavaSpec, x: string, module: string, options: LinearOptions): string {
  const v = spec.vision;
  const h = layerNorm(b, w, x, `${module}.layer_norm2`, v.hiddenSize, v.layerNormEps);
  const mlp = b.scope('mlp', () => {
    const dims = { in: v.hiddenSize, out: v.intermediateSize, bias: true };
    const up = b.scope('fc1', () => linear(b, w, h, `${module}.mlp.fc1`, dims, options));
    const act = activation(b, up, v.act);
    return b.scope('fc2', () => linear(b, w, act, `${module}.mlp.fc2`, { in: v.intermediateSize, out: v.hiddenSize, bias: true }, options));
  });
  return b.op('Add', [x, mlp], undefined, undefined, 'residual');
}

/**
 * The same attention as `selfAttention`, as one `MultiHeadAttention` (com.microsoft) over [images, N, hidden]
 * q, k and v: no head transposes, and no [images, H, N, N] probability tensor between nodes (the kernel keeps its
 * scores to itself, contrib_ops/cpu/bert/multihead_attention.cc). Its default scale is head_dim^-0.5, as
 * transformers'. Not faster on the CPU (docs/benchmarks.md, "The vision tower"): the linears dominate.
 */
function fusedSelfAttention(b: OnnxGraphBuilder, w: WeightReader, spec: LlavaSpec, x: string, module: string, options: LinearOptions): string {
  const v = spec.vision;
  const dims = { in: v.hiddenSize, out: v.hiddenSize, bias: true };
  const [q, k, vv] = (['q_proj', 'k_proj', 'v_proj'] as const).map((name) => b.scope(name, () => linear(b, w, x, `${module}.${name}`, dims, options)));
  const ctx = b.op('MultiHeadAttention', [q!, k!, vv!], { num_heads: v.numHeads }, 'com.microsoft', 'attention');
  return b.scope('out_proj', () => linear(b, w, ctx, `${module}.out_proj`, dims, options));
}

/** Bidirectional multi-head attention; returns the output and the softmax probabilities [images, H, N, N]. */
function selfAttention(
  b: OnnxGraphBuilder,
  w: WeightReader,
  spec: LlavaSpec,
  x: string,
  module: string,
  options: LinearOptions,
): { out: string; probs: string; keys: string } {
  const v = spec.vision;
  const headDim = v.hiddenSize / v.numHeads;
  const dims = { in: v.hiddenSize, out: v.hiddenSize, bias: true };
  const heads = (name: string) =>
    b.scope(name, () => {
      const y = linear(b, w, x, `${module}.${name}`, dims, options);
      return b.op('Transpose', [b.op('Reshape', [y, b.constInt64([0, 0, v.numHeads, headDim])])], { perm: [0, 2, 1, 3] });
    });
  const q = heads('q_proj');
  const k = heads('k_proj');
  const vv = heads('v_proj');
  // transformers scales the scores after the matmul: (q kᵀ) · head_dim^-0.5.
  const scores = attentionMatMul(b, q, k, { transB: true, alpha: 1 / Math.sqrt(headDim), label: 'scores', portable: options.portable, rank: 4 });
  const probs = b.op('Softmax', [scores], { axis: -1 });
  const ctx = b.op('MatMul', [probs, vv]);
  const merged = b.op('Reshape', [b.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), b.constInt64([0, 0, v.hiddenSize])]);
  const out = b.scope('out_proj', () => linear(b, w, merged, `${module}.out_proj`, dims, options));
  return { out, probs, keys: k };
}

/** The multi-modal projector: linear_1 → act → linear_2 (transformers LlavaMultiModalProjector). */
export function buildProjectorGraph(b: OnnxGraphBuilder, w: WeightReader, spec: LlavaSpec, options: LinearOptions): void {
  const p = spec.projector;
  const x = b.input('image_features', 'float32', ['tokens', p.inputSize]);
  const name = 'model.multi_modal_projector';
  const y = b.scope('model/multi_modal_projector', () => {
    const h = b.scope('linear_1', () => linear(b, w, x, `${name}.linear_1`, { in: p.inputSize, out: p.outputSize, bias: p.bias }, options));
    const a = activation(b, h, p.act);
    return b.scope('linear_2', () => linear(b, w, a, `${name}.linear_2`, { in: p.outputSize, out: p.outputSize, bias: p.bias }, options));
  });
  b.output(y, 'image_embeds', 'float32', ['tokens', p.outputSize]);
}

/** How many leading tokens' attention rows the vision graph returns (summary-token salience). */
export function leadingRows(spec: LlavaSpec): number {
  return Math.min(8, spec.vision.numPositions);
}
