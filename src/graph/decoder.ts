/**
 * The LLM (LLaMA / Qwen2 decoder) as one ONNX graph that serves both chunked prefill (T new tokens) and
 * decode (T = 1). Inputs:
 *   inputs_embeds [1, T, hidden]   text embeddings with the projected image tokens spliced in
 *   position_ids  [T] int64        rotary positions of the new tokens (need not be contiguous); [3, T] for
 *                                  M-RoPE (Qwen2-VL: temporal, height and width rows)
 *   past_key.i / past_value.i [P_i, kvHeads, headDim]   layer i's KV view (P_i may differ per layer)
 *   past_bias.i   [P_i]            additive score bias per past column (0 attend, −1e9 mask)
 *   new_bias.i    [T]              additive score bias per new column (FastV / PyramidDrop in-prefill drops)
 *   mass_weights  [1, 1, T]        (attention-mass variant) weights over query rows
 * Outputs:
 *   logits        [1, 1 | T, vocab]    last position, or every position (`logits: 'all'`)
 *   new_key.i / new_value.i [T, kvHeads, headDim]   rows for the runtime's KV store (keys after rotary)
 *   attn_mass.i   [heads, P_i + T]     (attention-mass variant) per-head attention from the weighted rows
 *   calibration.<tap>.i [1, T, width]  (calibration variant) the input of each group of linears that share
 *                                      one: `qkv` (input_layernorm output), `o` (o_proj input), `gate_up`
 *                                      (post_attention_layernorm output), `down` (down_proj input). AWQ's
 *                                      activation statistics come from these (src/quant/calibrate.ts).
 */
import { TEXT_PREFIX } from '../checkpoint/checkpoint.js';
import type { ModelSpecBase, TextSpec } from '../checkpoint/spec.js';
import type { CalibrationTap } from '../weights/awq-groups.js';
import type { WeightReader } from '../weights/weight-reader.js';
import { activation, addRmsNorm, embedding, linear, linears, param, rmsNorm, type LinearOptions } from './layers.js';
import { llmAttention, rotaryLayout } from './llm-attention.js';
import type { OnnxGraphBuilder } from './onnx-builder.js';
import { ropeInvFreq } from './rope.js';

/** The calibration variant's output holding `tap`'s input rows at `layer`. */
export function calibrationOutput(tap: CalibrationTap, layer: number): string {
  return `calibration.${tap}.${layer}`;
}

/** Element type of the KV rows the decoder graphs take and return, and the runtime's KV store holds. */
export type KvType = 'float32' | 'float16';

export interface DecoderGraphOptions extends LinearOptions {
  logits: 'last' | 'all';
  attentionMass: boolean;
  /** Also output the inputs of every linear group (CALIBRATION_TAPS), for activation-aware quantization. */
  calibration?: boolean;
  /**
   * Also output each layer's past with this call's rows after it (`present_key.i`, `present_value.i`,
   * `present_bias.i`): a GPU provider's decode keeps them on the device and feeds them back as the next step's past.
   */
  present?: boolean;
  /**
   * The KV rows' element type (graph/build.ts kvTypeOf): float16 in a half graph, or stored half by a float32 graph,
   * which casts them to float32 for its attention and its new rows back. Default: the graph's compute type.
   */
  kvType?: KvType;
  /** Called after each layer is emitted (weights read, converted or quantized, and written). */
  onLayer?: (done: number, total: number) => void;
}

