/**
 * Building blocks shared by every graph: linear layers in each weight precision, norms and activations.
 * Each helper is the ONNX form of one transformers module, named after it.
 */
import { CheckpointError } from '../errors.js';
import { quantizeInt4, type Int4BlockSize } from '../weights/int4.js';
import type { WeightReader } from '../weights/weight-reader.js';
import { toFloat16Bits } from './half.js';
import type { AttrValue, OnnxGraphBuilder } from './onnx-builder.js';

/**
 * How one linear layer's weight is stored in the graph. `fp16` halves the file; ORT folds the Cast at
 * session load, so compute (and resident memory) stay fp32 on CPU. `int4` runs `MatMulNBits` (weights stay
 * packed).
 */
export type LinearPrecision = 'fp32' | 'fp16' | 'int4';

/**
 * LLM weight precision as a user picks it: a linear precision, or `awq` — int4 whose weights were scaled
 * (and clipped) by activation-aware search before rounding (src/quant/, applied by src/weights/), with the inverse scales folded
 * into the preceding op, so the graph is the int4 graph with different numbers.
 */
export type WeightPrecision = LinearPrecision | 'awq';

export interface LinearOptions {
  precision: LinearPrecision;
  blockSize: Int4BlockSize;
  /**
   * Standard ONNX ops where the CPU graph uses onnxruntime's CPU contrib fusions (`FusedMatMul`): GPU providers
   * (WebGPU) have no kernel for them and would run them on the CPU, copying their operands across per call.
   */
  portable?: boolean;
  /**
   * Compute in float16 (precision `fp16` on a GPU provider): weights, biases, int4 scales and the activations
   * between them are half; the CPU path (and every other precision) computes in float32.
   */
  half?: boolean;
}

/** `nn.Linear`: y = x Wᵀ + b, with W read as [outFeatures, inFeatures] from `<module>.weight`. */
export function linear(
  b: OnnxGraphBuilder,
  w: WeightReader,
  x: string,
  module: string,
  shape: { in: number; out: number; bias: boolean },
  options: LinearOptions,
): string {
  return linearOf(b, w, x, module, shape, options, int4Weights(b, w, module, shape, options));
}

/** `linear` over `q`, the module's int4 initializers, or over its float weight where `q` is undefined. */
function linearOf(
  b: OnnxGraphBuilder,
  w: WeightReader,
  x: string,
  module: string,
  shape: { in: number; out: number; bias: boolean },
  options: LinearOptions,
  q: Int4Initializers | undefined,
): string {
  let y: string;
  if (q) {
    y = matMulNBits(b, x, [q]);
  } else {
    const transposed = transpose2d(w.read(`${module}.weight`, [shape.out, shape.in]), shape.out, shape.in);
    const init =
      options.precision === 'fp16' && !options.half
        ? b.op('Cast', [b.initializer(`${module}.weight`, { type: 'float16', data: toFloat16Bits(transposed) }, [shape.in, shape.out])], { to: 1 })
        : floatInit(b, `${module}.weight`, transposed, [shape.in, shape.out], options.half);
    y = b.op('MatMul', [x, init], undefined, undefined, 'MatMul');
  }
  if (!shape.bias) return y;
  const bias = floatInit(b, `${module}.bias`, w.read(`${module}.bias`, [shape.out]), [shape.out], options.half);
  return b.op('Add', [y, bias], undefined, undefined, 'Add');
}

/**
 * Linears that read the same input (q/k/v_proj; gate/up_proj), as one `MatMulNBits` over their weights stacked
 * along N, then a Split: under int4, one node and one int8 quantization of the input instead of one per linear.
 * A 24-layer decode step runs 97 int4 MatMuls of one row this way instead of 169; each is a hand-off to the
 * intra-op threads, so their count is per-step overhead (docs/benchmarks.md, "Engine"). Each module keeps its own
 * initializers (an AWQ
 * checkpoint's stored codes stay readable by name); the Concat of them is constant, and onnxruntime folds it at
 * session load. Other precisions (and int4 linears stored in different group sizes) stay one linear each.
 * `groups`: how many consecutive modules each output holds side by side (default one each), e.g. [2, 1] for
 * q and k together (they take rotary together) and v.
 */
