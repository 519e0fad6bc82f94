/**
 * FastV (Chen et al. 2024, arXiv 2403.06764): after layer K, drop the R share of the turn's visual tokens
 * least attended by the last prompt token (heads averaged); original positions kept; the drop stays for
 * every later layer and turn.
 */
import { budgetLabel, policyFieldError } from '../budget.js';
import type { SparsityMethod } from '../method.js';

export type FastVPolicy = { method: 'fastv'; layer: number; dropRatio: number };

export const fastv: SparsityMethod<FastVPolicy> = {
  name: 'fastv',
  summary: 'FastV: after layer K drop the R least-attended visual tokens by the last prompt token (arXiv 2403.06764)',
  validate(v) {
    const { layer, dropRatio } = v;
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 1) policyFieldError('policy.layer', `must be an integer ≥ 1, got ${String(layer)}`);
    if (typeof dropRatio !== 'number' || !(dropRatio >= 0 && dropRatio < 1))
      policyFieldError('policy.dropRatio', `must be in [0, 1), got ${String(dropRatio)}`);
    return { method: 'fastv', layer, dropRatio };
  },
  label: (p) => `FastV K=${p.layer} R=${budgetLabel({ ratio: p.dropRatio })}`,
  cli: {
    flags: {
      'fastv-layer': { type: 'string', arg: 'K', help: 'FastV: drop after layer K (default 2)' },
      'fastv-drop': { type: 'string', arg: 'R', help: 'FastV: share of visual tokens dropped (default 0.5)' },
    },
    policy: (v) => ({ method: 'fastv', layer: Number(v['fastv-layer'] ?? 2), dropRatio: Number(v['fastv-drop'] ?? 0.5) }),
  },
  drops: (p) => [{ layer: p.layer, keep: (n) => n - Math.round(p.dropRatio * n) }],
};
