/**
 * Run-level numbers the comparison and sweep views read: the policy's label, stage times, decode latency,
 * kept and attended counts, fidelity — and the Pareto front of a sweep. Pure functions of a run model.
 *
 * The page knows no sparsity method: it prints the label the engine wrote in run.start, and tells runs
 * apart by what their traces hold. Only 'dense' is named, as the reference every other run is measured by.
 */
import { STAGES, stageTotals } from './run-model.js';
import { orderedTurns } from './run-queries.js';

/**
 * @typedef {import('../../../src/trace/schema.js').PolicyValue} PolicyValue
 * @typedef {import('./run-model.js').RunModel} RunModel
 * @typedef {import('./run-model.js').TurnStage} TurnStage
 */

/** The policy method of the reference run (src/sparsity's `DENSE`): what fidelity is measured against. */
export const DENSE_METHOD = 'dense';

/**
 * Whether a run (its run.start, or the server's run summary) is a dense run.
 * @param {{ policy?: PolicyValue | null } | null | undefined} start
 */
export function isDense(start) {
  return start?.policy?.method === DENSE_METHOD;
}

/** @param {number} x */
function pct(x) {
  return `${+(x * 100).toFixed(1)}%`;
}

/**
 * A budget as sparsity policies write one — `{ ratio }`, `{ count }`, or an object holding one as `budget`
 * (src/sparsity/policy.ts) — printed as "50%" or "128"; null for any other value.
 * @param {unknown} v
 * @returns {string | null}
 */
function budgetText(v) {
  if (typeof v !== 'object' || v === null) return null;
  const b = /** @type {Record<string, unknown>} */ (v);
  if (typeof b.ratio === 'number') return pct(b.ratio);
  if (typeof b.count === 'number') return String(b.count);
  return 'budget' in b ? budgetText(b.budget) : null;
}

/**
 * One field of a policy value as label text: budgets, numbers and lists of numbers; null for the rest
 * (sources, modes and flags, which the engine's own label names where they matter).
 * @param {unknown} v
 * @returns {string | null}
 */
function fieldText(v) {
  if (typeof v === 'number') return String(+v.toPrecision(4));
  if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number')) return v.map(fieldText).join('/');
  return budgetText(v);
}

/**
 * A short human label of a run's policy: the one the engine wrote in run.start (or the server's run
 * summary), else — for traces written without one — the method and its budget fields, printed the same
 * way whatever the method ("sparsevila keep 50% · retrieve 25%", "fastv layer 2 · dropRatio 0.5").
 * @param {{ policy?: PolicyValue | null, label?: string | null } | null | undefined} start
 */
export function policyLabel(start) {
  if (typeof start?.label === 'string') return start.label;
  const policy = start?.policy;
  if (!policy) return 'unknown policy';
  const fields = Object.entries(policy).flatMap(([k, v]) => {
    const text = k === 'method' ? null : fieldText(v);
    return text == null ? [] : [`${k} ${text}`];
  });
  return [String(policy.method), fields.join(' · ')].filter(Boolean).join(' ');
}

/**
 * Point labels of one group of runs (one method): their policy labels without the first word when every
 * label of the group starts with it — the method's name, which the group's legend entry already says.
 * @param {readonly string[]} labels
 */
export function pointLabels(labels) {
  const first = (/** @type {string} */ l) => l.split(' ')[0];
  const shared = labels.every((l) => l.includes(' ') && first(l) === first(labels[0]));
  return labels.map((l) => (shared ? l.slice(l.indexOf(' ') + 1) : l));
}

