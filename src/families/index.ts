/** The model families stage: which family a checkpoint is, and each family's readers and graphs. */
export { openCheckpoint, ensureModelGraph, familyFor, familyOf, type ModelSpec } from './registry.js';
export type { ModelFamily } from './family.js';
export { parseLlavaConfig } from './llava/config.js';
export { parseQwenConfig, type QwenVLSpec } from './qwen2-vl/config.js';
