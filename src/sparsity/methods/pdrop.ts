/**
 * PyramidDrop (Xing et al. 2024, arXiv 2410.17247): at each listed layer keep a share of the turn's visual
 * tokens, ranked by the last instruction token's attention among the survivors of the stage before.
 */
import { budgetCount, budgetLabel, policyFieldError } from '../budget.js';
import type { CliValues } from '../flags.js';
import type { SparsityMethod } from '../method.js';

export type PyramidDropPolicy = { method: 'pdrop'; layers: number[]; keepRatios: number[] };

/** A comma-separated flag as numbers, or the typed error naming the flag. */
function numberList(v: CliValues, flag: string, fallback: string): number[] {
  const value = String(v[flag] ?? fallback);
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => Number.isNaN(n))) policyFieldError(`--${flag}`, `must be comma-separated numbers; got '${value}'`);
  return list;
}

export const pdrop: SparsityMethod<PyramidDropPolicy> = {
  name: 'pdrop',
  summary: 'PyramidDrop: at each listed layer keep a share of the visual tokens by the last instruction token (arXiv 2410.17247)',
  validate(v) {
    const { layers, keepRatios } = v;
    if (!Array.isArray(layers) || !layers.length || !layers.every((l, i) => Number.isInteger(l) && l >= 1 && (i === 0 || l > layers[i - 1]))) {
      policyFieldError('policy.layers', `must be ascending layer indices ≥ 1, got ${JSON.stringify(layers)}`);
    }
    if (!Array.isArray(keepRatios) || keepRatios.length !== layers.length || !keepRatios.every((r) => typeof r === 'number' && r > 0 && r <= 1)) {
      policyFieldError('policy.keepRatios', `must give one ratio in (0, 1] per layer, got ${JSON.stringify(keepRatios)}`);
    }
    return { method: 'pdrop', layers: layers as number[], keepRatios: keepRatios as number[] };
  },
  label: (p) => `PyramidDrop @${p.layers.join('/')} keep ${p.keepRatios.map((ratio) => budgetLabel({ ratio })).join('/')}`,
  cli: {
    flags: {
      'pdrop-layers': { type: 'string', arg: 'L', help: 'PyramidDrop: comma-separated layers (default 8,16,24)' },
      'pdrop-keep': { type: 'string', arg: 'R', help: 'PyramidDrop: comma-separated keep ratios (default 0.5,0.25,0.125)' },
    },
    policy: (v) => ({ method: 'pdrop', layers: numberList(v, 'pdrop-layers', '8,16,24'), keepRatios: numberList(v, 'pdrop-keep', '0.5,0.25,0.125') }),
  },
  drops: (p) => p.layers.map((layer, i) => ({ layer, keep: (n) => budgetCount({ ratio: p.keepRatios[i]! }, n) })),
};
