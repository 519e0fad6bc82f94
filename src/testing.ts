/**
 * The package's `./testing` entry: checkpoints written in the Hugging Face layout, for tests, benchmarks and
 * notebooks that need a model without downloading one, and the synthetic world the demo model learned.
 */
export {
  writeRandomLlava,
  writeTinyLlava,
  gaussian,
  type RandomLlava,
  type RandomLlavaOptions,
  type TinyLlava,
  type TinyLlavaOptions,
} from './checkpoint/random-llava.js';
export { writeRandomQwenVL, writeTinyQwenVL, type RandomQwenVL, type RandomQwenVLOptions, type TinyQwenVL } from './checkpoint/random-qwen.js';
export {
  writeSafetensors,
  writeSafetensorsCheckpoint,
  type CheckpointWriteOptions,
  type TensorToWrite,
  type WrittenCheckpoint,
} from './checkpoint/safetensors-writer.js';
export * as world from './world/index.js';
