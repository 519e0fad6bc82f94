/**
 * Activation-aware weight quantization (Lin et al., "AWQ", MLSys 2024; AutoAWQ awq/quantize/quantizer.py
 * `_search_best_scale` and `_search_best_clip`), on the int4 rounding the graphs use (src/weights/int4.ts).
 *
 * Scale search, per group of linears sharing an input X: s = mean|x|^α over channels, normalised by
 * sqrt(max(s) · min(s)); for α on a 20-point grid in [0, 1), round W·diag(s) and measure the output error
 * ‖X·W_effᵀ − X·Wᵀ‖² with W_eff = Q(W·diag(s))·diag(1/s). α = 0 is round-to-nearest, so the kept α never
 * does worse than RTN on the calibration rows. (AutoAWQ measures the error after the whole attention or MLP
 * block; here it is the group's own outputs, which needs no second forward.)
 *
 * Clip search, per linear after scaling (q and k excluded, as AutoAWQ): for each (row, block), clamp the
 * block to ±max|w|·(1 − i/20), i < 10, and keep the i with the least error of that block's share of the
 * output, Δw·G·Δwᵀ with G = XᵀX over the block's input channels. Blocks are judged alone, so a linear keeps
 * its clipping only if its whole output error went down.
 */
import { CLIP_GRID, CLIP_MAX_SHRINK, SCALE_GRID } from '../weights/awq-plan.js';
import { clipLimit, scaleColumns } from '../weights/awq-weights.js';
import { fakeQuantizeBlock, fakeQuantizeInt4, type Int4BlockSize } from '../weights/int4.js';
import type { OutputErrorMeter } from './output-error.js';

/** One group input's calibration statistics. */
export interface GroupActivations {
  /** Sampled calibration rows, row-major [rows, in]. */
  x: Float32Array;
  rows: number;
  /** Mean |x| per input channel over every calibration token (AutoAWQ `get_act_scale`). */
  meanAbs: Float32Array;
}

/** A linear's float weight, row-major [out, in]. */
export interface LinearWeight {
  w: Float32Array;
  out: number;
}

export interface ScaleSearch {
  alpha: number;
  scale: Float32Array;
  /** Error at α = 0: round-to-nearest. */
  rtnError: number;
  /** Error at the chosen α. */
  error: number;
  /** Error per grid point, α = i / SCALE_GRID. */
  curve: number[];
}

/** AutoAWQ's scale for ratio α: mean|x|^α (at least 1e-4), divided by sqrt(max · min). */
export function awqScale(meanAbs: Float32Array, alpha: number): Float32Array {
  const s = Float32Array.from(meanAbs, (m) => Math.max(Math.pow(m, alpha), 1e-4));
  let max = -Infinity;
  let min = Infinity;
  for (const v of s) {
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  const norm = Math.sqrt(max * min);
  for (let i = 0; i < s.length; i++) s[i]! /= norm;
  return s;
}

/** Q(W·diag(s))·diag(1/s): the weight the graph effectively applies to the unscaled input. */
export function effectiveWeight(w: Float32Array, out: number, s: Float32Array, blockSize: Int4BlockSize): Float32Array {
  const scaled = Float32Array.from(w);
  scaleColumns(scaled, s);
  const q = fakeQuantizeInt4(scaled, out, s.length, blockSize);
  divideColumns(q, s);
  return q;
}

/** m[r, c] /= s[c] for a row-major [rows, s.length] matrix. */
function divideColumns(m: Float32Array, s: Float32Array): void {
  const k = s.length;
  for (let base = 0; base < m.length; base += k) {
    for (let c = 0; c < k; c++) m[base + c]! /= s[c]!;
  }
}

/** The best α for a group (see the header). */
export async function searchScale(
  meter: OutputErrorMeter,
  act: GroupActivations,
  linears: readonly LinearWeight[],
  blockSize: Int4BlockSize,
): Promise<ScaleSearch> {
  const n = linears.reduce((a, l) => a + l.out, 0);
  const delta = new Float32Array(n * act.meanAbs.length);
  const curve: number[] = [];
  let best: { alpha: number; scale: Float32Array; error: number } | undefined;
  for (let i = 0; i < SCALE_GRID; i++) {
    const alpha = i / SCALE_GRID;
    const scale = awqScale(act.meanAbs, alpha);
    let at = 0;
    for (const l of linears) {
      const eff = effectiveWeight(l.w, l.out, scale, blockSize);
      for (let j = 0; j < eff.length; j++) delta[at + j] = eff[j]! - l.w[j]!;
      at += eff.length;
    }
    const error = await meter.measure(act.x, act.rows, delta, n);
    curve.push(error);
    // Strictly better only: ties keep the smaller α (round-to-nearest first).
    if (!best || error < best.error) best = { alpha, scale, error };
  }
  return { ...best!, rtnError: curve[0]!, curve };
}

/** Divides each column c of x [rows, s.length] by s[c]: the input the scaled weights see. */
export function scaleInput(act: GroupActivations, s: Float32Array): Float32Array {
  const x = Float32Array.from(act.x);
  divideColumns(x, s);
  return x;
}

/**
 * Per (row, block) shrink steps for a weight w [out, k] that reads x [rows, k] (both as the graph will see
 * them: scaled), row-major [out, blocks]; step 0 means no clipping.
 */
export function searchClip(x: Float32Array, rows: number, w: Float32Array, out: number, blockSize: Int4BlockSize): Uint8Array {
  const k = w.length / out;
  const blocks = Math.ceil(k / blockSize);
  const grams = blockGrams(x, rows, k, blockSize);
  const steps = new Uint8Array(out * blocks);
  const candidates = Math.round(CLIP_MAX_SHRINK * CLIP_GRID);
  const clamped = new Float32Array(blockSize);
  const rounded = new Float32Array(blockSize);
  const diff = new Float64Array(blockSize);
  for (let r = 0; r < out; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * k + b * blockSize;
      const len = Math.min(blockSize, k - b * blockSize);
      const gram = grams[b]!;
      let bestError = Infinity;
      for (let step = 0; step < candidates; step++) {
        const limit = clipLimit(w, start, start + len, step);
        for (let i = 0; i < len; i++) clamped[i] = Math.min(limit, Math.max(-limit, w[start + i]!));
        fakeQuantizeBlock(clamped, 0, len, rounded);
        for (let i = 0; i < len; i++) diff[i] = rounded[i]! - w[start + i]!;
        const error = quadraticForm(gram, diff, len);
        if (error < bestError) {
          bestError = error;
          steps[r * blocks + b] = step;
        }
      }
    }
  }
  return steps;
}

/** Per block b, G_b = X_bᵀ·X_b over the block's input channels, [len, len] in float64. */
function blockGrams(x: Float32Array, rows: number, k: number, blockSize: number): Float64Array[] {
  const grams: Float64Array[] = [];
  for (let start = 0; start < k; start += blockSize) {
    const len = Math.min(blockSize, k - start);
    const g = new Float64Array(len * len);
    for (let r = 0; r < rows; r++) {
      const row = r * k + start;
      for (let i = 0; i < len; i++) {
        const xi = x[row + i]!;
        if (xi === 0) continue;
        for (let j = 0; j < len; j++) g[i * len + j]! += xi * x[row + j]!;
      }
    }
    grams.push(g);
  }
  return grams;
}

function quadraticForm(g: Float64Array, d: Float64Array, len: number): number {
  let sum = 0;
  for (let i = 0; i < len; i++) {
    let row = 0;
    for (let j = 0; j < len; j++) row += g[i * len + j]! * d[j]!;
    sum += d[i]! * row;
  }
  return sum;
}
