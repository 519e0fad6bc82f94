/**
 * A Qwen2.5-VL chat's trace for the profiler page and notebook-display tests: a tiny random checkpoint
 * (`writeTinyQwenVL`), two images of different native sizes in one turn — 112×56 px, a 2-row × 4-col grid of
 * merged tokens, and 56×84 px, a 3×2 grid — asked under a policy, every event kept in memory.
 */
import path from 'node:path';
import { writeTinyQwenVL } from '../../dist/src/testing.js';
import { MemorySink, Tracer, type TraceEvent } from '../../dist/src/trace/index.js';
import type { SparsityPolicy } from '../../dist/src/index.js';
import { engine, tempDir } from './engine.js';
import { noisePng } from './images.js';

/** Each image's size and the grid of merged tokens Qwen's processor gives it (28 px a merged token). */
export const QWEN_IMAGES = [
  { width: 112, height: 56, rows: 2, cols: 4 },
  { width: 56, height: 84, rows: 3, cols: 2 },
] as const;

export const QWEN_SPARSE = engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { count: 3 } } });

export interface QwenTraces {
  /** One run per policy, in the order asked. */
  runs: { run: string; events: TraceEvent[] }[];
}

/** One chat per policy over the same checkpoint and images: one question about both images. */
export async function qwenTraces(policies: readonly SparsityPolicy[] = [QWEN_SPARSE]): Promise<QwenTraces> {
  const dir = tempDir('qwen-trace');
  writeTinyQwenVL(path.join(dir, 'model'), { version: '2.5', seed: 5, std: 0.2, maxPixels: 112 * 112 });
  const images = await Promise.all(QWEN_IMAGES.map((im, i) => noisePng(path.join(dir, `image-${i}.png`), im.width, im.height, 11 + i)));
  const model = await engine.loadModel(path.join(dir, 'model'), { cacheDir: path.join(dir, 'graphs'), threads: 1 });
  try {
    const runs = [];
    for (const policy of policies) {
      const memory = new MemorySink();
      const tracer = new Tracer([memory]);
      const chat = model.chat({ policy, tracer, maxNewTokens: 4 });
      await chat.ask({ images, text: 'What differs between the two pictures?' });
      await chat.close();
      await tracer.close();
      runs.push({ run: tracer.run, events: memory.events });
    }
    return { runs };
  } finally {
    await model.close();
  }
}
