/** The checkpoint stage: config.json → LlavaSpec, and lazy float32 access to safetensors weights. */
export type * from './spec.js';
export { openCheckpoint, legacyName, detectLayout, type Checkpoint, type KeyLayout } from './checkpoint.js';
export { parseLlavaConfig } from './config.js';
export { readExampleConversations, EXAMPLES_FILE, type ExampleConversation, type ExampleTurn } from './examples.js';
export { parseQuantizationConfig, type WeightStorage, type AwqStorage } from './quantization.js';
export {
  SafetensorsFile,
  TensorStore,
  openSafetensors,
  openSafetensorsDir,
  openSharded,
  decodeToFloat32,
  INDEX_FILE,
  type TensorInfo,
  type DecodableDtype,
} from './safetensors.js';
export {
  writeSafetensors,
  writeSafetensorsCheckpoint,
  shardFileName,
  encodeFloats,
  roundToDtype,
  type WritableFloatDtype,
  type TensorChunk,
  type TensorData,
  type TensorToWrite,
  type WrittenSafetensors,
  type CheckpointWriteOptions,
  type WrittenCheckpoint,
} from './safetensors-writer.js';
export {
  writeRandomLlava,
  writeTinyLlava,
  gaussian,
  type RandomLlavaOptions,
  type TinyLlavaOptions,
  type RandomLlava,
  type TinyLlava,
  type RandomTensorInfo,
  type WrittenTensor,
} from './random-llava.js';
