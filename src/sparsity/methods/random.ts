/** Random pruning at prefill (a baseline): a seeded random ranking in place of salience, original positions. */
import { seededRandom } from '../../seeded-random.js';
import { budgetLabel, policyFieldError, validateKeep, type KeepBudget } from '../budget.js';
import { keepFromFlags, KEEP_FLAGS } from '../flags.js';
import { keepTopScores, keptUnderBudget } from '../keep.js';
import type { SparsityMethod } from '../method.js';

export type RandomPolicy = { method: 'random'; keep: KeepBudget; seed: number };

export const random: SparsityMethod<RandomPolicy> = {
  name: 'random',
  summary: 'random pruning at prefill, seeded (a baseline)',
  validate(v) {
    const seed = v.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isInteger(seed)) policyFieldError('policy.seed', `must be an integer, got ${String(seed)}`);
    return { method: 'random', keep: validateKeep(v.keep, 'policy.keep'), seed };
  },
  label: (p) => `random keep ${budgetLabel(p.keep.budget)}`,
  cli: {
    flags: { ...KEEP_FLAGS, 'prune-seed': { type: 'string', arg: 'S', help: 'random pruning seed (default 0)' } },
    policy: (v) => ({ method: 'random', keep: keepFromFlags(v), seed: Number(v['prune-seed'] ?? 0) }),
  },
  prune(p, tokens) {
    // Image by image, the same draws as one array over all images: per-image and global see one sequence.
    const draw = seededRandom(p.seed);
    return {
      kept: keepTopScores(
        p.keep,
        tokens.tokensPerImage.map((n) => Float64Array.from({ length: n }, draw)),
      ),
    };
  },
  keptCount: (p, tokens) => keptUnderBudget(p.keep, tokens),
};