export function buildDecoderGraph(b: OnnxGraphBuilder, w: WeightReader, spec: ModelSpecBase, options: DecoderGraphOptions): void {
  const t = spec.text;
  // Half graphs (LinearOptions.half) take float32 embeddings and biases from the host and compute in float16; their
  // KV rows (past, new, present) are float16 too. Logits and attention mass come back in float32.
  const half = options.half === true;
  const kvType = options.kvType ?? (half ? 'float16' : 'float32');
  // A float32 graph over a half store: the past is cast up where the attention reads it, the new rows down where
  // they leave. A Cast reads the half rows once; what it writes is a per-layer buffer onnxruntime's arena reuses.
  const storedHalf = !half && kvType === 'float16';
  const fromStore = (v: string) => (storedHalf ? b.op('Cast', [v], { to: 1 }) : v);
  const toStore = (v: string) => (storedHalf ? b.op('Cast', [v], { to: 10 }) : v);
  const compute = (v: string) => (half ? b.op('Cast', [v], { to: 10 }) : v);
  const float = (v: string) => (half ? b.op('Cast', [v], { to: 1 }) : v);
  const embeds = b.input('inputs_embeds', 'float32', [1, 'tokens', t.hiddenSize]);
  let x = compute(embeds);
  const positions = b.input('position_ids', 'int64', t.mropeSection ? [3, 'tokens'] : ['tokens']);
  const massInput = options.attentionMass ? b.input('mass_weights', 'float32', [1, 1, 'tokens']) : undefined;
  const massWeights = massInput && compute(massInput);
  const tables = b.scope('model/rotary_emb', () => rotaryTables(b, t, positions, embeds, rotaryLayout(options)));
  const [cos, sin, causalMask] = [compute(tables.cos), compute(tables.sin), compute(tables.causalMask)];

  // The residual stream is `x` plus `pending`, the last sublayer's output not yet added: each add happens with the
  // norm that follows it (layers.ts `addRmsNorm`).
  let pending: string | undefined;
  const norm = (module: string) => {
    if (!pending) return rmsNorm(b, w, x, module, t.hiddenSize, t.rmsNormEps, half);
    const { sum, normed } = addRmsNorm(b, w, x, pending, module, t.hiddenSize, t.rmsNormEps, options);
    x = sum;
    pending = undefined;
    return normed;
  };
  for (let i = 0; i < t.numLayers; i++) {
    const module = `${TEXT_PREFIX}.layers.${i}`;
    const tap = (name: CalibrationTap, value: string, width: number): void => {
      if (options.calibration) b.output(value, calibrationOutput(name, i), 'float32', [1, 'tokens', width]);
    };
    const pastKey = b.input(`past_key.${i}`, kvType, [`past_${i}`, t.numKvHeads, t.headDim]);
    const pastValue = b.input(`past_value.${i}`, kvType, [`past_${i}`, t.numKvHeads, t.headDim]);
    const pastBiasInput = b.input(`past_bias.${i}`, 'float32', [`past_${i}`]);
    const newBiasInput = b.input(`new_bias.${i}`, 'float32', ['tokens']);
    const [pastBias, newBias] = [compute(pastBiasInput), compute(newBiasInput)];
    b.scope(`model/layers.${i}`, () => {
      const h = norm(`${module}.input_layernorm`);
      tap('qkv', h, t.hiddenSize);
      const attn = b.scope('self_attn', () =>
        llmAttention(
          b,
          w,
          t,
          `${module}.self_attn`,
          { x: h, cos, sin, causalMask, pastKey: fromStore(pastKey), pastValue: fromStore(pastValue), pastBias, newBias, massWeights },
          options,
        ),
      );
      tap('o', attn.context, t.numHeads * t.headDim);
      const [newKey, newValue] = [toStore(attn.newKey), toStore(attn.newValue)];
      b.output(newKey, `new_key.${i}`, kvType, ['tokens', t.numKvHeads, t.headDim]);
      b.output(newValue, `new_value.${i}`, kvType, ['tokens', t.numKvHeads, t.headDim]);
      if (options.present) {
        const rows = [`present_${i}`, t.numKvHeads, t.headDim];
        b.output(b.op('Concat', [pastKey, newKey], { axis: 0 }), `present_key.${i}`, kvType, rows);
        b.output(b.op('Concat', [pastValue, newValue], { axis: 0 }), `present_value.${i}`, kvType, rows);
        b.output(b.op('Concat', [pastBiasInput, newBiasInput], { axis: 0 }), `present_bias.${i}`, 'float32', [`present_${i}`]);
      }
      if (attn.mass) b.output(float(attn.mass), `attn_mass.${i}`, 'float32', [t.numHeads, `columns_${i}`]);
      pending = attn.out;
      const h2 = norm(`${module}.post_attention_layernorm`);
      tap('gate_up', h2, t.hiddenSize);
      const ffn = b.scope('mlp', () => mlp(b, w, spec, h2, `${module}.mlp`, options));
      tap('down', ffn.product, t.intermediateSize);
      pending = ffn.out;
    });
    options.onLayer?.(i + 1, t.numLayers);
  }

  // The last residual add goes with the final norm, over every row; the last position is sliced after it.
  let normed = b.scope('model', () => norm(`${TEXT_PREFIX}.norm`));
  if (options.logits === 'last') {
    normed = b.op('Slice', [normed, b.constInt64([-1]), b.constInt64([1 << 30]), b.constInt64([1])], undefined, undefined, 'last_position');
  }
  // Tied embeddings: the head is embed_tokens (transformers `tie_word_embeddings`).
  const head = t.tieWordEmbeddings || !w.has('lm_head.weight') ? `${TEXT_PREFIX}.embed_tokens` : 'lm_head';
  const logits = b.scope('lm_head', () => linear(b, w, normed, head, { in: t.hiddenSize, out: t.vocabSize, bias: false }, options));
  b.output(float(logits), 'logits', 'float32', [1, options.logits === 'last' ? 1 : 'tokens', t.vocabSize]);
}

