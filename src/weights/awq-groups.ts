/**
 * Which linears AWQ scales together, and where the inverse scale goes (AutoAWQ awq/models/llama.py
 * `get_layers_for_scaling`). Linears that read the same input share one per-channel scale s: their weights
 * become W·diag(s), and the op that produces the input divides its output channels by s, so the graph
 * computes exactly the same function before rounding.
 *
 *   qkv      q/k/v_proj, input = input_layernorm(x)           → input_layernorm.weight ÷ s
 *   o        o_proj, input = attention context                → v_proj rows (and bias) ÷ s; only when
 *            v_proj and o_proj have the same shape (no GQA): the context is a mix of v_proj's outputs
 *   gate_up  gate/up_proj, input = post_attention_layernorm(x) → post_attention_layernorm.weight ÷ s
 *   down     down_proj, input = silu(gate) · up               → up_proj rows (and bias) ÷ s
 */
import { TEXT_PREFIX } from '../checkpoint/checkpoint.js';
import type { TextSpec } from '../checkpoint/spec.js';

/**
 * The input of each group, in layer order. The decoder's calibration variant outputs each one
 * (src/graph/decoder.ts `calibrationOutput`), and a plan keys its scales by them.
 */
export const CALIBRATION_TAPS = ['qkv', 'o', 'gate_up', 'down'] as const;
export type CalibrationTap = (typeof CALIBRATION_TAPS)[number];

export interface AwqLinear {
  /** Module path, e.g. `model.language_model.layers.0.self_attn.q_proj`. */
  module: string;
  out: number;
  /**
   * AutoAWQ's auto_clip skips q and k: their outputs meet in softmax(q·kᵀ), which a per-output error does not
   * describe.
   */
  clip: boolean;
}

export interface AwqGroup {
  tap: CalibrationTap;
  layer: number;
  /** Input features (the scale's length). */
  in: number;
  linears: AwqLinear[];
  /** The module whose output channels are divided by s: a norm (weight) or a linear (weight rows, bias). */
  foldInto: string;
}

/** The groups of one decoder layer that AWQ can scale. */
export function awqGroups(t: TextSpec, layer: number): AwqGroup[] {
  const p = `${TEXT_PREFIX}.layers.${layer}`;
  const kv = t.numKvHeads * t.headDim;
  const lin = (module: string, out: number, clip = true): AwqLinear => ({ module: `${p}.${module}`, out, clip });
  const groups: AwqGroup[] = [
    {
      tap: 'qkv',
      layer,
      in: t.hiddenSize,
      foldInto: `${p}.input_layernorm`,
      linears: [lin('self_attn.q_proj', t.numHeads * t.headDim, false), lin('self_attn.k_proj', kv, false), lin('self_attn.v_proj', kv)],
    },
  ];
  // AutoAWQ: `if module.self_attn.v_proj.weight.shape == module.self_attn.o_proj.weight.shape`.
  if (kv === t.hiddenSize && t.numHeads * t.headDim === t.hiddenSize) {
    groups.push({ tap: 'o', layer, in: t.hiddenSize, foldInto: `${p}.self_attn.v_proj`, linears: [lin('self_attn.o_proj', t.hiddenSize)] });
  }
  groups.push(
    {
      tap: 'gate_up',
      layer,
      in: t.hiddenSize,
      foldInto: `${p}.post_attention_layernorm`,
      linears: [lin('mlp.gate_proj', t.intermediateSize), lin('mlp.up_proj', t.intermediateSize)],
    },
    { tap: 'down', layer, in: t.intermediateSize, foldInto: `${p}.mlp.up_proj`, linears: [lin('mlp.down_proj', t.hiddenSize)] },
  );
  return groups;
}

/** Every group of the model, layer by layer. */
export function allAwqGroups(t: TextSpec): AwqGroup[] {
  return Array.from({ length: t.numLayers }, (_, l) => awqGroups(t, l)).flat();
}
