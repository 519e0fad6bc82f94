/**
 * SparseVILA (Khaki et al., ICCV 2025, arXiv 2510.17777), decoupled visual sparsity (docs/design.md, "The
 * SparseVILA path"):
 *   prefill  query-agnostic pruning: keep each image's (or the turn's) top tokens by the vision tower's own
 *            salience; the rest never enter the LLM;
 *   decode   query-aware retrieval: every turn, each LLM layer scores the retained visual tokens by the
 *            attention mass of the turn's question and its decode steps attend only its top tokens
 *            (sparsity/retrieve.ts). The next turn re-scores against the full retained cache.
 * Beyond the paper, retrieval can follow the answer (`retrieve.refreshEvery`: a long answer's decode re-ranks
 * every N steps by a dense step's attention) and spend a different budget in each layer (`retrieve.perLayer`).
 */
import { budgetLabel, parseBudget, policyFieldError, validateKeep, validateRetrieve, type Budget, type KeepBudget, type RetrieveBudget } from '../budget.js';
import { keepFromFlags, KEEP_FLAGS } from '../flags.js';
import { keepTopScores, keptUnderBudget } from '../keep.js';
import type { PositionMode, SparsityMethod } from '../method.js';
import { validateSalienceSource, type SalienceSource } from '../salience.js';

export type SparseVilaPolicy = { method: 'sparsevila'; keep: KeepBudget; retrieve: RetrieveBudget; salience: SalienceSource; positions: PositionMode };

