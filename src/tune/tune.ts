/**
 * `tune(model, workload, options)`: the cheapest policy of a method that keeps a fidelity floor, searched on
 * part of the workload and reported on the rest.
 *
 * Search: successive halving over conversations (Jamieson & Talwalkar 2016; Karnin et al. 2013), with the
 * floor judged by confidence bounds (stats.ts). Every candidate first runs on a few conversations; after each
 * rung, a candidate whose bound says it is below the floor stops, anything costlier than the cheapest
 * candidate already known to pass stops, and of the rest the cheaper half (and the one surest to keep the
 * floor, a fallback) go on to twice the conversations. Runs are spent where the answer is uncertain: near the floor, at low cost.
 * The survivors of the last rung have run every tuning conversation; the choice is the cheapest whose lower
 * bound, corrected for the number of candidates compared, meets the floor there (else the surest of those
 * whose estimate does, else dense). It then runs on the held-out conversations, with dense beside it, and that is
 * the result the report gives.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { Model } from '../session/model.js';
import type { PolicyValue } from '../sparsity/method.js';
import { DENSE, policyLabel } from '../sparsity/registry.js';
import type { TraceSink } from '../trace/schema.js';
import { LOG_VERSION, TrialLog, type LogHeader, type TrialRecord } from './log.js';
import { floorText, measures, parseFloor, verdict, type Floor, type Measures, type Objective, OBJECTIVES } from './measures.js';
import { writeReport } from './report.js';
import type { CandidateResult, TuneOutcome, TuneResult } from './result.js';
import { canonicalJson, sampleCandidates, type Candidate } from './space.js';
import { paretoFront, zConfirm } from './stats.js';
import { DEFAULT_MAX_NEW_TOKENS, runTrial, type ConversationMeasure } from './trial.js';
import { splitWorkload, type Workload, type WorkloadConversation } from './workload.js';

export interface TuneOptions {
  /** The cost to minimise (default e2e: first token plus decode, per turn). */
  objective?: Objective;
  /** The fidelity to keep: a Floor or its text (default `agreement=0.98`). */
  floor?: Floor | string;
  /** The method whose space is searched (default sparsevila). */
  method?: string;
  /** Candidates sampled from the space (default 16). */
  candidates?: number;
  /** Share of the conversations held out from the search to report the choice on (default 0.25). */
  heldOutShare?: number;
  /** Seeds the split and the candidate sample (default 0). */
  seed?: number;
  /** Folder for trials.jsonl (resumed from), policy.json and the report; without it nothing is written. */
  out?: string;
  /** Stop after this many new trials (the log keeps them; a later tune resumes). */
  maxTrials?: number;
  /** Each trial streams to it as one run, labelled with the trial and the workload (the profiler's sweep). */
  sink?: TraceSink;
  /** Called after each trial, run or read from the log. */
  onTrial?: (record: TrialRecord, resumed: boolean) => void;
}

interface Search {
  model: Model;
  workload: Workload;
  log?: TrialLog;
  sink?: TraceSink;
  onTrial?: TuneOptions['onTrial'];
  budget: number;
  run: number;
  resumed: number;
  n: number;
}

class TrialLimit extends Error {}

export async function tune(model: Model, workload: Workload, options: TuneOptions = {}): Promise<TuneOutcome> {
  const objective = options.objective ?? 'e2e';
  if (!OBJECTIVES.includes(objective))
    throw new InputError('OPTION_INVALID', `objective must be one of ${OBJECTIVES.join(', ')}, got ${String(objective)}`, { subject: 'objective' });
  const floor = typeof options.floor === 'string' || options.floor === undefined ? parseFloor(options.floor ?? 'agreement=0.98') : options.floor;
  const method = options.method ?? 'sparsevila';
  const count = options.candidates ?? 16;
  const heldOutShare = options.heldOutShare ?? 0.25;
  const seed = options.seed ?? 0;
  if (!(Number.isInteger(count) && count >= 1))
    throw new InputError('OPTION_INVALID', `candidates must be an integer ≥ 1, got ${count}`, { subject: 'candidates' });
  if (!(heldOutShare > 0 && heldOutShare < 1))
    throw new InputError('OPTION_INVALID', `heldOutShare must be in (0, 1), got ${heldOutShare}`, { subject: 'heldOutShare' });
  const candidates = sampleCandidates(method, count, seed);
  const { tuning, heldOut } = splitWorkload(workload.conversations, heldOutShare, seed);
  const header: LogHeader = {
    tune: LOG_VERSION,
    workload: workload.name,
    method,
    objective,
    floor: floorText(floor),
    seed,
    candidates: count,
    heldOutShare,
    maxNewTokens: workload.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
    conversations: workload.conversations.map((c) => c.id),
  };
  let log: TrialLog | undefined;
  if (options.out) {
    fs.mkdirSync(options.out, { recursive: true });
    log = TrialLog.open(path.join(options.out, 'trials.jsonl'), header);
  }
  const s: Search = {
    model,
    workload,
    log,
    sink: options.sink,
    onTrial: options.onTrial,
    budget: options.maxTrials ?? Infinity,
    run: 0,
    resumed: 0,
    n: log?.trials.size ?? 0,
  };
  try {
    const result = await search(s, candidates, tuning, heldOut, objective, floor, method);
    if (options.out) writeReport(options.out, result);
    return result;
  } catch (err) {
    if (err instanceof TrialLimit) return { complete: false, trials: { run: s.run, resumed: s.resumed }, log: log?.file };
    throw err;
  }
}