export function linears(
  b: OnnxGraphBuilder,
  w: WeightReader,
  x: string,
  modules: { module: string; out: number }[],
  shape: { in: number; bias: boolean },
  options: LinearOptions,
  groups: number[] = modules.map(() => 1),
): string[] {
  const starts = groups.map((_, g) => groups.slice(0, g).reduce((a, n) => a + n, 0));
  const weights = modules.map((m) => int4Weights(b, w, m.module, { ...shape, out: m.out }, options));
  const fusable = weights.every((q) => q !== undefined && q.blockSize === weights[0]!.blockSize);
  if (!fusable) {
    const ys = modules.map((m, i) => b.scope(m.module.split('.').pop()!, () => linearOf(b, w, x, m.module, { ...shape, out: m.out }, options, weights[i])));
    return groups.map((n, g) => (n === 1 ? ys[starts[g]!]! : b.op('Concat', ys.slice(starts[g], starts[g]! + n), { axis: -1 })));
  }
  let y = matMulNBits(b, x, weights as Int4Initializers[]);
  if (shape.bias) {
    const biases = modules.map((m) => floatInit(b, `${m.module}.bias`, w.read(`${m.module}.bias`, [m.out]), [m.out], options.half));
    y = b.op('Add', [y, b.op('Concat', biases, { axis: 0 })], undefined, undefined, 'Add');
  }
  const widths = groups.map((n, g) => modules.slice(starts[g], starts[g]! + n).reduce((a, m) => a + m.out, 0));
  return b.node('Split', [y, b.constInt64(widths)], { outputs: groups.length, attrs: { axis: -1 } });
}

/**
 * `nn.Embedding`: rows of `<module>.weight` [rows, dim] by id. Under int4 on the CPU graph the table is stored as
 * the int4 linears are (the same blocks, codes and zero points; a tied LM head quantizes the same weight the same
 * way) and read by `GatherBlockQuantized` (com.microsoft), which dequantizes only the rows it gathers: the table
 * takes an eighth of its float32 bytes, which for a 151,936-token vocabulary is 545 → 85 MB resident. llama.cpp
 * stores it in its 4-bit blocks as well (scripts/gguf.mjs), and onnxruntime-genai's builder does the same for tied
 * int4 embeddings. GPU graphs (`portable`) and the other precisions gather float rows.
 */
export function embedding(
  b: OnnxGraphBuilder,
  w: WeightReader,
  ids: string,
  module: string,
  { rows, dim }: { rows: number; dim: number },
  options: LinearOptions,
): string {
  const q = options.portable || options.half ? undefined : int4Weights(b, w, module, { out: rows, in: dim }, options, 'table');
  if (!q) return b.op('Gather', [param(b, w, `${module}.weight`, [rows, dim]), ids], { axis: 0 });
  const rowsOut = b.op(
    'GatherBlockQuantized',
    [q.packed, ids, q.scales, q.zeros],
    { gather_axis: 0, quantize_axis: 1, block_size: q.blockSize, bits: 4 },
    'com.microsoft',
    'GatherBlockQuantized',
  );
  // A dim that is not a multiple of the block was zero-padded to whole blocks: the padding is not the row's.
  if (dim % q.blockSize === 0) return rowsOut;
  return b.op('Slice', [rowsOut, b.constInt64([0]), b.constInt64([dim]), b.constInt64([-1])]);
}

/** One int4 linear's initializers in the graph (MatMulNBits' B, scales and zero points) and its shape. */
interface Int4Initializers {
  packed: string;
  scales: string;
  zeros: string;
  n: number;
  k: number;
  blockSize: Int4BlockSize;
}

