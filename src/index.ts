/**
 * sparsevila-ts's public API: only the exports of this file (the package's `.` entry) are the package's
 * surface. Checkpoint writers for tests and benchmarks are the `./testing` entry (src/testing.ts); the
 * notebook kernel is `./kernel`. Everything else is internal and may change.
 */
export * from './errors.js';

// Loading a checkpoint, and the options that reach onnxruntime.
export { loadModel, Model, AWQ_CALIBRATION_ROWS, type LoadOptions } from './session/model.js';
export type { ExecutionProvider, SessionSettings } from './runtime/ort-session.js';
export type { WeightPrecision } from './graph/layers.js';
export type { Int4BlockSize } from './weights/int4.js';
export type { CalibrationSample } from './quant/calibration-set.js';
export type { BuildProgress, BuildStage } from './graph/build.js';
export { defaultMemoryLimit, formatBytes, parseBytes } from './runtime/memory.js';
export type { LlavaSpec } from './checkpoint/spec.js';
export type { VideoInput, VideoSource } from './media/video.js';

// A conversation, whole (`ask`, `stream`) or step by step (encode → prune → prefill → retrieve → decode).
export { Chat } from './session/chat.js';
export { CHAT_DEFAULTS, type ChatOptions, type DecodeLimits } from './session/options.js';
export type { Sampling } from './session/sampling.js';
export type { TurnInput, Answer, Timings, TokenEvent, ImageInput, SparsitySummary, VideoFrames, FidelityReport } from './session/types.js';
export { EncodedImages, PrunedImages, PrefilledTurn, RetrievedTurn } from './session/steps.js';
export type { KeepOverride } from './session/prune.js';
export type { ImageSalience, SalienceSource } from './sparsity/salience.js';
export type { LayerRetrieval } from './sparsity/retrieve.js';

// Sparsity policies and methods: the built-in ones, and what a method of your own implements.
export * from './sparsity/registry.js';
export type * from './sparsity/method.js';
export {
  budgetCount,
  budgetLabel,
  parseBudget,
  policyFieldError,
  validateBudget,
  validateKeep,
  validateRetrieve,
  type Budget,
  type KeepBudget,
  type RetrieveBudget,
} from './sparsity/budget.js';
export { KEEP_FLAGS, keepFromFlags } from './sparsity/flags.js';
export { gatherKept, keepAll, keepTopScores, keptUnderBudget, splitByImage, type KeptTokens } from './sparsity/keep.js';
export { topK } from './sparsity/topk.js';

// Tuning: the cheapest policy that keeps a fidelity floor on a workload (`sparsevila tune`).
export * from './tune/index.js';

// Tracing: the event schema, the tracer, and its sinks (memory, JSON lines, Chrome trace, the live profiler).
export * from './trace/index.js';
