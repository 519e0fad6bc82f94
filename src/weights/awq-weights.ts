/**
 * A checkpoint's float weights with an AWQ plan applied, for the graph builder to round as int4:
 *   linear weights of a group      W·diag(s)                 (input channels scaled up)
 *   the op feeding the group       weight (and bias) ÷ s     (its output channels scaled down)
 *   clipped linears                each block clamped to ±max|w|·(1 − step / CLIP_GRID), after scaling
 * Before rounding the model computes exactly what it did; after rounding, the salient input channels (large
 * mean |x|) carry less relative error.
 */
import type { TextSpec } from '../checkpoint/spec.js';
import { allAwqGroups } from './awq-groups.js';
import { CLIP_GRID, scaleKey, type AwqPlan } from './awq-plan.js';
import type { WeightReader } from './weight-reader.js';

export function awqWeights(base: WeightReader, spec: TextSpec, plan: AwqPlan): WeightReader {
  const columnScale = new Map<string, Float32Array>();
  const channelDivide = new Map<string, Float32Array>();
  for (const g of allAwqGroups(spec)) {
    const s = plan.scales.get(scaleKey(g.layer, g.tap));
    if (!s) continue;
    for (const l of g.linears) columnScale.set(l.module, s);
    channelDivide.set(g.foldInto, s);
  }
  return {
    has: (name) => base.has(name),
    read(name, expectedShape) {
      const values = base.read(name, expectedShape);
      const dot = name.lastIndexOf('.');
      const module = name.slice(0, dot);
      const field = name.slice(dot + 1);
      if (field !== 'weight' && field !== 'bias') return values;
      const divide = channelDivide.get(module);
      const scale = field === 'weight' ? columnScale.get(module) : undefined;
      const clip = field === 'weight' ? plan.clips.get(module) : undefined;
      if (!divide && !scale && !clip) return values;
      const out = Float32Array.from(values);
      if (scale) scaleColumns(out, scale);
      // A norm weight or bias has one value per channel; a linear weight [out, in] one row.
      if (divide) divideRows(out, divide);
      // Every clipped linear belongs to a group, whose scale length is its input width.
      if (clip && scale) clipBlocks(out, scale.length, plan.blockSize, clip);
      return out;
    },
  };
}

/** w[r, c] *= s[c] for a row-major [rows, s.length] matrix. */
export function scaleColumns(w: Float32Array, s: Float32Array): void {
  const k = s.length;
  for (let base = 0; base < w.length; base += k) {
    for (let c = 0; c < k; c++) w[base + c]! *= s[c]!;
  }
}

/** w[r, ·] /= s[r] for a row-major [s.length, cols] matrix (cols = 1 for a vector). */
export function divideRows(w: Float32Array, s: Float32Array): void {
  const cols = w.length / s.length;
  for (let r = 0; r < s.length; r++) {
    const d = s[r]!;
    for (let c = r * cols; c < (r + 1) * cols; c++) w[c]! /= d;
  }
}

/**
 * Clamps each block of a row-major [rows, k] weight to ±max|w|·(1 − step / CLIP_GRID), the block's own step
 * from `steps` ([rows, blocks]). AutoAWQ's apply_clip, on MatMulNBits blocks.
 */
export function clipBlocks(w: Float32Array, k: number, blockSize: number, steps: Uint8Array): void {
  const blocks = Math.ceil(k / blockSize);
  const rows = w.length / k;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const step = steps[r * blocks + b]!;
      if (step === 0) continue;
      const start = r * k + b * blockSize;
      const end = r * k + Math.min((b + 1) * blockSize, k);
      const limit = clipLimit(w, start, end, step);
      for (let i = start; i < end; i++) w[i] = Math.min(limit, Math.max(-limit, w[i]!));
    }
  }
}

/** The clamp bound of a block at a shrink step. */
export function clipLimit(w: Float32Array, start: number, end: number, step: number): number {
  let max = 0;
  for (let i = start; i < end; i++) max = Math.max(max, Math.abs(w[i]!));
  return max * (1 - step / CLIP_GRID);
}