/** `module`'s int4 weights as initializers (as stored, or quantized here), or undefined where it is not int4. */
function int4Weights(
  b: OnnxGraphBuilder,
  w: WeightReader,
  module: string,
  shape: { in: number; out: number },
  options: LinearOptions,
  layout: 'linear' | 'table' = 'linear',
): Int4Initializers | undefined {
  const stored = options.precision === 'int4' ? w.packedInt4?.(module) : undefined;
  const int4 = options.precision === 'int4' && (stored !== undefined || w.packedInt4 === undefined);
  if (!int4) return undefined;
  const q = stored ?? quantizeInt4(w.read(`${module}.weight`, [shape.out, shape.in]), shape.out, shape.in, options.blockSize);
  if (q.n !== shape.out || q.k !== shape.in) {
    throw new CheckpointError('TENSOR_SHAPE', `${module}: the int4 weight is [${q.n}, ${q.k}] (out, in), expected [${shape.out}, ${shape.in}]`, {
      subject: module,
    });
  }
  // MatMulNBits reads flat scales and zero points; GatherBlockQuantized reads them per row, and the codes as
  // [rows, padded K / 2] (its quantized axis whole, not split into blocks).
  const table = layout === 'table';
  return {
    packed: b.initializer(
      `${module}.qweight`,
      { type: 'uint8', data: q.packed },
      table ? [q.n, (q.blocks * q.blockSize) / 2] : [q.n, q.blocks, q.blockSize / 2],
    ),
    scales: floatInit(b, `${module}.scales`, q.scales, table ? [q.n, q.blocks] : [q.n * q.blocks], options.half),
    zeros: b.initializer(`${module}.qzeros`, { type: 'uint8', data: q.zeroPoints }, table ? [q.n, Math.ceil(q.blocks / 2)] : [q.zeroPoints.length]),
    n: q.n,
    k: q.k,
    blockSize: q.blockSize,
  };
}

/**
 * x · Wᵀ for int4 weights stacked along N (one weight: a plain MatMulNBits). Zero points are packed per row
 * (MatMulNBits: [N · ceil(blocks / 2)]), so rows of different linears stack as they are.
 */
function matMulNBits(b: OnnxGraphBuilder, x: string, qs: Int4Initializers[]): string {
  const stack = (names: string[]) => (names.length === 1 ? names[0]! : b.op('Concat', names, { axis: 0 }));
  const { k, blockSize } = qs[0]!;
  const n = qs.reduce((sum, q) => sum + q.n, 0);
  return b.op(
    'MatMulNBits',
    [x, stack(qs.map((q) => q.packed)), stack(qs.map((q) => q.scales)), stack(qs.map((q) => q.zeros))],
    // accuracy_level 4 lets MLAS quantize activations to int8 blocks: the fast CPU path.
    { K: k, N: n, bits: 4, block_size: blockSize, accuracy_level: 4 },
    'com.microsoft',
    'MatMulNBits',
  );
}

/** A float initializer in float32, or float16 when the graph computes in half. */
export function floatInit(b: OnnxGraphBuilder, name: string, values: Float32Array, dims: number[], half = false): string {
  return half ? b.initializer(name, { type: 'float16', data: toFloat16Bits(values) }, dims) : b.initializer(name, { type: 'float32', data: values }, dims);
}

function transpose2d(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
  return out;
}

/**
 * `alpha · a · op(b)` for attention: one `FusedMatMul` (com.microsoft) on the CPU; on GPU providers
 * (`portable`) the same as Transpose → MatMul → Mul. `transBatchB` reads b [P, batch, D] as [batch, P, D]
 * (FusedMatMul's transBatchB: the KV cache's position-major layout, without a copy on the CPU); `transB`
 * then transposes its last two axes. `rank`: y's rank (default 3).
 */
