/**
 * A method's policy space, as candidates: its `tune` knobs (sparsity/method.ts) crossed into a grid, each
 * choice turned into a validated policy, equal policies merged, and a seeded sample of them taken. The tuner
 * knows no knob: what a knob means is the method's business.
 */
import { InputError } from '../errors.js';
import type { PolicyValue, TuneValue } from '../sparsity/method.js';
import { policyLabel, sparsityMethod, validatePolicy } from '../sparsity/registry.js';
import { seededRandom } from '../seeded-random.js';

export interface Candidate {
  /** Index in the sample: stable for a (method, count, seed), so a resumed tune finds its trials. */
  index: number;
  policy: PolicyValue;
  label: string;
  /** Canonical JSON of the policy: a trial's key in the log. */
  key: string;
}

/** Canonical JSON: keys sorted at every depth, so equal policies give equal text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** Every distinct policy the method's knobs give, in grid order. */
export function policyGrid(methodName: string): PolicyValue[] {
  const method = sparsityMethod(methodName);
  if (!method.tune)
    throw new InputError('OPTION_INVALID', `--method ${methodName}: the method declares no tuning space (SparsityMethod.tune)`, { subject: '--method' });
  const { knobs, policy } = method.tune;
  let choices: Record<string, TuneValue>[] = [{}];
  for (const [knob, values] of Object.entries(knobs)) choices = choices.flatMap((c) => values.map((v) => ({ ...c, [knob]: v })));
  const seen = new Map<string, PolicyValue>();
  for (const c of choices) {
    const p = validatePolicy(policy(c));
    seen.set(canonicalJson(p), p);
  }
  return [...seen.values()];
}

/**
 * `count` candidates drawn from the grid without replacement by a seeded shuffle (all of it when smaller).
 * Random sampling, not a coarse grid: with several knobs, a sample covers each knob's values far better than a
 * grid of the same size (Bergstra & Bengio 2012, "Random search for hyper-parameter optimization").
 */
export function sampleCandidates(methodName: string, count: number, seed: number): Candidate[] {
  const grid = policyGrid(methodName);
  const plain = new Map(leaves(grid[0]));
  const rand = seededRandom(seed ^ 0x7e11);
  for (let i = grid.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [grid[i], grid[j]] = [grid[j]!, grid[i]!];
  }
  return grid.slice(0, count).map((policy, index) => ({ index, policy, label: candidateLabel(policy, plain), key: canonicalJson(policy) }));
}

/** Policy fields as `a.b.c` paths and their values (leaves of the plain value). */
function leaves(v: unknown, prefix = ''): [string, unknown][] {
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).flatMap(([k, x]) => leaves(x, prefix ? `${prefix}.${k}` : k));
  return [[prefix, v]];
}

/** The policy with the field at `path` set to `value` (removed when undefined). */
function withLeaf(policy: PolicyValue, path: string, value: unknown): PolicyValue {
  const copy = structuredClone(policy) as Record<string, unknown>;
  const keys = path.split('.');
  let at = copy;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  if (value === undefined) delete at[keys.at(-1)!];
  else at[keys.at(-1)!] = value;
  return copy as PolicyValue;
}

/**
 * The method's label, plus the fields where the policy leaves the grid's first (its knobs' first values: a
 * method lists the plain setting first): two candidates with equal budgets but another scope or per-head
 * setting must not read the same. Fields the method's label already shows (budgets, a refresh: setting one
 * back to the plain value changes the label) are not repeated.
 */
function candidateLabel(policy: PolicyValue, plain: Map<string, unknown>): string {
  const label = policyLabel(policy);
  const extra = leaves(policy).filter(
    ([k, v]) => JSON.stringify(v) !== JSON.stringify(plain.get(k)) && policyLabel(withLeaf(policy, k, plain.get(k))) === label,
  );
  return [label, ...extra.map(([k, v]) => `${k} ${String(v)}`)].join(' · ');
}
