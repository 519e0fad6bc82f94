/**
 * Prefill keep sets: which of each image's LLM tokens enter the LLM. Retained tokens keep their order; the
 * rest are dropped before the prefill. Shared by the methods that keep a budget of top-ranked tokens.
 */
import { budgetCount, type KeepBudget } from './budget.js';
import { topK } from './topk.js';

/** Kept token indices per image (indices into that image's tokens, ascending). */
export type KeptTokens = number[][];

export function keepAll(tokensPerImage: number, images: number): KeptTokens {
  return Array.from({ length: images }, () => Array.from({ length: tokensPerImage }, (_, i) => i));
}

/**
 * Top tokens by score. Per image: each image's own top-k. Global: one top-k over every image's tokens, so
 * the budget goes where the scores are highest; `minPerImage` first gives every image its own top few.
 */
export function keepTopScores(keep: KeepBudget, scores: ArrayLike<number>[]): KeptTokens {
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
  return splitByImage(
    [...chosen].sort((a, b) => a - b),
    scores.length,
    n,
  );
}

/** How many tokens `keepTopScores` keeps of `images` images of `n` tokens (known before any image is scored). */
export function keptUnderBudget(keep: KeepBudget, images: number, n: number): number {
  const floor = Math.min(keep.minPerImage ?? 0, n);
  if (keep.scope === 'per-image') return images * Math.max(budgetCount(keep.budget, n), floor);
  return Math.max(budgetCount(keep.budget, images * n), images * floor);
}

/** Flat token indices over `images` × `n` (ascending) → per-image indices. */
export function splitByImage(flat: number[], images: number, n: number): KeptTokens {
  const out: KeptTokens = Array.from({ length: images }, () => []);
  for (const t of flat) out[Math.floor(t / n)]!.push(t % n);
  return out;
}

/** The embeddings of the kept tokens only, in prompt order: [kept, hidden] from [images · n, hidden]. */
export function gatherKept(embeds: Float32Array, kept: KeptTokens, n: number, hidden: number): Float32Array {
  const out = new Float32Array(kept.reduce((a, k) => a + k.length, 0) * hidden);
  let at = 0;
  kept.forEach((ks, img) => {
    for (const k of ks) out.set(embeds.subarray((img * n + k) * hidden, (img * n + k + 1) * hidden), at++ * hidden);
  });
  return out;
}
