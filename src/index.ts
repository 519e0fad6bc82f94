/** sparsevila-ts: the engine's public API. */
export * from './errors.js';
export * from './checkpoint/index.js';
export {
  ensureGraph, graphCacheKey, defaultCacheDir, GRAPH_BUILDER_VERSION, type GraphKind, type GraphBuildOptions, type BuildProgress, type BuildStage,
} from './graph/build.js';
export { calibrationOutput } from './graph/decoder.js';
export * from './weights/index.js';
export type { WeightPrecision, LinearPrecision } from './graph/layers.js';
export * from './quant/index.js';
export { Runtime } from './runtime/runtime.js';
export type { RuntimeOptions, SessionSettings, ExecutionProvider } from './runtime/ort-session.js';
export { KvCache, KvView } from './runtime/kv-cache.js';
export { estimateTurnMemory, defaultMemoryLimit, formatBytes, parseBytes, type TurnFootprint, type MemoryEstimate } from './runtime/memory.js';
export { prefill, type PrefillInput, type PrefillOutput } from './session/prefill.js';
export { TokenSampler, argmax, type Sampling } from './session/sampling.js';
export { seededRandom } from './seeded-random.js';
export { OnnxGraphBuilder } from './graph/onnx-builder.js';
export { linear, type LinearOptions } from './graph/layers.js';
export { loadModel, Model, AWQ_CALIBRATION_ROWS, type LoadOptions } from './session/model.js';
export { Chat } from './session/chat.js';
export { CHAT_DEFAULTS, type ChatOptions, type DecodeLimits } from './session/options.js';
export type { TurnInput, Answer, Timings, TokenEvent, ImageInput, SparsitySummary, VideoFrames, FidelityReport } from './session/types.js';
export * from './text/index.js';
export * from './media/index.js';
export * from './sparsity/budget.js';
export * from './sparsity/registry.js';
export type * from './sparsity/method.js';
export { imageSalience, resolveSalienceSource, type ImageSalience, type SalienceSource } from './sparsity/salience.js';
export { keepAll, keepTopScores, type KeptTokens } from './sparsity/keep.js';
export { maxMinDiverse } from './sparsity/methods/divprune.js';
export { retrieve, type LayerRetrieval, type VisualRows } from './sparsity/retrieve.js';
export { topK } from './sparsity/topk.js';
export * from './trace/index.js';
export { EncodedImages, PrunedImages, PrefilledTurn, RetrievedTurn } from './session/steps.js';
export { DenseTwin, klDivergence } from './session/fidelity.js';
export { visionZip, type ZippedImage } from './sparsity/methods/visionzip.js';
export * as world from './world/index.js';
