/** sparsevila-ts: the engine's public API. */
export * from './errors.js';
export * from './checkpoint/index.js';
export { ensureGraph, graphCacheKey, defaultCacheDir, GRAPH_BUILDER_VERSION, type GraphKind, type GraphBuildOptions, type BuildProgress } from './graph/build.js';
export { quantizeInt4, dequantizeInt4, type PackedInt4, type Int4BlockSize } from './graph/int4.js';
export type { WeightPrecision } from './graph/layers.js';
export { Runtime } from './runtime/runtime.js';
export type { RuntimeOptions, ExecutionProvider } from './runtime/ort-session.js';
export { KvCache, KvView } from './runtime/kv-cache.js';
export { prefill, type PrefillInput, type PrefillOutput } from './session/prefill.js';
export { TokenSampler, argmax, seededRandom, type Sampling } from './session/sampling.js';
export { OnnxGraphBuilder } from './graph/onnx-builder.js';
export { linear, type WeightReader, type LinearOptions } from './graph/layers.js';
export { loadModel, Model, type LoadOptions, type ImageInput } from './session/model.js';
export { Chat, type ChatOptions, type TurnInput, type Answer, type Timings, type TokenEvent } from './session/chat.js';
export * from './text/index.js';
export * from './media/index.js';
