/** The budget tuner: `tune()`, its workloads and what it reports. */
export { tune, quality, type TuneOptions } from './tune.js';
export type { TuneResult, TuneOutcome, CandidateResult } from './result.js';
export { readWorkload, splitWorkload, scoreTurn, type Workload, type WorkloadConversation, type WorkloadTurn } from './workload.js';
export { demoWorkload, isDemoWorkload, DEMO_WORKLOADS, type DemoWorkloadName } from './demo-sets.js';
export { parseFloor, floorText, OBJECTIVES, type Floor, type Objective, type Measures } from './measures.js';
export { sampleCandidates, policyGrid, canonicalJson, type Candidate } from './space.js';
export { TrialRunSink, type ConversationMeasure, type TurnMeasure } from './trial.js';
export type { TrialRecord, LogHeader } from './log.js';
export { paretoSvg, reportMarkdown } from './report.js';
