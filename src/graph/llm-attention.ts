/**
 * LLM self-attention over a KV view (LLaMA / Qwen2, transformers/models/llama/modeling_llama.py), built so
 * that the runtime never copies its cache:
 *
 * - The past arrives position-major, [P, kvHeads, headDim], a zero-copy prefix (or compact view) of the
 *   runtime's KV store. `FusedMatMul` with `transBatchB` reads it in that layout, so there is no Concat of
 *   past and new keys and no Transpose of the cache.
 * - The graph outputs only this call's new keys (after rotary) and values, [T, kvHeads, headDim]; the
 *   runtime writes those rows into its store.
 * - Rotary is applied to the new rows only, from explicit position ids, so the view's positions need not be
 *   contiguous (retrieval decodes over a subset; pruning keeps original positions).
 * - `past_bias` [P] is added to the scores of the past columns: 0 to attend, a large negative to mask. It
 *   lets a step attend to any subset of a full cache (a masked dense twin) and stands in a one-row dummy
 *   past when there is none (ORT's MatMul faults on an empty operand). `new_bias` [T] does the same for the
 *   block's own columns, per layer: how in-LLM token dropping (FastV, PyramidDrop) hides a token from the
 *   layers past its drop layer within one prefill call.
 *
 * GQA follows transformers' repeat_kv: query head h reads KV head floor(h / groups).
 */
import type { TextSpec } from '../checkpoint/spec.js';
import type { WeightReader } from '../weights/weight-reader.js';
import { attentionMatMul, linear, linears, type LinearOptions } from './layers.js';
import type { OnnxGraphBuilder } from './onnx-builder.js';

export interface AttentionInputs {
  /** Normalised hidden states [1, T, hidden]. */
  x: string;
  /**
   * cos and sin for the new positions: [T, 1, headDim] (cat(freqs, freqs)); on the CPU graph (not `portable`, not
   * half) [T, headDim / 2], one row a new token, the tables `RotaryEmbedding` reads.
   */
  cos: string;
  sin: string;
  /** Additive causal mask over the new block, [T, T]. */
  causalMask: string;
  pastKey: string;
  pastValue: string;
  pastBias: string;
  /** Additive score bias per new column [T], for this layer. */
  newBias: string;
  /** Weights over query rows [1, 1, T] for the attention-mass output, when requested. */
  massWeights?: string;
}

export interface AttentionOutputs {
  out: string;
  /** The heads' merged context [1, T, H·D]: o_proj's input. */
  context: string;
  newKey: string;
  newValue: string;
  /** Attention mass per query head to every column (past then new): [H, P + T]. */
  mass?: string;
}

export function llmAttention(b: OnnxGraphBuilder, w: WeightReader, t: TextSpec, module: string, io: AttentionInputs, options: LinearOptions): AttentionOutputs {
  const { numHeads: H, numKvHeads: KV, headDim: D } = t;
  const groups = H / KV;
  // q/k/v_proj read the same input: one linear group (layers.ts `linears`), q and k side by side.
  const [qk, v] = b.scope('qkv_proj', () =>
    linears(
      b,
      w,
      io.x,
      [
        { module: `${module}.q_proj`, out: H * D },
        { module: `${module}.k_proj`, out: KV * D },
        { module: `${module}.v_proj`, out: KV * D },
      ],
      { in: t.hiddenSize, bias: t.attentionBias },
      options,
      [2, 1],
    ),
  );
  const heads = (y: string, n: number) => b.op('Reshape', [y, b.constInt64([-1, n, D])]); // [T, heads, D]
  // Rotary on the query and key heads together, [T, H + KV, D], then split: the same elementwise ops, half the nodes.
  const rotated = b.scope('qk_rotary', () =>
    rotaryLayout(options) === 'half-angle' ? heads(fusedRotary(b, qk!, io.cos, io.sin, H + KV), H + KV) : rotary(b, heads(qk!, H + KV), io.cos, io.sin, D),
  );
  const [q, newKey] = b.node('Split', [rotated, b.constInt64([H, KV])], { outputs: 2, attrs: { axis: 1 } }) as [string, string];
  const newValue = heads(v!, KV);

  // [T, H, D] → [KV, groups·T, D]: each KV head's query group as one batch.
  const qGrouped = b.op('Reshape', [
    b.op('Transpose', [b.op('Reshape', [q, b.constInt64([-1, KV, groups, D])])], { perm: [1, 2, 0, 3] }),
    b.constInt64([KV, -1, D]),
  ]);
  const scores = { transB: true, transBatchB: true, alpha: 1 / Math.sqrt(D), portable: options.portable, half: options.half };
  const scoresPast = b.op(
    'Add',
    [attentionMatMul(b, qGrouped, io.pastKey, { ...scores, label: 'scores_past' }), io.pastBias],
    undefined,
    undefined,
    'past_bias',
  );
  const scoresNew = attentionMatMul(b, qGrouped, newKey, { ...scores, label: 'scores_new' });
  // The causal mask is [T, T]; view the scores [KV, groups·T, T] as [KV·groups, T, T] to broadcast it (Reshape's 0
  // keeps the last axis, T: a constant shape, no shape arithmetic per layer).
  const causal = b.op('Reshape', [
    b.op('Add', [b.op('Reshape', [scoresNew, b.constInt64([KV * groups, -1, 0])]), b.op('Add', [io.causalMask, io.newBias], undefined, undefined, 'new_bias')]),
    b.constInt64([KV, -1, 0]),
  ]);
  const soft = b.scope('softmax', () => splitSoftmax(b, scoresPast, causal));
  // softmax · V = (exp · V) / Σexp: the division happens on the [KV, groups·T, D] context, not on the scores.
  const ctx = b.op('Mul', [
    b.op('Add', [
      attentionMatMul(b, soft.expPast, io.pastValue, { transBatchB: true, label: 'context_past', portable: options.portable }),
      attentionMatMul(b, soft.expNew, newValue, { transBatchB: true, label: 'context_new', portable: options.portable }),
    ]),
    soft.inverseSum,
  ]);
  // [KV, groups·T, D] → [1, T, H·D]
  const merged = b.op('Reshape', [
    b.op('Transpose', [b.op('Reshape', [ctx, b.constInt64([KV, groups, -1, D])])], { perm: [2, 0, 1, 3] }),
    b.constInt64([1, -1, H * D]),
  ]);
  const out = b.scope('o_proj', () => linear(b, w, merged, `${module}.o_proj`, { in: H * D, out: t.hiddenSize, bias: t.outputBias }, options));
  let mass: string | undefined;
  if (io.massWeights) {
    // Σ_t w_t · softmax[h, t, c] = Σ_t (w_t / Σexp[h, t]) · exp[h, t, c]: the row weights take the softmax's
    // denominator, [H, 1, T], and one MatMul per block reduces the rows — no probability tensor is formed.
    const rowWeights = b.op('Mul', [io.massWeights, b.op('Reshape', [soft.inverseSum, b.constInt64([H, 1, -1])])]);
    const perHead = (x: string) => b.op('Reshape', [x, b.constInt64([H, -1, 0])]); // [KV, groups·T, C] → [H, T, C]
    const weighted = b.op('Concat', [b.op('MatMul', [rowWeights, perHead(soft.expPast)]), b.op('MatMul', [rowWeights, perHead(soft.expNew)])], { axis: -1 });
    mass = b.op('Reshape', [weighted, b.constInt64([H, -1])], undefined, undefined, 'attention_mass');
  }
  return { out, context: merged, newKey, newValue, mass };
}

