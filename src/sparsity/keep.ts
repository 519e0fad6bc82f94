/**
 * Prefill keep sets: which of each image's LLM tokens enter the LLM. Retained tokens keep their order; the
 * rest are dropped before the prefill. Shared by the methods that keep a budget of top-ranked tokens.
 */
import { budgetCount, type KeepBudget } from './budget.js';
import { ascending, topK } from './topk.js';

/** Kept token indices per image (indices into that image's tokens, ascending). */
export type KeptTokens = number[][];

/** Every token of every image; `tokens[i]` is image i's token count. */
export function keepAll(tokens: readonly number[]): KeptTokens {
  return tokens.map((n) => Array.from({ length: n }, (_, i) => i));
}

/**
 * Top tokens by score. Per image: each image's own top-k. Global: one top-k over every image's tokens, so
 * the budget goes where the scores are highest; `minPerImage` first gives every image its own top few.
 */
export function keepTopScores(keep: KeepBudget, scores: ArrayLike<number>[]): KeptTokens {
  const floor = keep.minPerImage ?? 0;
  if (keep.scope === 'per-image') return scores.map((s) => topK(s, Math.max(budgetCount(keep.budget, s.length), Math.min(floor, s.length))));
  const counts = scores.map((s) => s.length);
  const offsets = offsetsOf(counts);
  const all = new Float64Array(offsets.at(-1)!);
  scores.forEach((s, i) => all.set(s, offsets[i]!));
  const k = budgetCount(keep.budget, all.length);
  if (floor === 0) return splitByImage(topK(all, k), counts);
  const chosen = new Set(scores.flatMap((s, i) => topK(s, Math.min(floor, s.length)).map((t) => offsets[i]! + t)));
  const rest = Array.from({ length: all.length }, (_, j) => j).filter((j) => !chosen.has(j));
  for (const j of topK(all, k - chosen.size, rest)) chosen.add(j);
  return splitByImage(ascending(chosen), counts);
}

/** Where each image's tokens start in the flat order, and (last) the total: [0, n0, n0 + n1, …]. */
export function offsetsOf(tokens: readonly number[]): number[] {
  const out = [0];
  for (const n of tokens) out.push(out.at(-1)! + n);
  return out;
}

/** How many tokens `keepTopScores` keeps of images of `tokens[i]` tokens (known before any image is scored). */
export function keptUnderBudget(keep: KeepBudget, tokens: readonly number[]): number {
  const floor = keep.minPerImage ?? 0;
  if (keep.scope === 'per-image') return tokens.reduce((a, n) => a + Math.max(budgetCount(keep.budget, n), Math.min(floor, n)), 0);
  const total = tokens.reduce((a, n) => a + n, 0);
  return Math.max(
    budgetCount(keep.budget, total),
    tokens.reduce((a, n) => a + Math.min(floor, n), 0),
  );
}

/** Flat token indices over the images' tokens end to end (ascending) → per-image indices. */
export function splitByImage(flat: number[], tokens: readonly number[]): KeptTokens {
  const offsets = offsetsOf(tokens);
  const out: KeptTokens = tokens.map(() => []);
  let img = 0;
  for (const t of flat) {
    while (t >= offsets[img + 1]!) img++;
    out[img]!.push(t - offsets[img]!);
  }
  return out;
}

/** The embeddings of the kept tokens only, in prompt order: [kept, hidden] from [Σ tokens, hidden]. */
export function gatherKept(embeds: Float32Array, kept: KeptTokens, tokens: readonly number[], hidden: number): Float32Array {
  const offsets = offsetsOf(tokens);
  const out = new Float32Array(kept.reduce((a, k) => a + k.length, 0) * hidden);
  let at = 0;
  kept.forEach((ks, img) => {
    const base = offsets[img]!;
    for (const k of ks) out.set(embeds.subarray((base + k) * hidden, (base + k + 1) * hidden), at++ * hidden);
  });
  return out;
}
