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

describe.each([
  ['llava-clip-llama-tiny', CLIP_FIXTURE],
  ['llava-siglip-qwen2-tiny', SIGLIP_FIXTURE],
])('%s matches transformers', (_name, dir) => {
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const image = path.join(dir, 'image.png');
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
      chunkSize: 13,
      logits: 'all',
    });
    const vocab = model.spec.text.vocabSize;
    for (const [row, values] of Object.entries(expected.prompt_logits_rows)) {
      expect(maxAbsDiff(out.logits.subarray(+row * vocab, (+row + 1) * vocab), values), `row ${row}`).toBeLessThan(1e-3);
    }
    expect(Math.abs(out.logits.reduce((a, b) => a + b, 0) - expected.all_logits_sum)).toBeLessThan(1e-2);
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
