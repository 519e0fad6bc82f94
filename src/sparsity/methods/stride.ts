/** Uniform-stride pruning at prefill (a baseline): evenly spaced tokens, floor(i · n / k), original positions. */
import { budgetCount, budgetLabel, policyFieldError, validateKeep, type KeepBudget } from '../budget.js';
import { keepFromFlags, KEEP_FLAGS } from '../flags.js';
import { keptUnderBudget, splitByImage } from '../keep.js';
import type { SparsityMethod } from '../method.js';

export type StridePolicy = { method: 'stride'; keep: KeepBudget };

const even = (n: number, k: number) => Array.from({ length: k }, (_, i) => Math.floor((i * n) / k));

export const stride: SparsityMethod<StridePolicy> = {
  name: 'stride',
  summary: 'uniform-stride pruning at prefill (a baseline)',
  validate(v) {
    const keep = validateKeep(v.keep, 'policy.keep');
    if ((keep.minPerImage ?? 0) > 0) {
      policyFieldError(
        'policy.keep.minPerImage',
        'stride keeps evenly spaced tokens per image: a per-image minimum applies to ranked methods (sparsevila, random, divprune)',
      );
    }
    return { method: 'stride', keep };
  },
  label: (p) => `stride keep ${budgetLabel(p.keep.budget)}`,
  cli: { flags: KEEP_FLAGS, policy: (v) => ({ method: 'stride', keep: keepFromFlags(v) }) },
  prune(p, { tokensPerImage: tokens }) {
    if (p.keep.scope === 'per-image') return { kept: tokens.map((n) => even(n, budgetCount(p.keep.budget, n))) };
    const total = tokens.reduce((a, n) => a + n, 0);
    return { kept: splitByImage(even(total, budgetCount(p.keep.budget, total)), tokens) };
  },
  keptCount: (p, tokens) => keptUnderBudget(p.keep, tokens),
};
