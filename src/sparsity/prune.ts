/**
 * Prefill pruning: which of each image's LLM tokens enter the LLM at all. Retained tokens keep their order;
 * the rest are dropped before the prefill (no merging).
 */
import { seededRandom } from '../session/sampling.js';
import { budgetCount, type KeepBudget, type SparsityPolicy } from './policy.js';
import type { ImageSalience } from './salience.js';
import { topK } from './topk.js';

/** Kept token indices per image (indices into that image's tokens, ascending). */
export type KeptTokens = number[][];

export function keepAll(tokensPerImage: number, images: number): KeptTokens {
  return Array.from({ length: images }, () => Array.from({ length: tokensPerImage }, (_, i) => i));
}

/** The tokens a policy keeps at prefill. Policies that drop inside the LLM (FastV, PyramidDrop) keep all here. */
export function selectKept(policy: SparsityPolicy, salience: ImageSalience[], tokensPerImage: number): KeptTokens {
  switch (policy.method) {
    case 'sparsevila':
      return bySalience(policy.keep, salience);
    case 'random': {
      const random = seededRandom(policy.seed);
      return perImage(policy.keep, salience.length, tokensPerImage, (n, k) => topK(Float64Array.from({ length: n }, random), k));
    }
    case 'stride':
      // Evenly spaced over the image's tokens: floor(i · n / k).
      return perImage(policy.keep, salience.length, tokensPerImage, (n, k) => Array.from({ length: k }, (_, i) => Math.floor((i * n) / k)));
    default:
      return keepAll(tokensPerImage, salience.length);
  }
}

function perImage(keep: KeepBudget, images: number, n: number, pick: (n: number, k: number) => number[]): KeptTokens {
  if (keep.scope === 'per-image') return Array.from({ length: images }, () => pick(n, budgetCount(keep.budget, n)));
  const flat = pick(images * n, budgetCount(keep.budget, images * n));
  return Array.from({ length: images }, (_, i) => flat.filter((t) => t >= i * n && t < (i + 1) * n).map((t) => t - i * n));
}

function bySalience(keep: KeepBudget, salience: ImageSalience[]): KeptTokens {
  if (keep.scope === 'per-image') return salience.map((s) => topK(s.scores, budgetCount(keep.budget, s.scores.length)));
  const n = salience[0]?.scores.length ?? 0;
  const all = new Float32Array(salience.length * n);
  salience.forEach((s, i) => all.set(s.scores, i * n));
  const flat = topK(all, budgetCount(keep.budget, all.length));
  return salience.map((_, i) => flat.filter((t) => t >= i * n && t < (i + 1) * n).map((t) => t - i * n));
}
