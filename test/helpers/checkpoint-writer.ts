/**
 * Test access to the random-checkpoint writer, which lives in the library (src/checkpoint/random-llava.ts,
 * src/checkpoint/safetensors-writer.ts), under the names the tests use, plus what only tests need: the
 * reference fixtures' paths and a safetensors corrupter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WritableFloatDtype } from '../../src/checkpoint/safetensors-writer.js';
import { writeTinyLlava as writeTinyLlavaImpl } from '../../src/checkpoint/random-llava.js';

export {
  writeSafetensors,
  writeSafetensorsCheckpoint,
  encodeFloats as encode,
  roundToDtype as roundTo,
  type TensorToWrite,
} from '../../src/checkpoint/safetensors-writer.js';
export { writeTinyLlava, writeRandomLlava, gaussian, type TinyLlavaOptions, type TinyLlava, type WrittenTensor } from '../../src/checkpoint/random-llava.js';

export type Dtype = WritableFloatDtype;

/** Layers of `writeTinyEngineLlava`'s LLM. */
export const TINY_ENGINE_LAYERS = 4;

/**
 * A tiny CLIP + LLaMA Llava whose LLM has 4 layers and grouped KV heads (4 query heads on 2): the checkpoint the
 * engine-level sparsity tests share (retrieval per layer and per KV head, refreshes).
 */
export function writeTinyEngineLlava(dir: string): void {
  writeTinyLlavaImpl(dir, {
    vision: 'clip',
    text: 'llama',
    layout: 'legacy',
    textLayers: TINY_ENGINE_LAYERS,
    textHidden: 64,
    textHeads: 4,
    textKvHeads: 2,
    vocab: 300,
    imageSize: 28,
    patchSize: 7,
    seed: 11,
    std: 0.08,
  });
}

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES_DIR = path.resolve(REPO_ROOT, '../shared/fixtures');
export const CLIP_FIXTURE = path.join(FIXTURES_DIR, 'llava-clip-llama-tiny');
export const SIGLIP_FIXTURE = path.join(FIXTURES_DIR, 'llava-siglip-qwen2-tiny');

export type CorruptKind = 'truncate' | 'bad-json' | 'header-too-long' | 'bad-offsets';

/**
 * Damage a written safetensors file in place. `truncate`: drop the last `bytes` (default 16) so the last
 * tensor runs past the end. `bad-json`: overwrite the header with non-JSON. `header-too-long`: the length
 * prefix claims more bytes than the file has. `bad-offsets`: first tensor's data_offsets disagree with its shape.
 */
export function corruptSafetensors(file: string, kind: CorruptKind, bytes = 16): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  if (kind === 'truncate') fs.writeFileSync(file, buf.subarray(0, buf.length - bytes));
  else if (kind === 'header-too-long') {
    buf.writeBigUInt64LE(BigInt(buf.length * 2), 0);
    fs.writeFileSync(file, buf);
  } else if (kind === 'bad-json') {
    buf.fill(0x7b, 8, 8 + n); // '{{{{…' is not JSON
    fs.writeFileSync(file, buf);
  } else {
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    const first = Object.keys(header).find((k) => k !== '__metadata__')!;
    header[first].data_offsets[1] -= 2;
    const tensorBytes = buf.subarray(8 + n);
    writeRawHeader(file, header, tensorBytes);
  }
}

function writeRawHeader(file: string, header: unknown, data: Uint8Array): void {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, json, data]));
}
