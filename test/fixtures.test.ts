/**
 * The engine against the outside reference: `../shared/fixtures/` holds tiny Llava checkpoints with the
 * numbers transformers' math gives for them (computed independently, in PyTorch). Agreement in float32:
 * logits within 1e-3, greedy ids identical.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_FIXTURE, SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill } from '../dist/src/session/prefill.js';
import { llavaPixels } from './helpers/images.js';
import type { LlavaSpec } from '../dist/src/checkpoint/spec.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;

interface Expected {
  question: string;
  prompt: string;
  input_ids: number[];
  image_token_count: number;
  last_logits: number[];
  prompt_logits_rows: Record<string, number[]>;
  all_logits_sum: number;
  greedy_ids: number[];
  vision_cls_attention: number[] | null;
  vision_mean_attention: number[];
}

const FIXTURES = [
  ['llava-clip-llama-tiny', CLIP_FIXTURE],
  ['llava-siglip-qwen2-tiny', SIGLIP_FIXTURE],
] as const;

/** A fixture's reference numbers and its image. */
const reference = (dir: string) => ({
  expected: JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected,
  image: path.join(dir, 'image.png'),
});

describe.each(FIXTURES)('%s matches transformers', (_name, dir) => {
  const { expected, image } = reference(dir);
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(dir, { cacheDir: tempDir('fixture-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('builds the prompt ids from the question and the image through the tokenizer and chat template', async () => {
    const answer = await model.chat({ maxNewTokens: 1 }).ask({ images: [image], text: expected.question });
    expect(answer.promptTokenIds).toEqual(expected.input_ids);
    expect((model.spec as LlavaSpec).imageTokenCount).toBe(expected.image_token_count);
  });

  it('gives last-position logits within 1e-3 and identical greedy ids', async () => {
    const answer = await model.chat({ maxNewTokens: expected.greedy_ids.length }).ask({ images: [image], text: expected.question });
    expect(maxAbsDiff(answer.lastPromptLogits, expected.last_logits)).toBeLessThan(1e-3);
    expect(answer.tokenIds).toEqual(expected.greedy_ids);
  });

  it('gives every prompt position the reference logits (rows within 1e-3, sum within 1e-2)', async () => {
    const logits = await promptLogits(model, expected, image);
    const vocab = model.spec.text.vocabSize;
    for (const [row, values] of Object.entries(expected.prompt_logits_rows)) {
      expect(maxAbsDiff(logits.subarray(+row * vocab, (+row + 1) * vocab), values), `row ${row}`).toBeLessThan(1e-3);
    }
    expect(Math.abs(logits.reduce((a, b) => a + b, 0) - expected.all_logits_sum)).toBeLessThan(1e-2);
  });

  it('outputs the feature layer attention: CLS row and mean received, averaged over heads', async () => {
    const pixels = await llavaPixels(model, [image]);
    const vision = await model.runtime.vision(pixels.data, pixels.dims);
    expect(maxAbsDiff(vision.meanAttention!, expected.vision_mean_attention)).toBeLessThan(1e-5);
    if (expected.vision_cls_attention) {
      // The reference excludes CLS→CLS; the graph's row starts with it.
      expect(maxAbsDiff(vision.clsAttention!.subarray(1), expected.vision_cls_attention)).toBeLessThan(1e-5);
    }
  });
});

/** Every prompt position's logits, prefilled in chunks of 13: rows after the first chunk attend to a stored past. */
async function promptLogits(model: Model, expected: Expected, image: string): Promise<Float32Array> {
  const pixels = await llavaPixels(model, [image]);
  const vision = await model.runtime.vision(pixels.data, pixels.dims);
  const [n, tokens, size] = vision.featureDims as [number, number, number];
  const imageEmbeds = await model.runtime.project(vision.features, [n * tokens, size]);
  const cache = await model.runtime.createCache();
  const ids = expected.input_ids;
  const out = await prefill(model.runtime, {
    cache,
    ids,
    positions: ids.map((_, i) => i),
    imageTokenId: model.spec.imageTokenId,
    imageEmbeds,
    hidden: model.spec.text.hiddenSize,
    chunks: fixedChunks(13),
    logits: 'all',
  });
  await model.runtime.dropCache(cache);
  return out.logits;
}

/**
 * An fp16 KV cache (LoadOptions.kvCache) rounds every stored key and value to half (relative error ≤ 2⁻¹¹); the
 * attention still computes in float32. Its logit error against transformers' float32 numbers stays within
 * FP16_KV_LOGIT_BOUND of each row's logit spread (max − min) on these checkpoints — measured 3.6e-4 and 2.3e-4
 * (8.1e-3 and 1.3e-2 absolute, on logits up to 13 and 32) — and the greedy answers are the reference's.
 */
const FP16_KV_LOGIT_BOUND = 1e-3;

describe.each(FIXTURES)('%s with an fp16 KV cache', (name, dir) => {
  const { expected, image } = reference(dir);

  it(`keeps every prompt position within ${FP16_KV_LOGIT_BOUND} of its logit spread from the reference, and the greedy answer`, async () => {
    const cacheDir = tempDir('fixture-graphs-kv16');
    const full = await engine.loadModel(dir, { cacheDir, threads: 1 });
    const fp32 = await promptLogits(full, expected, image).finally(() => full.close());
    const half = await engine.loadModel(dir, { cacheDir, threads: 1, kvCache: 'fp16' });
    try {
      const logits = await promptLogits(half, expected, image);
      const vocab = half.spec.text.vocabSize;
      let worst = 0;
      for (const [row, values] of Object.entries(expected.prompt_logits_rows)) {
        const spread = Math.max(...values) - Math.min(...values);
        worst = Math.max(worst, maxAbsDiff(logits.subarray(+row * vocab, (+row + 1) * vocab), values) / spread);
      }
      console.log(`${name}: fp16 KV cache, prompt logits' largest error against transformers ${worst.toExponential(2)} of the row's spread`);
      expect(worst).toBeLessThan(FP16_KV_LOGIT_BOUND);
      // The half store is what the rows past the first chunk read: the logits differ from the float32 cache's.
      expect(maxAbsDiff(logits, fp32)).toBeGreaterThan(0);
      const answer = await half.chat({ maxNewTokens: expected.greedy_ids.length }).ask({ images: [image], text: expected.question });
      expect(answer.tokenIds).toEqual(expected.greedy_ids);
    } finally {
      await half.close();
    }
  });
});
