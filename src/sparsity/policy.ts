/**
 * A sparsity policy is a plain, serializable value: every run records its policy in the trace, so any run
 * or sweep can be reproduced from the trace alone. `validatePolicy` is where bad budgets are refused.
 */
import { InputError } from '../errors.js';

/** A share of the candidates (0 < ratio ≤ 1) or an absolute count (≥ 1). */
export type Budget = { ratio: number } | { count: number };

export interface KeepBudget {
  budget: Budget;
  /**
   * Budget per image / video frame (default), or one global budget over all of a turn's images spread by
   * salience: one top-k across every frame's tokens, so frames with more salient tokens keep more.
   */
  scope: 'per-image' | 'global';
  /**
   * Keep at least this many tokens of every image / frame (its most salient ones), whatever the budget:
   * with a global budget no frame is dropped entirely. Default 0. Not for `stride`, which keeps evenly
   * spaced tokens per image.
   */
  minPerImage?: number;
}

export interface RetrieveBudget {
  budget: Budget;
  /** Keep at least this many tokens of every image / frame in each layer's retrieval set. Default 0. */
  minPerImage: number;
  /** Score per KV head and take the union of each head's top-k (default: heads summed). */
  perKvHead: boolean;
}

/**
 * Salience source: `auto` = CLS attention on towers with a CLS token, attention received otherwise;
 * `{ summary }` = mean attention from the listed leading tower tokens (RADIO-style summary tokens; the
 * vision graph returns the first 8 tokens' rows).
 */
export type SalienceSource = 'auto' | 'cls' | 'received' | { summary: number[] };

/**
 * Rotary positions of kept visual tokens: their original positions (gaps left by pruning) or re-packed.
 * Default `original`: kept tokens keep the rotary distances the model was trained with — to each other
 * across the patch grid, and to the question — so a pruned prompt is the dense prompt with columns removed
 * (FastV keeps positions the same way) and keep = 100% is exactly dense. `compact` shortens the position
 * range, which matters only near the model's context limit.
 */
export type PositionMode = 'original' | 'compact';

export type SparsityPolicy =
  | { method: 'dense' }
  | { method: 'sparsevila'; keep: KeepBudget; retrieve: RetrieveBudget; salience: SalienceSource; positions: PositionMode }
  /** FastV (Chen et al. 2024, arXiv 2403.06764): after layer K drop the R least-attended visual tokens by the last prompt token. */
  | { method: 'fastv'; layer: number; dropRatio: number }
  /** PyramidDrop (Xing et al. 2024, arXiv 2410.17247): at each layer keep a share of the surviving visual tokens by the last instruction token. */
  | { method: 'pdrop'; layers: number[]; keepRatios: number[] }
  /** VisionZip (Yang et al. 2024, arXiv 2412.04467): per image, `dominant` salient tokens + `contextual` merged ones. */
  | { method: 'visionzip'; dominant: number; contextual: number }
  /** Query-agnostic pruning baselines at prefill, with original positions. */
  | { method: 'random'; keep: KeepBudget; seed: number }
  | { method: 'stride'; keep: KeepBudget };

export type SparsityMethod = SparsityPolicy['method'];

export const DENSE: SparsityPolicy = { method: 'dense' };

function fail(field: string, message: string): never {
  throw new InputError('OPTION_INVALID', `${field}: ${message}`, { subject: field });
}

export function validateBudget(b: unknown, field: string): Budget {
  if (typeof b !== 'object' || b === null) fail(field, `expected { ratio } or { count }, got ${JSON.stringify(b)}`);
  if ('ratio' in b) {
    const r = (b as { ratio: unknown }).ratio;
    if (typeof r !== 'number' || !(r > 0 && r <= 1)) fail(`${field}.ratio`, `must be in (0, 1], got ${String(r)}`);
    return { ratio: r };
  }
  if ('count' in b) {
    const c = (b as { count: unknown }).count;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1) fail(`${field}.count`, `must be an integer ≥ 1, got ${String(c)}`);
    return { count: c };
  }
  return fail(field, `expected { ratio } or { count }, got ${JSON.stringify(b)}`);
}

/** How many of `n` candidates a budget keeps (at least 1 when there are candidates). */
export function budgetCount(b: Budget, n: number): number {
  if (n === 0) return 0;
  const k = 'ratio' in b ? Math.round(b.ratio * n) : b.count;
  return Math.max(1, Math.min(n, k));
}