/** Runs a trial, or reads it from the log when a run before this one logged it. */
async function trial(
  s: Search,
  id: string,
  policy: PolicyValue,
  label: string,
  conversations: readonly WorkloadConversation[],
): Promise<ConversationMeasure[]> {
  const logged = s.log?.trials.get(id);
  // The header pins the settings; this pins the space: a method whose knobs changed since would map the id to
  // another policy, and the logged measures would be credited to the wrong one.
  if (logged && canonicalJson(logged.policy) !== canonicalJson(policy))
    throw new InputError(
      'OPTION_INVALID',
      `${s.log!.file}: trial ${id} ran ${logged.label}, but this tune's ${id} is ${label} (the log's candidates are not this tune's: another version of the method's space): use another --out folder`,
      {
        subject: s.log!.file,
      },
    );
  if (logged) {
    s.resumed++;
    s.onTrial?.(logged, true);
    return logged.conversations;
  }
  if (s.run >= s.budget) throw new TrialLimit();
  const t0 = performance.now();
  const trace = s.sink && { sink: s.sink, label: `trial ${s.n + 1} (${id}) · ${s.workload.name} · ${label}`, workload: s.workload.name };
  const measured = await runTrial(s.model, s.workload, policy, conversations, trace);
  const record: TrialRecord = { trial: id, n: ++s.n, policy, label, conversations: measured, seconds: (performance.now() - t0) / 1000 };
  s.log?.append(record);
  s.run++;
  s.onTrial?.(record, false);
  return measured;
}

async function search(
  s: Search,
  candidates: Candidate[],
  tuning: WorkloadConversation[],
  heldOut: WorkloadConversation[],
  objective: Objective,
  floor: Floor,
  method: string,
): Promise<TuneResult> {
  // Dense on every tuning conversation first: the reference every cost is a ratio of, and the accuracy floor's base.
  const denseRuns = await trial(s, 'dense-tuning', DENSE, policyLabel(DENSE), tuning);
  const denseOn = (ids: Iterable<string>) => {
    const set = new Set(ids);
    return measures(denseRuns.filter((c) => set.has(c.id)));
  };
  const { all, rungs, runs } = await halving(s, candidates, tuning, objective, floor, denseOn);
  const denseAll = denseOn(tuning.map((c) => c.id));
  // The finalists' verdicts again, at the bound corrected for every candidate compared (stats.ts, zConfirm).
  const z = zConfirm(candidates.length);
  const finalists = all.filter((c) => c.rungs === rungs).sort((a, b) => byCost(a, b, objective));
  for (const c of finalists) {
    c.measures = measures(runs.get(c.index)!, z);
    c.state = verdict(c.measures, floor, denseAll).state;
  }
  // The cheapest finalist whose bound meets the floor; failing that, of those whose estimate does, the one
  // closest to being confirmed (the highest lower bound); failing that, dense.
  const confirmed = finalists.find((c) => c.state === 'pass');
  const estimated = finalists
    .filter((c) => verdict(c.measures, floor, denseAll).estimate)
    .sort((a, b) => qualityLower(b.measures, floor) - qualityLower(a.measures, floor))[0];
  const choice = confirmed ?? estimated;
  const policy = choice?.policy ?? DENSE;
  const label = choice?.label ?? policyLabel(DENSE);
  const choiceHeld = policy.method === DENSE.method ? undefined : await trial(s, `heldout-c${choice!.index}`, policy, label, heldOut);
  const denseHeld = await trial(s, 'heldout-dense', DENSE, policyLabel(DENSE), heldOut);
  const held = measures(choiceHeld ?? denseHeld);
  const heldDense = measures(denseHeld);
  return {
    complete: true,
    workload: s.workload.name,
    method,
    objective,
    floor: floorText(floor),
    policy,
    label,
    confirmed: confirmed !== undefined,
    confirmZ: z,
    split: { tuning: tuning.map((c) => c.id), heldOut: heldOut.map((c) => c.id) },
    candidates: all,
    dense: denseAll,
    heldOut: {
      choice: held,
      dense: heldDense,
      costRatio: held.cost[objective] / heldDense.cost[objective],
      meetsFloor: verdict(held, floor, heldDense).estimate,
      perTurn: perTurn(choiceHeld ?? denseHeld),
    },
    trials: { run: s.run, resumed: s.resumed },
  };
}

/**
 * The rungs: rung r runs the survivors on the tuning conversations up to upTo(r), doubling to all of them at
 * the last rung; after each but the last, `halve` picks the survivors. Every candidate's result, front marked.
 */
