/**
 * VisionZip (Yang et al. 2024, arXiv 2412.04467; dvlab-research/VisionZip `clip_encoder.py`), per image,
 * on the vision features before the projector:
 *   dominant   the `dominant` tokens with the highest salience (CLS attention summed over heads on CLIP;
 *              attention received on towers without CLS — the repo's SigLIP variant);
 *   contextual of the rest, `contextual` targets spaced uniformly (every ⌊n / contextual⌋-th); every other
 *              token joins the target whose key (feature-layer keys averaged over heads, L2-normalised) is most
 *              similar; a contextual token = target features + mean of the features that joined it.
 * Deviation, stated: the LLM sees the kept tokens ordered by patch index (targets where their patch is) with
 * compact positions, where the repo concatenates dominant then contextual tokens.
 */
import { InputError } from '../../errors.js';
import { concatFloat32 } from '../../arrays.js';
import { policyFieldError } from '../budget.js';
import type { SparsityMethod, VisualTokens, PruneResult } from '../method.js';
import { offsetsOf } from '../keep.js';
import { topK } from '../topk.js';

export type VisionZipPolicy = { method: 'visionzip'; dominant: number; contextual: number };

export const visionzip: SparsityMethod<VisionZipPolicy> = {
  name: 'visionzip',
  summary: 'VisionZip: per image, dominant salient tokens plus contextual merged ones (arXiv 2412.04467)',
  validate(v) {
    const { dominant, contextual } = v;
    if (typeof dominant !== 'number' || !Number.isInteger(dominant) || dominant < 1)
      policyFieldError('policy.dominant', `must be an integer ≥ 1, got ${String(dominant)}`);
    if (typeof contextual !== 'number' || !Number.isInteger(contextual) || contextual < 0)
      policyFieldError('policy.contextual', `must be an integer ≥ 0, got ${String(contextual)}`);
    return { method: 'visionzip', dominant, contextual };
  },
  label: (p) => `VisionZip ${p.dominant}+${p.contextual}`,
  cli: {
    flags: {
      dominant: { type: 'string', arg: 'N', help: 'VisionZip: dominant tokens per image (default 54)' },
      contextual: { type: 'string', arg: 'N', help: 'VisionZip: contextual (merged) tokens per image (default 10)' },
    },
    policy: (v) => ({ method: 'visionzip', dominant: Number(v.dominant ?? 54), contextual: Number(v.contextual ?? 10) }),
  },
  prune: (p, tokens) => zipImages(tokens, p.dominant, p.contextual),
  keptCount: (p, tokens) => tokens.reduce((a, n) => a + Math.min(n, p.dominant + p.contextual), 0),
  // The LLM sees a shorter sequence of merged tokens: compact positions, as in its repo.
  positions: () => 'compact',
};

/** VisionZip per image: dominant + merged contextual features, projected again. */
async function zipImages(t: VisualTokens, dominant: number, contextual: number): Promise<PruneResult> {
  const offsets = offsetsOf(t.tokensPerImage);
  const total = offsets.at(-1)!;
  const size = t.features.length / total;
  const keys = t.keyMetric;
  if (!keys) throw new InputError('OPTION_INVALID', 'VisionZip needs the feature layer keys, which this vision graph lacks', { subject: 'policy' });
  const keyDim = keys.length / total;
  const zipped = t.salience.map((s, img) =>
    visionZip(
      t.features.subarray(offsets[img]! * size, offsets[img + 1]! * size),
      s.scores,
      keys.subarray(offsets[img]! * keyDim, offsets[img + 1]! * keyDim),
      keyDim,
      dominant,
      contextual,
    ),
  );
  const features = concatFloat32(zipped.map((z) => z.features));
  return { kept: zipped.map((z) => z.tokens), embeds: await t.project(features, [features.length / size, size]) };
}

export interface ZippedImage {
  /** Patch index of each output token, ascending: dominant tokens and contextual targets. */
  tokens: number[];
  /** Their features [tokens.length, featureSize] (contextual ones merged). */
  features: Float32Array;
  /** Contextual target → the patch indices merged into it (the target excluded). */
  merged: Map<number, number[]>;
}

export function visionZip(
  features: Float32Array,
  salience: ArrayLike<number>,
  keys: Float32Array,
  keyDim: number,
  dominant: number,
  contextual: number,
): ZippedImage {
  const n = salience.length;
  const size = features.length / n;
  const dom = topK(salience, Math.min(dominant, n));
  const domSet = new Set(dom);
  const rest = Array.from({ length: n }, (_, i) => i).filter((i) => !domSet.has(i));
  const c = Math.min(contextual, rest.length);
  const step = Math.max(1, Math.floor(rest.length / Math.max(c, 1)));
  const targets = rest.filter((_, j) => j % step === 0).slice(0, c);
  const targetSet = new Set(targets);
  const unit = (i: number) => {
    const v = keys.subarray(i * keyDim, (i + 1) * keyDim);
    const norm = Math.hypot(...v) || 1;
    return Float64Array.from(v, (x) => x / norm);
  };
  const targetKeys = targets.map(unit);
  const merged = new Map<number, number[]>(targets.map((t) => [t, []]));
  for (const i of rest) {
    if (targetSet.has(i)) continue;
    const k = unit(i);
    let best = 0;
    let bestSim = -Infinity;
    targetKeys.forEach((tk, j) => {
      let sim = 0;
      for (let d = 0; d < keyDim; d++) sim += k[d]! * tk[d]!;
      if (sim > bestSim) {
        bestSim = sim;
        best = j;
      }
    });
    if (targets.length) merged.get(targets[best]!)!.push(i);
  }
  const tokens = [...dom, ...targets].sort((a, b) => a - b);
  const out = new Float32Array(tokens.length * size);
  tokens.forEach((t, o) => {
    const row = out.subarray(o * size, (o + 1) * size);
    row.set(features.subarray(t * size, (t + 1) * size));
    const group = merged.get(t);
    if (!group?.length) return;
    // target + mean(members), as the repo's `target_hidden + aggregated_hidden`.
    for (const m of group) for (let d = 0; d < size; d++) row[d]! += features[m * size + d]! / group.length;
  });
  return { tokens, features: out, merged };
}