export const sparsevila: SparsityMethod<SparseVilaPolicy> = {
  name: 'sparsevila',
  summary: 'SparseVILA: prune by vision-tower salience at prefill, retrieve per layer by the question at decode (arXiv 2510.17777)',
  validate(v) {
    const positions = v.positions ?? 'original';
    if (positions !== 'original' && positions !== 'compact') policyFieldError('policy.positions', `must be 'original' or 'compact', got ${String(positions)}`);
    return {
      method: 'sparsevila',
      keep: validateKeep(v.keep, 'policy.keep'),
      retrieve: validateRetrieve(v.retrieve, 'policy.retrieve'),
      salience: validateSalienceSource(v.salience ?? 'auto', 'policy.salience'),
      positions,
    };
  },
  label: (p) => `SparseVILA keep ${budgetLabel(p.keep.budget)} · retrieve ${retrieveLabel(p.retrieve)}`,
  cli: {
    flags: {
      ...KEEP_FLAGS,
      retrieve: { type: 'string', arg: 'B', help: 'visual tokens each layer attends per decode step, ratio or count; default 0.1' },
      'min-per-image': { type: 'string', arg: 'N', help: 'keep at least N retrieved tokens of every image / frame per layer (default 0)' },
      'per-kv-head': { type: 'boolean', help: "retrieve per KV head (union of each head's top-k) instead of heads summed" },
      'retrieve-per-layer': {
        type: 'string',
        arg: 'B,B,…',
        help: 'one retrieve budget per LLM layer (ratios or counts, comma-separated) in place of --retrieve',
      },
      'refresh-every': {
        type: 'string',
        arg: 'N',
        help: "every N decode steps, one dense step's attention re-ranks each layer's retrieval set (default 0: once per turn, the paper)",
      },
      'refresh-blend': { type: 'string', arg: 'A', help: "weight of the refresh step's attention against the question's, in [0, 1] (default 0.5)" },
      positions: { type: 'string', arg: 'M', help: 'original (default) or compact rotary positions for kept tokens' },
      salience: {
        type: 'string',
        arg: 'S',
        help:
          'auto (default: CLS on CLIP, attention received otherwise — on Qwen2-VL at its last full-attention block), cls, received, ' +
          'summary:I,J,… (mean attention from those leading tower tokens, indices 0–7), or block:N (attention received at tower block N)',
      },
    },
    policy: (v) => ({
      method: 'sparsevila',
      keep: keepFromFlags(v),
      retrieve: {
        budget: parseBudget(String(v.retrieve ?? '0.1'), '--retrieve'),
        minPerImage: Number(v['min-per-image'] ?? 0),
        perKvHead: v['per-kv-head'] ?? false,
        ...(typeof v['retrieve-per-layer'] === 'string' && {
          perLayer: v['retrieve-per-layer'].split(',').map((b, l): Budget => parseBudget(b, `--retrieve-per-layer (layer ${l})`)),
        }),
        ...(v['refresh-every'] !== undefined && { refreshEvery: Number(v['refresh-every']) }),
        ...(v['refresh-blend'] !== undefined && { refreshBlend: Number(v['refresh-blend']) }),
      },
      salience: salienceFlag(v.salience),
      positions: v.positions ?? 'original',
    }),
  },
  tune: {
    // Keep and retrieve shares around the paper's operating points (Table 2: 50% / 25% and neighbours), the
    // keep scope and per-frame floors that matter on videos, per-KV-head retrieval, and retrieval that follows
    // the answer (a refresh every 8 decode steps: one dense step in 8, for long answers such as captions).
    // Per-layer budgets (`retrieve.perLayer`) depend on the model's depth, which a method's space does not
    // know: set them by hand, or tune on a policy that has them.
    knobs: {
      keep: [0.25, 0.375, 0.5, 0.75, 1],
      keepScope: ['per-image', 'global'],
      keepMinPerImage: [0, 4],
      retrieve: [0.125, 0.25, 0.5, 0.75, 1],
      retrieveMinPerImage: [0, 2],
      perKvHead: [false, true],
      refreshEvery: [0, 8],
    },
    // Knobs that cannot change what a budget does are reset, so equal behaviour is one policy value (the
    // tuner runs each value once): a floor under a per-image keep, a scope or floor when all is kept or retrieved.
    policy: (c) => {
      const keepAll = c.keep === 1;
      const retrieveAll = c.retrieve === 1;
      return {
        method: 'sparsevila',
        keep: {
          budget: { ratio: c.keep },
          scope: keepAll ? 'per-image' : c.keepScope,
          minPerImage: keepAll || c.keepScope !== 'global' ? 0 : c.keepMinPerImage,
        },
        retrieve: {
          budget: { ratio: c.retrieve },
          minPerImage: retrieveAll ? 0 : c.retrieveMinPerImage,
          perKvHead: retrieveAll ? false : c.perKvHead,
          // Refreshing a set that holds every token changes nothing.
          ...(retrieveAll || !c.refreshEvery ? {} : { refreshEvery: c.refreshEvery }),
        },
      };
    },
  },
  salience: (p) => p.salience,
  prune: (p, tokens) => ({
    kept: keepTopScores(
      p.keep,
      tokens.salience.map((s) => s.scores),
    ),
  }),
  keptCount: (p, tokens) => keptUnderBudget(p.keep, tokens),
  positions: (p) => p.positions,
  retrieve: (p) => p.retrieve,
};

/** "25%", "50%/25%/25%/10%" with per-layer budgets; "· refresh every 8 (blend 0.5)" when it follows the answer. */
function retrieveLabel(r: RetrieveBudget): string {
  const budget = r.perLayer ? r.perLayer.map(budgetLabel).join('/') : budgetLabel(r.budget);
  return r.refreshEvery ? `${budget} · refresh every ${r.refreshEvery} (blend ${r.refreshBlend})` : budget;
}

/** `--salience`: a source name, `summary:I,J,…` or `block:N`. */
function salienceFlag(v: unknown): unknown {
  if (typeof v !== 'string') return v ?? 'auto';
  if (v.startsWith('summary:'))
    return {
      summary: v
        .slice(8)
        .split(',')
        .map((s) => Number(s.trim())),
    };
  if (v.startsWith('block:')) return { block: Number(v.slice(6).trim()) };
  return v;
}
