/**
 * What a candidate's trials add up to: its fidelity with confidence bounds, its accuracy where the workload
 * has references, its costs; and the floor and objective a tune is asked for, parsed and applied.
 */
import { InputError } from '../errors.js';
import { meanBounds, wilson, Z95 } from './stats.js';
import type { ConversationMeasure } from './trial.js';

export const OBJECTIVES = ['ttft', 'decode', 'e2e', 'kv-bytes'] as const;
export type Objective = (typeof OBJECTIVES)[number];

/**
 * The fidelity a tune must keep: token agreement with the dense twin at least `min`, mean KL at most `max`,
 * or (with reference answers) accuracy at most `points` percentage points under dense on the same conversations.
 */
export type Floor = { metric: 'agreement'; min: number } | { metric: 'kl'; max: number } | { metric: 'accuracy'; points: number };

/** `agreement=0.98`, `kl=0.05`, `accuracy=2` (points) → a Floor; OPTION_INVALID naming `--floor` otherwise. */
export function parseFloor(text: string): Floor {
  const m = /^(agreement|kl|accuracy)=([0-9.]+)$/.exec(text.trim());
  const v = m ? Number(m[2]) : NaN;
  const bad = (why: string) =>
    new InputError('OPTION_INVALID', `--floor ${text}: ${why}; e.g. agreement=0.98, kl=0.05, accuracy=2 (points under dense)`, { subject: '--floor' });
  if (!m || !Number.isFinite(v)) throw bad('expected METRIC=VALUE');
  if (m[1] === 'agreement') {
    if (!(v > 0 && v <= 1)) throw bad('agreement is a share in (0, 1]');
    return { metric: 'agreement', min: v };
  }
  if (m[1] === 'kl') return { metric: 'kl', max: v };
  if (v > 100) throw bad('accuracy is in percentage points, 0–100');
  return { metric: 'accuracy', points: v };
}

export const floorText = (f: Floor): string => (f.metric === 'agreement' ? `agreement=${f.min}` : f.metric === 'kl' ? `kl=${f.max}` : `accuracy=${f.points}`);

export interface Measures {
  conversations: number;
  turns: number;
  /** Token agreement with the dense twin over compared steps, with one-sided 95% Wilson bounds (stats.ts). */
  agreement: number;
  agreementLower: number;
  agreementUpper: number;
  steps: number;
  /** Mean KL per compared step, with normal bounds. */
  meanKl: number;
  klLower: number;
  klUpper: number;
  /** Mean answer score against references (null: no references), with Wilson bounds. */
  accuracy: number | null;
  accuracyLower: number | null;
  accuracyUpper: number | null;
  /** Costs per turn: time to first token (ms), decode (ms per token), end to end (ms: first token + decode, the twin's work excluded), KV bytes a decode step reads. */
  cost: Record<Objective, number>;
}

/** A candidate's measures over conversations, its bounds at `z` (default one-sided 95%). */
export function measures(convs: readonly ConversationMeasure[], z = Z95): Measures {
  const turns = convs.flatMap((c) => c.turns);
  const steps = turns.reduce((a, t) => a + (t.steps ?? 0), 0);
  const agreed = turns.reduce((a, t) => a + (t.agreed ?? 0), 0);
  const kl = meanBounds(
    turns.flatMap((t) => t.kl ?? []),
    z,
  );
  const scored = turns.flatMap((t) => (t.score === undefined ? [] : [t.score]));
  const scoreSum = scored.reduce((a, b) => a + b, 0);
  const acc = wilson(scoreSum, scored.length, z);
  const agree = wilson(agreed, steps, z);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const decodeSteps = turns.reduce((a, t) => a + t.decodeSteps, 0);
  return {
    conversations: convs.length,
    turns: turns.length,
    agreement: steps ? agreed / steps : 1,
    agreementLower: steps ? agree.lower : 1,
    agreementUpper: steps ? agree.upper : 1,
    steps,
    meanKl: steps ? kl.mean : 0,
    klLower: steps ? kl.lower : 0,
    klUpper: steps ? kl.upper : 0,
    accuracy: scored.length ? scoreSum / scored.length : null,
    accuracyLower: scored.length ? acc.lower : null,
    accuracyUpper: scored.length ? acc.upper : null,
    cost: {
      ttft: mean(turns.map((t) => t.ttft * 1000)),
      decode: decodeSteps ? (turns.reduce((a, t) => a + t.decodeSeconds, 0) * 1000) / decodeSteps : NaN,
      e2e: mean(turns.map((t) => (t.ttft + t.decodeSeconds) * 1000)),
      'kv-bytes': mean(turns.map((t) => t.kvBytes)),
    },
  };
}

/**
 * Where a candidate stands against the floor: `pass` when its 95% bound is on the right side, `fail` when the
 * other bound is on the wrong side, `open` while the interval straddles it. `estimate`: the point estimate
 * meets the floor. `dense`: the dense reference's measures on the same conversations (the accuracy floor's base).
 */
export function verdict(m: Measures, floor: Floor, dense: Measures): { state: 'pass' | 'fail' | 'open'; estimate: boolean } {
  let lo: number, hi: number, est: number, target: number;
  if (floor.metric === 'agreement') [lo, hi, est, target] = [m.agreementLower, m.agreementUpper, m.agreement, floor.min];
  else if (floor.metric === 'kl') [lo, hi, est, target] = [-m.klUpper, -m.klLower, -m.meanKl, -floor.max];
  else {
    if (m.accuracy === null || dense.accuracy === null)
      throw new InputError('OPTION_INVALID', '--floor accuracy=N needs reference answers in the workload ("answer" on its turns)', { subject: '--floor' });
    [lo, hi, est, target] = [m.accuracyLower!, m.accuracyUpper!, m.accuracy, dense.accuracy - floor.points / 100];
  }
  return { state: lo >= target ? 'pass' : hi < target ? 'fail' : 'open', estimate: est >= target };
}