/**
 * Softmax over the columns of two score blocks (the past, the new block) without concatenating them:
 * exp(x − rowMax) per block and the reciprocal of the row sums. Prefill scores are [heads, chunk, past] —
 * 470 MB per layer at a 512-token chunk over 16k tokens of a 14-head model — so a Concat, a Softmax output and
 * a Split back would each be another copy of them; here the score-sized tensors are the raw and masked
 * scores, their shifted copy and its exp, each dead once the next is made. The max over both blocks keeps
 * exp ≤ 1 exactly as Softmax does.
 */
function splitSoftmax(b: OnnxGraphBuilder, past: string, block: string): { expPast: string; expNew: string; inverseSum: string } {
  const lastAxis = b.constInt64([-1]);
  const rowMax = b.op('Max', [b.op('ReduceMax', [past, lastAxis], { keepdims: 1 }), b.op('ReduceMax', [block, lastAxis], { keepdims: 1 })]);
  const expPast = b.op('Exp', [b.op('Sub', [past, rowMax])]);
  const expNew = b.op('Exp', [b.op('Sub', [block, rowMax])]);
  const sum = b.op('Add', [b.op('ReduceSum', [expPast, lastAxis], { keepdims: 1 }), b.op('ReduceSum', [expNew, lastAxis], { keepdims: 1 })]);
  return { expPast, expNew, inverseSum: b.op('Reciprocal', [sum]) };
}

/**
 * Which cos/sin tables the attention takes: `half-angle` ([T, D/2], for `RotaryEmbedding`) on the CPU graph,
 * `full` ([T, 1, D]) where the graph keeps standard ops (GPU providers) or computes in half.
 */
export function rotaryLayout(options: LinearOptions): 'half-angle' | 'full' {
  return options.portable || options.half ? 'full' : 'half-angle';
}

/**
 * Rotate-half rotary as one `RotaryEmbedding` node (com.microsoft, CPU), x: [1, T, heads·D]. Its cos/sin cache is
 * indexed by position id; here the cache holds this call's own rows ([T, D/2], computed from the explicit
 * position ids) and the position id is the offset 0, so row t rotates by row t — any positions, M-RoPE included,
 * without a table of every position. Same products as `rotary` (x1·cos − x2·sin, x2·cos + x1·sin); 7 nodes a
 * layer fewer.
 */
function fusedRotary(b: OnnxGraphBuilder, x: string, cos: string, sin: string, heads: number): string {
  return b.op('RotaryEmbedding', [x, b.constInt64([0]), cos, sin], { num_heads: heads, interleaved: 0 }, 'com.microsoft');
}

/** Rotate-half rotary (transformers apply_rotary_pos_emb): x·cos + rotate_half(x)·sin, x: [T, heads, D]. */
function rotary(b: OnnxGraphBuilder, x: string, cos: string, sin: string, D: number): string {
  const [x1, x2] = b.node('Split', [x, b.constInt64([D / 2, D / 2])], { outputs: 2, attrs: { axis: -1 } });
  const rotated = b.op('Concat', [b.op('Neg', [x2!]), x1!], { axis: -1 });
  return b.op('Add', [b.op('Mul', [x, cos]), b.op('Mul', [rotated, sin])]);
}
