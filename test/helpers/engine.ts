/**
 * Test access to the engine. Tests import the compiled package by its name (its `exports` map points at
 * `dist/`, built by `npm test` first): the runtime starts its inference worker from compiled JS, and error
 * classes must be the same objects the engine throws. Unit tests of internal modules import those modules
 * from `dist/` directly.
 */
import path from 'node:path';
import * as engine from 'sparsevila-ts';
import { Runtime } from '../../dist/src/runtime/runtime.js';
import { fixedChunks } from '../../dist/src/runtime/memory.js';
import { prefill } from '../../dist/src/session/prefill.js';
import { tempDir } from './temp.js';

export { engine, tempDir };

/** One ORT thread per test process: vitest already runs two files at once on this 2-core machine. */
export const TEST_RUNTIME = { executionProvider: 'cpu' as const, intraOpThreads: 1 };

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Every position's logits of a text-only prompt (no images), prefilled in one chunk by a fresh runtime on `dir`.
 * `mrope`: the decoder takes M-RoPE rows (Qwen2-VL), which for text are the 1-D positions three times.
 */
export async function textPromptLogits(
  dir: string,
  tokens: number[],
  options: { precision: 'fp32' | 'fp16' | 'int4' | 'awq'; blockSize: 16 | 32 | 64 | 128; hidden: number; mrope?: boolean },
): Promise<Float32Array> {
  const rt = await Runtime.start(dir, { precision: options.precision, blockSize: options.blockSize, cacheDir: tempDir('graphs') }, TEST_RUNTIME);
  const positions = tokens.map((_, i) => i);
  try {
    const cache = await rt.createCache();
    return (
      await prefill(rt, {
        cache,
        ids: tokens,
        positions,
        positionRows: options.mrope ? [positions, positions, positions] : undefined,
        imageTokenId: -1,
        hidden: options.hidden,
        chunks: fixedChunks(tokens.length),
        logits: 'all',
      })
    ).logits;
  } finally {
    await rt.close();
  }
}
