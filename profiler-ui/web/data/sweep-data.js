/**
 * The sweep's numbers, without the page: each run's cost and quality on the chosen axes, grouped by
 * workload (data/run-identity.js), and each workload's Pareto front and dense references. Pure; the sweep
 * view (views/sweep.js) draws them.
 */
import { factsOfModel, runIdentity } from './run-identity.js';
import { paretoFront, runSummary } from './summary.js';

/**
 * @typedef {import('./run-model.js').RunModel} RunModel
 * @typedef {import('./summary.js').RunSummary} RunSummary
 * @typedef {import('./run-identity.js').RunIdentity} RunIdentity
 * @typedef {{ label: string, get: (s: RunSummary) => number | null }} XAxis
 * @typedef {XAxis & { better: 'min' | 'max' }} YAxis
 * @typedef {{ s: RunSummary, id: RunIdentity, x: number | null, y: number | null, pareto?: boolean }} SweepPoint
 * @typedef {{ key: string, label: string, points: SweepPoint[], front: SweepPoint[], dense: { s: RunSummary, id: RunIdentity, x: number }[] }} Workload
 */

/** @type {Record<string, XAxis>} */
export const X_AXES = {
  decode: { label: 'decode latency (ms / token)', get: (s) => s.decodeMsPerToken },
  ttft: { label: 'time to first token (ms, mean over turns)', get: (s) => s.ttftMs },
  // turn.end's totalSeconds; with fidelity on, today's engine counts the dense twin's work in it.
  e2e: { label: 'end to end (ms, all turns, as turn.end reports it)', get: (s) => s.endToEndMs },
};
/** @type {Record<string, YAxis>} */
export const Y_AXES = {
  kl: { label: 'mean KL vs dense (lower is better)', get: (s) => s.meanKl, better: 'min' },
  agreement: { label: 'token agreement with dense (higher is better)', get: (s) => s.tokenAgreement, better: 'max' },
};

/**
 * A run model's identity from its trace alone (no name): what the sweep groups by without the page.
 * @param {RunModel} m
 */
export const identityOfModel = (m) => runIdentity(m.run, m.start, m.start?.model?.dir, factsOfModel(m));

/**
 * The sweep's workloads — each with its points, its Pareto front and its dense references — from run
 * models, in order of first appearance. Pure.
 * @param {readonly RunModel[]} models
 * @param {string} xKey
 * @param {string} yKey
 * @param {(m: RunModel) => RunIdentity} [identityOf]
 * @returns {Workload[]}
 */
export function sweepWorkloads(models, xKey, yKey, identityOf = identityOfModel) {
  const X = X_AXES[xKey] ?? X_AXES.decode;
  const Y = Y_AXES[yKey] ?? Y_AXES.kl;
  /** @type {Map<string, Workload>} */
  const groups = new Map();
  for (const m of models) {
    const s = runSummary(m);
    const id = identityOf(m);
    if (!s.hasFidelity && !s.dense) continue;
    let g = groups.get(id.workload);
    if (!g) groups.set(id.workload, (g = { key: id.workload, label: id.workloadLabel, points: [], front: [], dense: [] }));
    const x = X.get(s);
    if (s.hasFidelity) g.points.push({ s, id, x, y: Y.get(s) });
    else if (x != null) g.dense.push({ s, id, x });
  }
  for (const g of groups.values()) {
    const order = paretoFront(g.points, { xBetter: 'min', yBetter: Y.better });
    for (const i of order) g.points[i].pareto = true;
    g.front = order.map((i) => g.points[i]);
  }
  return [...groups.values()];
}
