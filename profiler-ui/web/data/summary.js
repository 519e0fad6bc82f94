/**
 * Run-level numbers the comparison and sweep views read: a policy label, stage times, decode latency,
 * kept and attended counts, fidelity — and the Pareto front of a sweep. Pure functions of a run model.
 */
import { STAGES, stageTotals, turnList } from './run-model.js';

function pct(x) {
  return `${+(x * 100).toFixed(1)}%`;
}

function budgetLabel(b) {
  if (!b) return '?';
  return 'ratio' in b ? pct(b.ratio) : String(b.count);
}

/** A short human label for a sparsity policy value. */
export function policyLabel(policy) {
  if (!policy) return 'unknown policy';
  switch (policy.method) {
    case 'dense':
      return 'dense';
    case 'sparsevila':
      return `SparseVILA keep ${budgetLabel(policy.keep?.budget)} · retrieve ${budgetLabel(policy.retrieve?.budget)}`;
    case 'fastv':
      return `FastV K=${policy.layer} R=${pct(policy.dropRatio)}`;
    case 'pdrop':
      return `PyramidDrop @${(policy.layers ?? []).join('/')} keep ${(policy.keepRatios ?? []).map(pct).join('/')}`;
    case 'visionzip':
      return `VisionZip ${policy.dominant}+${policy.contextual}`;
    case 'random':
      return `random keep ${budgetLabel(policy.keep?.budget)}`;
    case 'stride':
      return `stride keep ${budgetLabel(policy.keep?.budget)}`;
    default:
      return String(policy.method);
  }
}

function mean(xs) {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** Everything one run reports, aggregated over its turns. Missing numbers are null. */
export function runSummary(m) {
  const turns = turnList(m).map((i) => m.turns.get(i));
  const stages = Object.fromEntries(STAGES.map((s) => [s, 0]));
  for (const t of turns) {
    const st = stageTotals(t);
    for (const s of STAGES) stages[s] += st[s];
  }
  const steps = turns.flatMap((t) => t.steps);
  const ended = turns.filter((t) => t.metrics);
  const sum = (key) => (ended.length ? ended.reduce((a, t) => a + (t.metrics[key] ?? 0), 0) : null);
  const fid = turns.filter((t) => t.fidelity);
  // Token agreement over all compared steps; KL as the mean of each turn's per-step KL, weighted by steps.
  const fidSteps = fid.reduce((a, t) => a + (t.fidelity.steps ?? 0), 0);
  const weighted = (key) =>
    fid.length ? (fidSteps > 0 ? fid.reduce((a, t) => a + (t.fidelity[key] ?? 0) * (t.fidelity.steps ?? 0), 0) / fidSteps : mean(fid.map((t) => t.fidelity[key] ?? 0))) : null;
  let keptTokens = 0;
  let totalTokens = 0;
  for (const k of m.kept.values()) {
    keptTokens += k.kept.length;
    totalTokens += k.total;
  }
  const recall = fid.flatMap((t) => (Array.isArray(t.fidelity.retrievalRecall) ? [mean(t.fidelity.retrievalRecall.filter((x) => x != null))] : []));
  const decodeMs = mean(steps.map((s) => s.ms));
  const totalSeconds = sum('totalSeconds');
  return {
    run: m.run,
    label: policyLabel(m.start?.policy),
    method: m.start?.policy?.method ?? 'unknown',
    model: m.start?.model ?? null,
    turns: turns.length,
    images: m.images.size || m.kept.size,
    stages,
    /** Mean decode step latency (ms per token). */
    decodeMsPerToken: decodeMs,
    /** End to end: every turn's total, ms. */
    endToEndMs: totalSeconds == null ? null : totalSeconds * 1000,
    ttftMs: ended.length ? mean(ended.map((t) => (t.metrics.firstTokenSeconds ?? 0) * 1000)) : null,
    prefillMs: sum('prefillSeconds') == null ? null : sum('prefillSeconds') * 1000,
    tokensPerSecond: ended.length ? mean(ended.map((t) => t.metrics.decodeTokensPerSecond ?? 0)) : null,
    generatedTokens: sum('generatedTokens'),
    keptTokens: m.kept.size ? keptTokens : null,
    totalTokens: m.kept.size ? totalTokens : null,
    meanVisualAttended: mean(steps.map((s) => s.visualAttended)),
    meanAttended: mean(steps.map((s) => s.attended)),
    hasFidelity: fid.length > 0,
    tokenAgreement: weighted('tokenAgreement'),
    meanKl: weighted('meanKl'),
    retrievalRecall: recall.length ? mean(recall) : null,
    answers: turns.map((t) => t.answer ?? t.tokens.join('')),
  };
}

/**
 * Indices of the Pareto-optimal points: no other point is at least as good on both axes and better on one.
 * `xBetter`/`yBetter`: 'min' or 'max'. Returned in ascending x.
 */
export function paretoFront(points, { xBetter = 'min', yBetter = 'min' } = {}) {
  const sx = xBetter === 'min' ? 1 : -1;
  const sy = yBetter === 'min' ? 1 : -1;
  const ok = points.map((p, i) => ({ i, x: sx * p.x, y: sy * p.y })).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const front = ok.filter((p) => !ok.some((q) => q !== p && q.x <= p.x && q.y <= p.y && (q.x < p.x || q.y < p.y)));
  return front.sort((a, b) => sx * (a.x - b.x)).map((p) => p.i);
}

/** Ratio b / a, or null when either is missing or a is 0. */
export function ratio(a, b) {
  return a == null || b == null || a === 0 ? null : b / a;
}