function validateKeep(k: unknown, field: string): KeepBudget {
  const v = (k ?? {}) as Partial<KeepBudget>;
  const scope = v.scope ?? 'per-image';
  if (scope !== 'per-image' && scope !== 'global') fail(`${field}.scope`, `must be 'per-image' or 'global', got ${String(scope)}`);
  const minPerImage = v.minPerImage ?? 0;
  if (!Number.isInteger(minPerImage) || minPerImage < 0) fail(`${field}.minPerImage`, `must be an integer ≥ 0, got ${String(minPerImage)}`);
  return { budget: validateBudget(v.budget, `${field}.budget`), scope, minPerImage };
}

export function validatePolicy(p: unknown): SparsityPolicy {
  if (typeof p !== 'object' || p === null) fail('policy', `expected an object, got ${JSON.stringify(p)}`);
  const method = (p as { method?: unknown }).method;
  const v = p as Record<string, unknown>;
  switch (method) {
    case 'dense':
      return { method };
    case 'sparsevila': {
      const r = (v.retrieve ?? {}) as Partial<RetrieveBudget>;
      const minPerImage = r.minPerImage ?? 0;
      if (!Number.isInteger(minPerImage) || minPerImage < 0) fail('policy.retrieve.minPerImage', `must be an integer ≥ 0, got ${minPerImage}`);
      const salience = (v.salience ?? 'auto') as SalienceSource;
      if (typeof salience === 'object' && salience !== null) {
        const rows = salience.summary;
        if (!Array.isArray(rows) || !rows.length || !rows.every((i) => Number.isInteger(i) && i >= 0 && i < 8)) {
          fail('policy.salience.summary', `must be a non-empty list of leading token indices in 0..7, got ${JSON.stringify(rows)}`);
        }
      } else if (!['auto', 'cls', 'received'].includes(salience)) {
        fail('policy.salience', `must be 'auto', 'cls', 'received' or { summary: [indices] }, got ${JSON.stringify(salience)}`);
      }
      const positions = (v.positions ?? 'original') as PositionMode;
      if (positions !== 'original' && positions !== 'compact') fail('policy.positions', `must be 'original' or 'compact', got ${String(positions)}`);
      return {
        method,
        keep: validateKeep(v.keep, 'policy.keep'),
        retrieve: { budget: validateBudget(r.budget, 'policy.retrieve.budget'), minPerImage, perKvHead: r.perKvHead ?? false },
        salience,
        positions,
      };
    }
    case 'fastv': {
      const layer = v.layer as number;
      const dropRatio = v.dropRatio as number;
      if (!Number.isInteger(layer) || layer < 1) fail('policy.layer', `must be an integer ≥ 1, got ${String(layer)}`);
      if (typeof dropRatio !== 'number' || !(dropRatio >= 0 && dropRatio < 1)) fail('policy.dropRatio', `must be in [0, 1), got ${String(dropRatio)}`);
      return { method, layer, dropRatio };
    }
    case 'pdrop': {
      const layers = v.layers as number[];
      const keepRatios = v.keepRatios as number[];
      if (!Array.isArray(layers) || !layers.length || !layers.every((l, i) => Number.isInteger(l) && l >= 1 && (i === 0 || l > layers[i - 1]!))) {
        fail('policy.layers', `must be ascending layer indices ≥ 1, got ${JSON.stringify(layers)}`);
      }
      if (!Array.isArray(keepRatios) || keepRatios.length !== layers.length || !keepRatios.every((r) => typeof r === 'number' && r > 0 && r <= 1)) {
        fail('policy.keepRatios', `must give one ratio in (0, 1] per layer, got ${JSON.stringify(keepRatios)}`);
      }
      return { method, layers, keepRatios };
    }
    case 'random': {
      const seed = v.seed ?? 0;
      if (!Number.isInteger(seed)) fail('policy.seed', `must be an integer, got ${String(seed)}`);
      return { method, keep: validateKeep(v.keep, 'policy.keep'), seed: seed as number };
    }
    case 'stride': {
      const keep = validateKeep(v.keep, 'policy.keep');
      if ((keep.minPerImage ?? 0) > 0) fail('policy.keep.minPerImage', 'stride keeps evenly spaced tokens per image: a per-image minimum applies to salience (sparsevila) or random ranking');
      return { method, keep };
    }
    case 'visionzip': {
      const dominant = v.dominant as number;
      const contextual = v.contextual as number;
      if (!Number.isInteger(dominant) || dominant < 1) fail('policy.dominant', `must be an integer ≥ 1, got ${String(dominant)}`);
      if (!Number.isInteger(contextual) || contextual < 0) fail('policy.contextual', `must be an integer ≥ 0, got ${String(contextual)}`);
      return { method, dominant, contextual };
    }
    default:
      return fail('policy.method', `unknown sparsity policy '${String(method)}'; known: dense, sparsevila, fastv, pdrop, visionzip, random, stride`);
  }
}
