/**
 * Qwen2-VL / Qwen2.5-VL through the whole engine: a chat on the reference fixtures gives transformers'
 * prompt ids, M-RoPE position ids, logits and greedy ids; on checkpoints the tests write (both key layouts,
 * images of several native sizes, several images in one prompt, an image in a later turn) the engine agrees
 * with itself as the math requires — a two-turn chat equals one long prompt, keep 100% / retrieve 100% equals
 * dense, a retrieval decode equals a dense decode masked to the same per-layer subsets — and SparseVILA prunes
 * by the tower's own attention, keeping the pruned tokens' original 3-D positions.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { drain, expectIncrementalEqualsRecompute, expectRetrievalEqualsMaskedDense } from './helpers/qwen-equivalence.js';
import { noisePng } from './helpers/images.js';
import { writeTinyQwenVL } from '../dist/src/testing.js';
import { familyOf } from '../dist/src/families/registry.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill, type PositionRows } from '../dist/src/session/prefill.js';
import { argmax } from '../dist/src/session/sampling.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
const FIXTURES = path.resolve(__dirname, '../../shared/fixtures');

interface Expected {
  question: string;
  input_ids: number[];
  position_ids: number[][];
  last_logits: number[];
  greedy_ids: number[];
  vision_full_attention_blocks: number[];
  vision_mean_attention_full_blocks: Record<string, number[]>;
}

describe.each(['qwen2_5_vl-tiny', 'qwen2_vl-tiny'])('a chat on %s matches transformers', (name) => {
  const dir = path.join(FIXTURES, name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const image = path.join(dir, 'image.png');
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(dir, { cacheDir: tempDir('qwen-chat-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('gives the prompt ids, M-RoPE position ids, last logits (1e-3) and greedy ids', async () => {
    const chat = model.chat({ maxNewTokens: expected.greedy_ids.length });
    const prefilled = await (await (await chat.encode([image])).prune()).prefill(expected.question);
    expect(prefilled.promptTokenIds).toEqual(expected.input_ids);
    expect(prefilled.positionRows!.map((r) => [...r])).toEqual(expected.position_ids);
    expect(maxAbsDiff(prefilled.lastPromptLogits, expected.last_logits)).toBeLessThan(1e-3);
    const answer = await drain(prefilled.retrieve().decode());
    expect(answer.tokenIds).toEqual(expected.greedy_ids);
  });

  it("scores salience by the last full-attention block's attention received, summed over each merged 2×2 unit", async () => {
    const encoded = await model.chat().encode([image]);
    const block = String(expected.vision_full_attention_blocks.at(-1));
    const patches = expected.vision_mean_attention_full_blocks[block]!;
    const perUnit = Array.from({ length: patches.length / 4 }, (_, u) => patches.slice(4 * u, 4 * u + 4).reduce((a, b) => a + b, 0));
    expect(encoded.salience[0]!.source).toBe('received');
    expect(maxAbsDiff(encoded.salience[0]!.scores, perUnit)).toBeLessThan(1e-5);
    expect(encoded.layouts[0]!.grid).toEqual(name === 'qwen2_5_vl-tiny' ? { t: 1, rows: 2, cols: 3 } : { t: 1, rows: 3, cols: 2 });
  });
  it('scores salience at another full-attention block when the policy names it, and refuses a block it does not score', async () => {
    const policy = (block: number) => ({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.5 } }, salience: { block } });
    const encoded = await model.chat({ policy: policy(1) }).encode([image]);
    const patches = expected.vision_mean_attention_full_blocks['1']!;
    const perUnit = Array.from({ length: patches.length / 4 }, (_, u) => patches.slice(4 * u, 4 * u + 4).reduce((a, b) => a + b, 0));
    expect(maxAbsDiff(encoded.salience[0]!.scores, perUnit)).toBeLessThan(1e-5);
    // Qwen2.5-VL's block 0 is a window block; Qwen2-VL has no block 9.
    const bad = name === 'qwen2_5_vl-tiny' ? 0 : 9;
    await expect(model.chat({ policy: policy(bad) }).encode([image])).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'policy.salience.block' });
  });
});

describe.each([
  { version: '2.5' as const, layout: 'hub' as const },
  { version: '2' as const, layout: 'current' as const },
])('Qwen$version ($layout layout) on written checkpoints', ({ version, layout }) => {
  let model: Model;
  let images: string[];
  beforeAll(async () => {
    const dir = tempDir(`qwen-chat-${version}`);
    writeTinyQwenVL(dir, { version, layout, seed: 7, std: 0.2, maxPixels: 112 * 112 });
    const pics = tempDir('qwen-chat-images');
    // A landscape, a portrait, and one over max_pixels (resized down, not refused).
    images = await Promise.all([
      noisePng(path.join(pics, 'wide.png'), 112, 56, 1),
      noisePng(path.join(pics, 'tall.png'), 56, 84, 2),
      noisePng(path.join(pics, 'big.png'), 300, 200, 3),
    ]);
    model = await engine.loadModel(dir, { cacheDir: tempDir('qwen-chat-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('gives each image its native grid; one over max_pixels is resized within it', async () => {
    const encoded = await model.chat().encode(images);
    expect(encoded.layouts.map((l) => l.grid)).toEqual([
      { t: 1, rows: 2, cols: 4 },
      { t: 1, rows: 3, cols: 2 },
      { t: 1, rows: 3, cols: 4 },
    ]);
    expect(encoded.layouts.map((l) => l.tokens)).toEqual([8, 6, 12]);
    expect(encoded.embeds.length).toBe(26 * model.spec.text.hiddenSize);
  });

  it('a two-turn chat with images in both turns equals prefilling the whole conversation as one prompt', async () => {
    const chat = model.chat({ maxNewTokens: 3 });
    const first = await chat.ask({ images: [images[0]!], text: 'What is this?' });
    const second = await chat.ask({ images: [images[1]!, images[2]!], text: 'And these two?' });
    const cached = second.timings.cachedTokens;
    const fed = [...first.promptTokenIds, ...first.tokenIds.slice(0, cached - first.promptTokenIds.length), ...second.promptTokenIds];
    // The whole conversation's positions by the family's rule from 0, in one pass (the chat built them turn by turn).
    const embeds = (await model.chat().encode(images)).embeds;
    const layouts = (await model.chat().encode(images)).layouts;
    const spans: { start: number; end: number }[] = [];
    fed.forEach((id, r) => {
      if (id !== model.spec.imageTokenId) return;
      const last = spans.at(-1);
      if (last && last.end === r && last.end - last.start < layouts[spans.length - 1]!.tokens) last.end = r + 1;
      else spans.push({ start: r, end: r + 1 });
    });
    const rows = familyOf(model.spec).positions(model.spec, fed.length, spans, layouts, 0).rows as unknown as PositionRows;
    const cache = await model.runtime.createCache();
    const whole = await prefill(model.runtime, {
      cache,
      ids: fed,
      positions: rows[0],
      positionRows: rows,
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds: embeds,
      hidden: model.spec.text.hiddenSize,
      chunks: fixedChunks(512),
      logits: 'last',
    });
    expect(maxAbsDiff(whole.logits, second.lastPromptLogits)).toBeLessThan(1e-4);
    expect(second.tokenIds[0]).toBe(argmax(whole.logits));
  });

  it('chunked prefill equals one-shot, and incremental decode equals recomputing the whole sequence', async () => {
    const dense = async (chunk: number) => {
      const chat = model.chat({ maxNewTokens: 4, prefillChunk: chunk });
      return chat.ask({ images: images.slice(0, 2), text: 'Describe both.' });
    };
    const [a, b] = [await dense(512), await dense(5)];
    expect(maxAbsDiff(a.lastPromptLogits, b.lastPromptLogits)).toBeLessThan(1e-4);
    expect(b.tokenIds).toEqual(a.tokenIds);
    await expectIncrementalEqualsRecompute(model, images.slice(0, 2), 'Describe both.');
  });

  it('keep 100% and retrieve 100% reproduce dense; SparseVILA keeps the pruned tokens at their original 3-D positions', async () => {
    const ask = (policy: object) => model.chat({ policy, maxNewTokens: 4 }).ask({ images: images.slice(0, 2), text: 'What differs?' });
    const dense = await ask({ method: 'dense' });
    const full = await ask({ method: 'sparsevila', keep: { budget: { ratio: 1 } }, retrieve: { budget: { ratio: 1 } } });
    expect(full.tokenIds).toEqual(dense.tokenIds);
    expect(maxAbsDiff(full.lastPromptLogits, dense.lastPromptLogits)).toBeLessThan(1e-4);

    const chat = model.chat({ policy: { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.5 } } } });
    const encoded = await chat.encode(images.slice(0, 2));
    const pruned = await encoded.prune();
    const sparse = await pruned.prefill('What differs?');
    const denseTurn = await (await (await model.chat().encode(images.slice(0, 2))).prune()).prefill('What differs?');
    expect(pruned.kept.map((k) => k.length)).toEqual([4, 3]);
    // Each kept token's three position rows are the dense prompt's rows at its place; the text after the images too.
    const denseRow = new Map<number, number[]>();
    denseTurn.promptTokenIds.forEach((_, i) =>
      denseRow.set(
        i,
        denseTurn.positionRows!.map((r) => r[i]!),
      ),
    );
    const spans = denseTurn.prompt.imageSpans;
    const keptRows = spans.flatMap((s, img) => pruned.kept[img]!.map((k) => s.start + k));
    const textRows = denseTurn.promptTokenIds.map((_, i) => i).filter((i) => !spans.some((s) => i >= s.start && i < s.end));
    const entered = [...keptRows, ...textRows].sort((a, b) => a - b);
    expect(entered.map((i) => denseRow.get(i))).toEqual(sparse.promptTokenIds.map((_, j) => sparse.positionRows!.map((r) => r[j]!)));
  });

  it('a retrieval decode equals a dense decode masked to the same per-layer subsets', async () => {
    await expectRetrievalEqualsMaskedDense(model, images.slice(0, 2), 'Where is the bright patch?');
  });

  it('runs every baseline: prefill pruning, in-LLM drops and merging, each keeping or dropping what its policy says', async () => {
    const policies = [
      { method: 'fastv', layer: 1, dropRatio: 0.5 },
      { method: 'pdrop', layers: [1], keepRatios: [0.5] },
      { method: 'visionzip', dominant: 3, contextual: 1 },
      { method: 'random', keep: { budget: { ratio: 0.5 } }, seed: 3 },
      { method: 'stride', keep: { budget: { ratio: 0.5 } } },
      { method: 'divprune', keep: { budget: { ratio: 0.5 } } },
    ];
    const tokens = [8, 6];
    for (const policy of policies) {
      const chat = model.chat({ policy, maxNewTokens: 2 });
      const pruned = await (await chat.encode(images.slice(0, 2))).prune();
      const kept = pruned.kept.map((k) => k.length);
      if (policy.method === 'visionzip') expect(kept, policy.method).toEqual([4, 4]);
      else if (policy.method === 'fastv' || policy.method === 'pdrop') expect(kept, policy.method).toEqual(tokens);
      else
        expect(
          kept.reduce((a, b) => a + b, 0),
          policy.method,
        ).toBe(7);
      const answer = await drain((await pruned.prefill('Compare them.')).retrieve().decode());
      expect(answer.tokenIds, policy.method).toHaveLength(2);
      expect(answer.lastPromptLogits.every(Number.isFinite), policy.method).toBe(true);
    }
  });

  it('refuses an image under 28 px a side, and an image-pad token typed in the text, with typed errors', async () => {
    const small = await noisePng(path.join(tempDir('qwen-small'), 'small.png'), 20, 60, 4);
    await expect(model.chat().encode([small])).rejects.toMatchObject({ code: 'IMAGE_SIZE', message: expect.stringMatching(/20x60/) });
    await expect(model.chat().ask({ images: [images[0]!], text: 'look: <|image_pad|>' })).rejects.toMatchObject({ code: 'IMAGE_COUNT_MISMATCH' });
  });
});
