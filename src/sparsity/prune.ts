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
      return byScores(policy.keep, salience.map((s) => s.scores));
    case 'random': {
      // Image by image, the same draws as one array over all images: per-image and global see one sequence.
      const random = seededRandom(policy.seed);
      return byScores(policy.keep, salience.map(() => Float64Array.from({ length: tokensPerImage }, random)));
    }
    case 'stride': {
      // Evenly spaced over the image's tokens: floor(i · n / k).
      const even = (n: number, k: number) => Array.from({ length: k }, (_, i) => Math.floor((i * n) / k));
      const images = salience.length;
      const n = tokensPerImage;
      if (policy.keep.scope === 'per-image') return Array.from({ length: images }, () => even(n, budgetCount(policy.keep.budget, n)));
      return splitByImage(even(images * n, budgetCount(policy.keep.budget, images * n)), images, n);
    }
    default:
      return keepAll(tokensPerImage, salience.length);
  }
}

/**
 * Visual tokens a policy will let into the LLM for `images` images of `tokensPerImage` tokens, known before
 * any image is encoded (memory estimates). VisionZip: dominant + contextual per image.
 */
export function keptCount(policy: SparsityPolicy, images: number, tokensPerImage: number): number {
  const n = tokensPerImage;
  switch (policy.method) {
    case 'sparsevila':
    case 'random':
    case 'stride': {
      const { budget, scope } = policy.keep;
      const floor = Math.min(policy.keep.minPerImage ?? 0, n);
      if (scope === 'per-image') return images * Math.max(budgetCount(budget, n), floor);
      return Math.max(budgetCount(budget, images * n), images * floor);
    }
    case 'visionzip':
      return images * Math.min(n, policy.dominant + policy.contextual);
    default:
      return images * n;
  }
}

/**
 * Top tokens by score. Per image: each image's own top-k. Global: one top-k over every image's tokens, so
 * the budget goes where the scores are highest; `minPerImage` first gives every image its own top few.
 */
function byScores(keep: KeepBudget, scores: ArrayLike<number>[]): KeptTokens {
  const floor = keep.minPerImage ?? 0;
  if (keep.scope === 'per-image') return scores.map((s) => topK(s, Math.max(budgetCount(keep.budget, s.length), Math.min(floor, s.length))));
  const n = scores[0]?.length ?? 0;
  const all = new Float64Array(scores.length * n);
  scores.forEach((s, i) => all.set(s, i * n));
  const k = budgetCount(keep.budget, all.length);
  if (floor === 0) return splitByImage(topK(all, k), scores.length, n);
  const chosen = new Set(scores.flatMap((s, i) => topK(s, Math.min(floor, n)).map((t) => i * n + t)));
  const rest = Array.from({ length: all.length }, (_, j) => j).filter((j) => !chosen.has(j));
  for (const j of topK(all, k - chosen.size, rest)) chosen.add(j);
  return splitByImage([...chosen].sort((a, b) => a - b), scores.length, n);
}

/** Flat token indices over `images` × `n` (ascending) → per-image indices. */
function splitByImage(flat: number[], images: number, n: number): KeptTokens {
  const out: KeptTokens = Array.from({ length: images }, () => []);
  for (const t of flat) out[Math.floor(t / n)]!.push(t % n);
  return out;
}
