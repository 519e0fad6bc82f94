/** The checkpoint stage: config.json's shared parts, and lazy float32 access to safetensors weights under a family's key layouts. */
export type * from './spec.js';
export {
  openCheckpointAs,
  readCheckpointConfig,
  layoutName,
  detectLayout,
  type Checkpoint,
  type CheckpointFormat,
  type KeyLayout,
  type KeyLayoutRule,
} from './checkpoint.js';
export { parseTextConfig, type TextConfigOptions, type TextDefaults } from './text-config.js';
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
