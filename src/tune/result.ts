/** What a tune returns (and report.json holds): every candidate, the choice, and the held-out result. */
import type { PolicyValue } from '../sparsity/method.js';
import type { Measures, Objective } from './measures.js';

export interface CandidateResult {
  index: number;
  policy: PolicyValue;
  label: string;
  /** Rungs it ran, and its measures over every conversation it ran. */
  rungs: number;
  measures: Measures;
  /** Its objective cost over dense's on the same conversations. */
  costRatio: number;
  state: 'pass' | 'fail' | 'open';
  /** Why it stopped before the last rung, if it did. */
  stopped?: string;
  pareto: boolean;
}

export interface TuneResult {
  complete: true;
  workload: string;
  method: string;
  objective: Objective;
  floor: string;
  /** The chosen policy: a plain value `model.chat({ policy })`, `ask --policy-file` and `demo --policy-file` take. */
  policy: PolicyValue;
  label: string;
  /** Whether the choice's lower bound met the floor on the tuning conversations (else: the best found, or dense). */
  confirmed: boolean;
  /** z of the finalists' bounds: one-sided 95% shared by every candidate compared (Bonferroni). */
  confirmZ: number;
  split: { tuning: string[]; heldOut: string[] };
  candidates: CandidateResult[];
  /** Dense on the tuning conversations: the costs' reference. */
  dense: Measures;
  heldOut: {
    choice: Measures;
    dense: Measures;
    costRatio: number;
    meetsFloor: boolean;
    /** Token agreement and score per turn index (turn 1, 2, …) of the choice. */
    perTurn: { turn: number; n: number; agreement: number | null; score: number | null }[];
  };
  trials: { run: number; resumed: number };
}

export type TuneOutcome = TuneResult | { complete: false; trials: { run: number; resumed: number }; log?: string };