/** @param {readonly number[]} xs */
function mean(xs) {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/**
 * A fidelity metric that should be a number (the schema's fidelity metrics also hold lists).
 * @param {number | number[] | null | undefined} v
 */
export const numberOf = (v) => (typeof v === 'number' ? v : null);

/**
 * Everything one run reports, aggregated over its turns. Missing numbers are null.
 * @param {RunModel} m
 */
export function runSummary(m) {
  const turns = orderedTurns(m);
  const stages = /** @type {Record<TurnStage, number>} */ (Object.fromEntries(STAGES.map((s) => [s, 0])));
  for (const t of turns) {
    const st = stageTotals(t);
    for (const s of STAGES) stages[s] += st[s];
  }
  const steps = turns.flatMap((t) => t.steps);
  const ended = turns.flatMap((t) => (t.metrics ? [t.metrics] : []));
  /** @param {string} key */
  const sum = (key) => (ended.length ? ended.reduce((a, mt) => a + (mt[key] ?? 0), 0) : null);
  const fid = turns.flatMap((t) => (t.fidelity ? [t.fidelity] : []));
  // Token agreement over all compared steps; KL as the mean of each turn's per-step KL, weighted by steps.
  const fidSteps = fid.reduce((a, f) => a + (numberOf(f.steps) ?? 0), 0);
  /** @param {string} key */
  const weighted = (key) =>
    fid.length
      ? fidSteps > 0
        ? fid.reduce((a, f) => a + (numberOf(f[key]) ?? 0) * (numberOf(f.steps) ?? 0), 0) / fidSteps
        : mean(fid.map((f) => numberOf(f[key]) ?? 0))
      : null;
  let keptTokens = 0;
  let totalTokens = 0;
  for (const k of m.kept.values()) {
    keptTokens += k.kept.length;
    totalTokens += k.total;
  }
  const recall = fid.flatMap((f) => {
    const r = f.retrievalRecall;
    // JSON writes a non-finite recall as null.
    return Array.isArray(r) ? [mean(/** @type {(number | null)[]} */ (r).flatMap((x) => (x == null ? [] : [x])))] : [];
  });
  const decodeMs = mean(steps.map((s) => s.ms));
  const totalSeconds = sum('totalSeconds');
  const prefillSeconds = sum('prefillSeconds');
  return {
    run: m.run,
    label: policyLabel(m.start),
    method: m.start?.policy?.method ?? 'unknown',
    dense: isDense(m.start),
    model: m.start?.model ?? null,
    turns: turns.length,
    images: m.images.size || m.kept.size,
    stages,
    /** Mean decode step latency (ms per token). */
    decodeMsPerToken: decodeMs,
    /** End to end: every turn's total, ms. */
    endToEndMs: totalSeconds == null ? null : totalSeconds * 1000,
    ttftMs: ended.length ? mean(ended.map((mt) => (mt.firstTokenSeconds ?? 0) * 1000)) : null,
    prefillMs: prefillSeconds == null ? null : prefillSeconds * 1000,
    tokensPerSecond: ended.length ? mean(ended.map((mt) => mt.decodeTokensPerSecond ?? 0)) : null,
    generatedTokens: sum('generatedTokens'),
    keptTokens: m.kept.size ? keptTokens : null,
    totalTokens: m.kept.size ? totalTokens : null,
    meanVisualAttended: mean(steps.map((s) => s.visualAttended)),
    meanAttended: mean(steps.map((s) => s.attended)),
    hasFidelity: fid.length > 0,
    tokenAgreement: weighted('tokenAgreement'),
    meanKl: weighted('meanKl'),
    retrievalRecall: recall.length ? mean(recall.map((x) => x ?? 0)) : null,
    answers: turns.map((t) => t.answer ?? t.tokens.join('')),
  };
}
/** @typedef {ReturnType<typeof runSummary>} RunSummary */

/**
 * Indices of the Pareto-optimal points: no other point is at least as good on both axes and better on one.
 * `xBetter`/`yBetter`: 'min' or 'max'. Points missing a coordinate are on no front. Returned in ascending x.
 * @param {readonly { x: number | null | undefined, y: number | null | undefined }[]} points
 * @param {{ xBetter?: 'min' | 'max', yBetter?: 'min' | 'max' }} [better]
 */
export function paretoFront(points, { xBetter = 'min', yBetter = 'min' } = {}) {
  const sx = xBetter === 'min' ? 1 : -1;
  const sy = yBetter === 'min' ? 1 : -1;
  const ok = points.map((p, i) => ({ i, x: sx * (p.x ?? NaN), y: sy * (p.y ?? NaN) })).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const front = ok.filter((p) => !ok.some((q) => q !== p && q.x <= p.x && q.y <= p.y && (q.x < p.x || q.y < p.y)));
  return front.sort((a, b) => sx * (a.x - b.x)).map((p) => p.i);
}

/**
 * Ratio b / a, or null when either is missing or a is 0.
 * @param {number | null | undefined} a
 * @param {number | null | undefined} b
 */
export function ratio(a, b) {
  return a == null || b == null || a === 0 ? null : b / a;
}
