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
export { TokenSampler, argmax, seededRandom, type Sampling } from './session/sampling.js';
export { OnnxGraphBuilder } from './graph/onnx-builder.js';
export { linear, type LinearOptions } from './graph/layers.js';
export { loadModel, Model, AWQ_CALIBRATION_ROWS, type LoadOptions, type ImageInput } from './session/model.js';
export { Chat, type ChatOptions, type DecodeLimits, type TurnInput, type Answer, type Timings, type TokenEvent } from './session/chat.js';
export * from './text/index.js';
export * from './media/index.js';
export * from './sparsity/policy.js';
export { imageSalience, resolveSalienceSource, type ImageSalience } from './sparsity/salience.js';
export { selectKept, keepAll, type KeptTokens } from './sparsity/prune.js';
export { retrieve, type LayerRetrieval, type VisualRows } from './sparsity/retrieve.js';
export { topK } from './sparsity/topk.js';
export * from './trace/index.js';
export { EncodedImages, PrunedImages, PrefilledTurn, RetrievedTurn } from './session/turn.js';
export { DenseTwin, klDivergence, type FidelityReport } from './session/fidelity.js';
export { visionZip, type ZippedImage } from './sparsity/visionzip.js';
export * as world from './world/index.js';