export function attentionMatMul(
  b: OnnxGraphBuilder,
  x: string,
  y: string,
  o: { transB?: boolean; transBatchB?: boolean; alpha?: number; label: string; portable?: boolean; rank?: number; half?: boolean },
): string {
  if (!o.portable) {
    const attrs: Record<string, AttrValue> = {};
    if (o.transB) attrs.transB = 1;
    if (o.transBatchB) attrs.transBatchB = 1;
    if (o.alpha !== undefined) attrs.alpha = { float: o.alpha };
    return b.op('FusedMatMul', [x, y], attrs, 'com.microsoft', o.label);
  }
  // Where y's axes end up: transBatchB (rank 3) swaps the first two, transB then swaps the last two.
  const rank = o.rank ?? 3;
  const perm = Array.from({ length: rank }, (_, i) => i);
  if (o.transBatchB) [perm[0], perm[1]] = [perm[1]!, perm[0]!];
  if (o.transB) [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  const yt = perm.every((p, i) => p === i) ? y : b.op('Transpose', [y], { perm });
  const product = b.op('MatMul', [x, yt], undefined, undefined, o.label);
  return o.alpha === undefined ? product : b.op('Mul', [product, floatInit(b, `${o.label}.alpha`, Float32Array.of(o.alpha), [1], o.half)]);
}

/** A float32 parameter read from the checkpoint (norm weights, embeddings). */
export function param(b: OnnxGraphBuilder, w: WeightReader, name: string, shape: number[]): string {
  return b.initializer(name, { type: 'float32', data: w.read(name, shape) }, shape);
}

/** `nn.LayerNorm` over the last axis (CLIP, SigLIP). */
export function layerNorm(b: OnnxGraphBuilder, w: WeightReader, x: string, module: string, size: number, eps: number): string {
  return b.scope(module.split('.').pop()!, () =>
    b.op('LayerNormalization', [x, param(b, w, `${module}.weight`, [size]), param(b, w, `${module}.bias`, [size])], { axis: -1, epsilon: { float: eps } }),
  );
}

/**
 * `LlamaRMSNorm` / `Qwen2RMSNorm`: x · rsqrt(mean(x²) + eps) · weight, in float32
 * (transformers/models/llama/modeling_llama.py). ORT's SimplifiedLayerNormalization is exactly this.
 */
export function rmsNorm(b: OnnxGraphBuilder, w: WeightReader, x: string, module: string, size: number, eps: number, half = false): string {
  return b.op(
    'SimplifiedLayerNormalization',
    [x, floatInit(b, `${module}.weight`, w.read(`${module}.weight`, [size]), [size], half)],
    {
      axis: -1,
      epsilon: { float: eps },
    },
    undefined,
    module.split('.').pop(),
  );
}

/**
 * `residual + delta`, then `rmsNorm` of the sum: the decoder's residual connection and the next norm. On the CPU
 * graph one `SkipSimplifiedLayerNormalization` (com.microsoft; its fourth output is the sum), which onnxruntime's
 * optimizer does not fuse from Add + SimplifiedLayerNormalization here (checked on the saved optimized graph); on
 * GPU providers (`portable`) and in half the two standard ops.
 */
export function addRmsNorm(
  b: OnnxGraphBuilder,
  w: WeightReader,
  residual: string,
  delta: string,
  module: string,
  size: number,
  eps: number,
  options: { portable?: boolean; half?: boolean },
): { sum: string; normed: string } {
  if (options.portable || options.half) {
    const sum = b.op('Add', [residual, delta], undefined, undefined, 'residual');
    return { sum, normed: rmsNorm(b, w, sum, module, size, eps, options.half) };
  }
  const [normed, , , sum] = b.node('SkipSimplifiedLayerNormalization', [residual, delta, param(b, w, `${module}.weight`, [size])], {
    outputs: 4,
    attrs: { epsilon: { float: eps } },
    domain: 'com.microsoft',
    label: `residual_${module.split('.').pop()}`,
  });
  return { sum: sum!, normed: normed! };
}

export type Activation = 'quick_gelu' | 'gelu' | 'gelu_pytorch_tanh' | 'gelu_new' | 'relu' | 'silu';

/** transformers/activations.py ACT2FN, as ONNX. */
export function activation(b: OnnxGraphBuilder, x: string, act: Activation): string {
  switch (act) {
    case 'gelu':
      return b.op('Gelu', [x], { approximate: 'none' });
    case 'gelu_pytorch_tanh':
    case 'gelu_new':
      return b.op('Gelu', [x], { approximate: 'tanh' });
    case 'quick_gelu':
      // x · sigmoid(1.702 x)
      return b.op('QuickGelu', [x], { alpha: { float: 1.702 } }, 'com.microsoft');
    case 'relu':
      return b.op('Relu', [x]);
    case 'silu':
      return b.op('Mul', [x, b.op('Sigmoid', [x])], undefined, undefined, 'SiLU');
  }
}