/** gate/up/down with SiLU: down(silu(gate(x)) · up(x)); also returns down_proj's input. */
function mlp(b: OnnxGraphBuilder, w: WeightReader, spec: ModelSpecBase, x: string, module: string, options: LinearOptions): { out: string; product: string } {
  const t = spec.text;
  const [gate, upOut] = b.scope('gate_up_proj', () =>
    linears(
      b,
      w,
      x,
      [
        { module: `${module}.gate_proj`, out: t.intermediateSize },
        { module: `${module}.up_proj`, out: t.intermediateSize },
      ],
      { in: t.hiddenSize, bias: t.mlpBias },
      options,
    ),
  );
  const product = b.op('Mul', [activation(b, gate, t.act), upOut]);
  const out = b.scope('down_proj', () => linear(b, w, product, `${module}.down_proj`, { in: t.intermediateSize, out: t.hiddenSize, bias: t.mlpBias }, options));
  return { out, product };
}

/**
 * cos/sin [T, 1, D] for the given positions (transformers LlamaRotaryEmbedding: freqs = pos · inv_freq in
 * float32, emb = cat(freqs, freqs)), or [T, D/2] of freqs alone (`half-angle`, llm-attention.ts `rotaryLayout`),
 * and the additive causal mask over the new block.
 *
 * M-RoPE (transformers models/qwen2_vl/modeling_qwen2_vl.py `apply_multimodal_rotary_pos_emb`): frequency i
 * of each half takes the position row its `mrope_section` chunk names (temporal, height, width). As one MatMul,
 * [T, 3] positions × a [3, D/2] table holding inv_freq[i] in row section(i) and zeros elsewhere: each sum has
 * one non-zero term, so every frequency is pos · inv_freq exactly, as in the float32 product transformers takes.
 */
function rotaryTables(b: OnnxGraphBuilder, t: TextSpec, positions: string, embeds: string, layout: 'half-angle' | 'full') {
  const inv = ropeInvFreq(t.headDim, t.ropeTheta, t.ropeScaling);
  let freqs: string;
  if (t.mropeSection) {
    const half = t.headDim / 2;
    const table = new Float32Array(3 * half);
    let i = 0;
    t.mropeSection.forEach((n, row) => {
      for (const end = i + n; i < end; i++) table[row * half + i] = inv[i]!;
    });
    const pos = b.op('Transpose', [b.op('Cast', [positions], { to: 1 })], { perm: [1, 0] });
    freqs = b.op('MatMul', [pos, b.constFloat(table, [3, half], 'mrope_inv_freq')], undefined, undefined, 'mrope_freqs');
  } else {
    const pos = b.op('Unsqueeze', [b.op('Cast', [positions], { to: 1 }), b.constInt64([1])]);
    freqs = b.op('Mul', [pos, b.constFloat(inv, [1, t.headDim / 2], 'inv_freq')]);
  }
  // cos(cat(f, f)) = cat(cos f, cos f): the half-angle tables are the same numbers, half of them.
  const emb = layout === 'half-angle' ? freqs : b.op('Unsqueeze', [b.op('Concat', [freqs, freqs], { axis: -1 }), b.constInt64([1])]);
  const cos = b.op('Cos', [emb]);
  const sin = b.op('Sin', [emb]);
  // Strictly-upper triangle of ones × −1e9: future tokens of the block are masked.
  const T = b.op('Slice', [b.op('Shape', [embeds]), b.constInt64([1]), b.constInt64([2])]);
  const ones = b.op('Expand', [b.constFloat([1], [1, 1], 'one'), b.op('Concat', [T, T], { axis: 0 })]);
  const upper = b.op('Trilu', [ones, b.constInt64([1])], { upper: 1 });
  const causalMask = b.op('Mul', [upper, b.constFloat([-1e9], [1], 'neg_inf')], undefined, undefined, 'causal_mask');
  return { cos, sin, causalMask };
}

/** Token embeddings: input_ids [T] → [1, T, hidden], embed_tokens' rows (int4 under int4: layers.ts `embedding`). */
export function buildEmbedGraph(b: OnnxGraphBuilder, w: WeightReader, spec: ModelSpecBase, options: LinearOptions): void {
  const t = spec.text;
  const ids = b.input('input_ids', 'int64', ['tokens']);
  const out = b.scope('model/embed_tokens', () =>
    b.op('Unsqueeze', [embedding(b, w, ids, `${TEXT_PREFIX}.embed_tokens`, { rows: t.vocabSize, dim: t.hiddenSize }, options), b.constInt64([0])]),
  );
  b.output(out, 'inputs_embeds', 'float32', [1, 'tokens', t.hiddenSize]);
}
