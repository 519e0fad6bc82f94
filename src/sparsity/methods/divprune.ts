/**
 * DivPrune (Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models",
 * CVPR 2025, arXiv 2503.02175v1; reference code vbdi/divprune, `DivPrune()`): query-agnostic pruning at
 * prefill that keeps a diverse subset of the visual tokens instead of the most salient ones, as a greedy
 * solution of the Max-Min Diversity Problem on the tokens the LLM receives (after the projector):
 *   distance   d(i, j) = 1 − cos(e_i, e_j) on the projected embeddings;
 *   first      the token whose nearest other token is farthest (the repo: the second smallest entry of
 *              each column of the distance matrix, the smallest being the token's own ≈ 0);
 *   then       repeatedly the token whose distance to the kept set (its minimum over kept tokens) is largest;
 *              ties go to the lower index (torch.argmax), kept tokens are never picked again;
 *   order      the kept indices ascending, original positions (the repo sorts them).
 * Per image by default (the repo prunes each image's features); `scope: 'global'` selects over all of a
 * turn's frames at once. The budget is the keep budget (the repo's retained ratio, default 0.098 there).
 * Cost: O(n² · hidden) for the first pick, O(k · n · hidden) for the rest, with n tokens per selection.
 */
import { budgetCount, budgetLabel, policyFieldError, validateKeep, type KeepBudget } from '../budget.js';
import { keepFromFlags, KEEP_FLAGS } from '../flags.js';
import { keptUnderBudget, offsetsOf, splitByImage } from '../keep.js';
import type { SparsityMethod } from '../method.js';

export type DivPrunePolicy = { method: 'divprune'; keep: KeepBudget };

export const divprune: SparsityMethod<DivPrunePolicy> = {
  name: 'divprune',
  summary: 'DivPrune: keep a max-min diverse subset of the projected visual tokens at prefill (CVPR 2025, arXiv 2503.02175)',
  validate(v) {
    const keep = validateKeep(v.keep, 'policy.keep');
    if ((keep.minPerImage ?? 0) > 0)
      policyFieldError('policy.keep.minPerImage', 'DivPrune selects by diversity, not by a per-image ranking: use 0, or scope per-image');
    return { method: 'divprune', keep };
  },
  label: (p) => `DivPrune keep ${budgetLabel(p.keep.budget)}`,
  cli: { flags: KEEP_FLAGS, policy: (v) => ({ method: 'divprune', keep: keepFromFlags(v) }) },
  prune(p, { tokensPerImage: tokens, embeds, hidden }) {
    const total = tokens.reduce((a, n) => a + n, 0);
    if (p.keep.scope === 'global') return { kept: splitByImage(maxMinDiverse(embeds, total, hidden, budgetCount(p.keep.budget, total)), tokens) };
    const offsets = offsetsOf(tokens);
    return {
      kept: tokens.map((n, i) => maxMinDiverse(embeds.subarray(offsets[i]! * hidden, offsets[i + 1]! * hidden), n, hidden, budgetCount(p.keep.budget, n))),
    };
  },
  keptCount: (p, tokens) => keptUnderBudget(p.keep, tokens),
};

/** Greedy max-min diverse subset of `k` of the `n` rows of x [n, d] under cosine distance; ascending indices. */
export function maxMinDiverse(x: Float32Array, n: number, d: number, k: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const unit = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let c = 0; c < d; c++) norm += x[i * d + c]! ** 2;
    norm = Math.sqrt(norm);
    for (let c = 0; c < d; c++) unit[i * d + c] = x[i * d + c]! / norm;
  }
  const distance = (i: number, j: number) => {
    let dot = 0;
    for (let c = 0; c < d; c++) dot += unit[i * d + c]! * unit[j * d + c]!;
    return 1 - dot;
  };
  // First pick: each token's second smallest distance over the whole column (its own distance included).
  const smallest = new Float64Array(n).fill(Infinity);
  const second = new Float64Array(n).fill(Infinity);
  const note = (a: number, v: number) => {
    if (v < smallest[a]!) {
      second[a] = smallest[a]!;
      smallest[a] = v;
    } else if (v < second[a]!) second[a] = v;
  };
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const dij = distance(i, j);
      note(i, dij);
      if (j !== i) note(j, dij);
    }
  }
  const chosen = new Uint8Array(n);
  const picked = [argmaxUnchosen(second, chosen)];
  chosen[picked[0]!] = 1;
  // Then: the distance of every token to the kept set, lowered by each new pick's row.
  const toKept = new Float64Array(n).fill(Infinity);
  while (picked.length < k) {
    const last = picked.at(-1)!;
    for (let j = 0; j < n; j++) toKept[j] = Math.min(toKept[j]!, distance(last, j));
    const next = argmaxUnchosen(toKept, chosen);
    chosen[next] = 1;
    picked.push(next);
  }
  return picked.sort((a, b) => a - b);
}

/** The first index of the largest score among the tokens not chosen yet. */
function argmaxUnchosen(scores: Float64Array, chosen: Uint8Array): number {
  let best = -1;
  for (let j = 0; j < scores.length; j++) if (!chosen[j] && (best < 0 || scores[j]! > scores[best]!)) best = j;
  return best;
}