async function halving(
  s: Search,
  candidates: Candidate[],
  tuning: WorkloadConversation[],
  objective: Objective,
  floor: Floor,
  denseOn: (ids: Iterable<string>) => Measures,
): Promise<{ all: CandidateResult[]; rungs: number; runs: Map<number, ConversationMeasure[]> }> {
  const T = tuning.length;
  const rungs = Math.max(1, Math.ceil(Math.log2(candidates.length)));
  const upTo = (r: number) => Math.min(T, Math.max(2, Math.ceil(T / 2 ** (rungs - 1 - r))));
  const runs = new Map<number, ConversationMeasure[]>(candidates.map((c) => [c.index, []]));
  const results = new Map<number, CandidateResult>();
  let alive = candidates;
  for (let r = 0; r < rungs && alive.length; r++) {
    const batch = tuning.slice(r === 0 ? 0 : upTo(r - 1), upTo(r));
    for (const c of alive) {
      if (batch.length) runs.get(c.index)!.push(...(await trial(s, `c${c.index}-r${r}`, c.policy, c.label, batch)));
      const seen = runs.get(c.index)!;
      const m = measures(seen);
      const dense = denseOn(seen.map((x) => x.id));
      const state = verdict(m, floor, dense).state;
      results.set(c.index, {
        index: c.index,
        policy: c.policy,
        label: c.label,
        rungs: r + 1,
        measures: m,
        costRatio: m.cost[objective] / dense.cost[objective],
        state,
        pareto: false,
      });
    }
    if (r < rungs - 1) alive = halve(alive, results, objective, floor, r);
  }
  const all = [...results.values()].sort((a, b) => a.index - b.index);
  const front = new Set(paretoFront(all.map((c) => ({ cost: c.costRatio, quality: quality(c.measures, floor) }))).map((i) => all[i]!.index));
  for (const c of all) c.pareto = front.has(c.index);
  return { all, rungs, runs };
}

/** The rung's survivors: not below the floor, not costlier than the cheapest known to pass; the cheaper half, and the surest to keep the floor. */
function halve(alive: Candidate[], results: Map<number, CandidateResult>, objective: Objective, floor: Floor, rung: number): Candidate[] {
  const rs = alive.map((c) => results.get(c.index)!);
  const stop = (c: CandidateResult, why: string) => (c.stopped ??= `rung ${rung + 1}: ${why}`);
  rs.filter((c) => c.state === 'fail').forEach((c) => stop(c, 'below the floor (95% bound)'));
  const open = rs.filter((c) => c.state !== 'fail').sort((a, b) => byCost(a, b, objective));
  const firstPass = open.findIndex((c) => c.state === 'pass');
  const affordable = firstPass < 0 ? open : open.slice(0, firstPass + 1);
  open.slice(affordable.length).forEach((c) => stop(c, 'costlier than a candidate that passes'));
  const keep = affordable.slice(0, Math.ceil(affordable.length / 2));
  const safest = [...affordable].sort((a, b) => qualityLower(b.measures, floor) - qualityLower(a.measures, floor))[0];
  if (safest && !keep.includes(safest)) keep.push(safest);
  affordable.filter((c) => !keep.includes(c)).forEach((c) => stop(c, 'in the costlier half'));
  const kept = new Set(keep.map((c) => c.index));
  return alive.filter((c) => kept.has(c.index));
}

function byCost(a: CandidateResult, b: CandidateResult, objective: Objective): number {
  return a.measures.cost[objective] - b.measures.cost[objective] || b.measures.agreement - a.measures.agreement;
}

/** The floor's metric, higher is better: the sweep's y. */
export function quality(m: Measures, floor: Floor): number {
  return floor.metric === 'kl' ? -m.meanKl : floor.metric === 'accuracy' ? (m.accuracy ?? NaN) : m.agreement;
}

/** The floor metric's 95% bound on the unfavourable side, higher is better: how surely a candidate keeps the floor. */
function qualityLower(m: Measures, floor: Floor): number {
  return floor.metric === 'kl' ? -m.klUpper : floor.metric === 'accuracy' ? (m.accuracyLower ?? -Infinity) : m.agreementLower;
}

function perTurn(convs: ConversationMeasure[]): TuneResult['heldOut']['perTurn'] {
  const most = Math.max(0, ...convs.map((c) => c.turns.length));
  return Array.from({ length: most }, (_, k) => {
    const turns = convs.flatMap((c) => (c.turns[k] ? [c.turns[k]] : []));
    const steps = turns.reduce((a, t) => a + (t.steps ?? 0), 0);
    const scored = turns.flatMap((t) => (t.score === undefined ? [] : [t.score]));
    return {
      turn: k + 1,
      n: turns.length,
      agreement: steps ? turns.reduce((a, t) => a + (t.agreed ?? 0), 0) / steps : null,
      score: scored.length ? scored.reduce((a, b) => a + b, 0) / scored.length : null,
    };
  });
}
