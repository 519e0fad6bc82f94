/**
 * Budgets: how many visual tokens a method keeps at prefill or retrieves at decode, as a share or a count.
 * Shared by every method that keeps or retrieves by rank, with their validation, CLI parsing and labels.
 */
import { InputError } from '../errors.js';

/** A share of the candidates (0 < ratio ≤ 1) or an absolute count (≥ 1). */
export type Budget = { ratio: number } | { count: number };

export type KeepBudget = {
  budget: Budget;
  /**
   * Budget per image / video frame (default), or one global budget over all of a turn's images spread by
   * score: one top-k across every frame's tokens, so frames with more salient tokens keep more.
   */
  scope: 'per-image' | 'global';
  /**
   * Keep at least this many tokens of every image / frame (its top-scored ones), whatever the budget: with a
   * global budget no frame is dropped entirely. Default 0.
   */
  minPerImage?: number;
};

export type RetrieveBudget = {
  budget: Budget;
  /** Keep at least this many tokens of every image / frame in each layer's retrieval set. Default 0. */
  minPerImage: number;
  /** Score per KV head and take the union of each head's top-k (default: heads summed). */
  perKvHead: boolean;
  /**
   * One budget per LLM layer in place of `budget` (its length must be the model's layer count): layers
   * whose attention spreads over the image can attend more, layers that look at few tokens less.
   */
  perLayer?: Budget[];
  /**
   * Retrieval that follows the answer (an extension of the paper, which retrieves once per turn): every
   * `refreshEvery` decode steps, one step attends the whole retained cache (a dense step) and its attention
   * re-ranks each layer's visual tokens; the steps between read the views it chose. Absent: once per turn.
   */
  refreshEvery?: number;
  /**
   * At a refresh, each token's score is `refreshBlend` × the step's attention mass + (1 − `refreshBlend`) × the
   * question's (both sum to 1 per head over the cache, so they add on one scale). Default 0.5.
   */
  refreshBlend?: number;
};

/** Throws the typed error every policy check uses: the field, then what is wrong with it. */
export function policyFieldError(field: string, message: string): never {
  throw new InputError('OPTION_INVALID', `${field}: ${message}`, { subject: field });
}

export function validateBudget(b: unknown, field: string): Budget {
  if (typeof b !== 'object' || b === null) policyFieldError(field, `expected { ratio } or { count }, got ${JSON.stringify(b)}`);
  if ('ratio' in b) {
    const r = (b as { ratio: unknown }).ratio;
    if (typeof r !== 'number' || !(r > 0 && r <= 1)) policyFieldError(`${field}.ratio`, `must be in (0, 1], got ${String(r)}`);
    return { ratio: r };
  }
  if ('count' in b) {
    const c = (b as { count: unknown }).count;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1) policyFieldError(`${field}.count`, `must be an integer ≥ 1, got ${String(c)}`);
    return { count: c };
  }
  return policyFieldError(field, `expected { ratio } or { count }, got ${JSON.stringify(b)}`);
}

/** How many of `n` candidates a budget keeps (at least 1 when there are candidates). */
export function budgetCount(b: Budget, n: number): number {
  if (n === 0) return 0;
  const k = 'ratio' in b ? Math.round(b.ratio * n) : b.count;
  return Math.max(1, Math.min(n, k));
}

/** A whole number ≥ 0, or the typed error naming the field. */
export function validateCount(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) policyFieldError(field, `must be an integer ≥ 0, got ${String(v)}`);
  return v;
}

export function validateKeep(k: unknown, field: string): KeepBudget {
  const v = (k ?? {}) as Partial<KeepBudget>;
  const scope = v.scope ?? 'per-image';
  if (scope !== 'per-image' && scope !== 'global') policyFieldError(`${field}.scope`, `must be 'per-image' or 'global', got ${String(scope)}`);
  const minPerImage = validateCount(v.minPerImage ?? 0, `${field}.minPerImage`);
  return { budget: validateBudget(v.budget, `${field}.budget`), scope, minPerImage };
}

/**
 * A retrieval budget, checked, with its defaults. The optional parts (per-layer budgets, refresh) are present
 * only when set, so a once-per-turn policy is the same value it always was (the trace records it).
 */
export function validateRetrieve(r: unknown, field: string): RetrieveBudget {
  const v = (r ?? {}) as Partial<RetrieveBudget>;
  const perKvHead = v.perKvHead ?? false;
  if (typeof perKvHead !== 'boolean') policyFieldError(`${field}.perKvHead`, `must be true or false, got ${String(perKvHead)}`);
  const out: RetrieveBudget = {
    budget: validateBudget(v.budget, `${field}.budget`),
    minPerImage: validateCount(v.minPerImage ?? 0, `${field}.minPerImage`),
    perKvHead,
  };
  if (v.perLayer !== undefined) {
    if (!Array.isArray(v.perLayer) || v.perLayer.length === 0) {
      policyFieldError(`${field}.perLayer`, `expected one budget per LLM layer, got ${JSON.stringify(v.perLayer)}`);
    }
    out.perLayer = v.perLayer.map((b, l) => validateBudget(b, `${field}.perLayer[${l}]`));
  }
  const every = validateCount(v.refreshEvery ?? 0, `${field}.refreshEvery`);
  if (every > 0) out.refreshEvery = every;
  if (v.refreshBlend !== undefined) {
    const a = v.refreshBlend;
    if (typeof a !== 'number' || !(a >= 0 && a <= 1)) policyFieldError(`${field}.refreshBlend`, `must be a number in [0, 1], got ${String(a)}`);
    if (!every) policyFieldError(`${field}.refreshBlend`, `blends a refresh's scores with the question's: set ${field}.refreshEvery too`);
    out.refreshBlend = a;
  } else if (every) out.refreshBlend = REFRESH_BLEND;
  return out;
}

/** Default weight of a refresh step's attention against the question's (RetrieveBudget.refreshBlend). */
export const REFRESH_BLEND = 0.5;

/** The budget layer `layer` retrieves by. */
export function layerBudget(b: RetrieveBudget, layer: number): Budget {
  return b.perLayer?.[layer] ?? b.budget;
}

/** "50%" for a ratio, "64" for a count. */
export function budgetLabel(b: Budget): string {
  return 'ratio' in b ? `${+(b.ratio * 100).toFixed(1)}%` : String(b.count);
}

/** "0.5" / "50%" → ratio; "64" → count. Range checks happen in validateBudget, which names the field. */
export function parseBudget(value: string, flag: string): Budget {
  const v = value.trim();
  if (v.endsWith('%')) return { ratio: Number(v.slice(0, -1)) / 100 };
  if (/^\d+$/.test(v)) return { count: Number(v) };
  const n = Number(v);
  if (v === '' || Number.isNaN(n))
    throw new InputError('OPTION_INVALID', `${flag} must be a ratio (0.5, 50%) or a count (64); got '${value}'`, { subject: flag });
  return { ratio: n };
}
