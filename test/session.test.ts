/**
 * The session API end to end: multi-turn KV reuse, streaming, sampling, graph caching, the worker keeping
 * the event loop free, provider guards, and typed errors for bad turns.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_FIXTURE, writeTinyLlava } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill } from '../dist/src/session/prefill.js';
import { argmax } from '../dist/src/session/sampling.js';
import { llavaPixels } from './helpers/images.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
const IMAGE = path.join(CLIP_FIXTURE, 'image.png');

describe('a chat on the CLIP/LLaMA fixture', () => {
  let model: Model;
  const cacheDir = tempDir('session-graphs');
  beforeAll(async () => {
    model = await engine.loadModel(CLIP_FIXTURE, { cacheDir, threads: 1 });
  });
  afterAll(() => model?.close());

  it('a two-turn chat equals prefilling the whole conversation as one prompt', async () => {
    const chat = model.chat({ maxNewTokens: 5 });
    const first = await chat.ask({ images: [IMAGE], text: 'What is shown?' });
    const second = await chat.ask({ text: 'And the colours?' });
    expect(second.timings.cachedTokens).toBe(first.promptTokenIds.length + first.tokenIds.length - (first.stopReason === 'length' ? 1 : 0));

    // One long prompt: every token the chat fed, in one fresh cache.
    const fed = [...first.promptTokenIds, ...first.tokenIds.slice(0, second.timings.cachedTokens - first.promptTokenIds.length), ...second.promptTokenIds];
    const pixels = await llavaPixels(model, [IMAGE]);
    const vision = await model.runtime.vision(pixels.data, pixels.dims);
    const [n, tokens, size] = vision.featureDims as [number, number, number];
    const imageEmbeds = await model.runtime.project(vision.features, [n * tokens, size]);
    const cache = await model.runtime.createCache();
    const whole = await prefill(model.runtime, {
      cache,
      ids: fed,
      positions: fed.map((_, i) => i),
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds,
      hidden: model.spec.text.hiddenSize,
      chunks: fixedChunks(512),
      logits: 'last',
    });
    expect(maxAbsDiff(whole.logits, second.lastPromptLogits)).toBeLessThan(1e-4);
    expect(second.tokenIds[0]).toBe(argmax(whole.logits));
    await model.runtime.dropCache(cache);
  });

  it('streams tokens one at a time and their text concatenates to the answer', async () => {
    const chat = model.chat({ maxNewTokens: 6 });
    const events: { id?: number; text: string }[] = [];
    const turn = chat.stream({ images: [IMAGE], text: 'Describe it.' });
    let r = await turn.next();
    while (!r.done) {
      events.push(r.value);
      r = await turn.next();
    }
    expect(events.flatMap((e) => (e.id === undefined ? [] : [e.id]))).toEqual(r.value.tokenIds);
    expect(events.slice(0, -1).every((e) => e.id !== undefined)).toBe(true);
    expect(events.map((e) => e.text).join('')).toBe(r.value.text);
  });

  it('sampling with a seed is reproducible, and different seeds can differ', async () => {
    const run = async (seed: number) =>
      (await model.chat({ maxNewTokens: 8, sampling: { kind: 'sample', temperature: 1.5, topP: 0.95, seed } }).ask({ images: [IMAGE], text: 'Hi' })).tokenIds;
    const a = await run(7);
    expect(await run(7)).toEqual(a);
    const others = await Promise.all([1, 2, 3].map(run));
    expect(others.some((o) => JSON.stringify(o) !== JSON.stringify(a))).toBe(true);
  });

  it('rejects bad turns with typed errors naming the problem', async () => {
    const chat = model.chat({ maxNewTokens: 2 });
    await expect(chat.ask({ images: [IMAGE], text: '<image> and <image>: compare' })).rejects.toMatchObject({ code: 'IMAGE_COUNT_MISMATCH' });
    await expect(chat.ask({ text: '   ' })).rejects.toMatchObject({ code: 'PROMPT_EMPTY' });
    await expect(chat.ask({ images: ['/nonexistent/cat.png'], text: 'hi' })).rejects.toMatchObject({
      code: 'IMAGE_UNREADABLE',
      subject: '/nonexistent/cat.png',
    });
    await expect(chat.ask({ text: 'hi', maxNewTokens: 0 })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'maxNewTokens' });
    expect(() => model.chat({ sampling: { kind: 'sample', temperature: Number.NaN, topP: 1, seed: 0 } })).toThrow(/temperature/);
    // The chat is still usable after the rejected turns.
    expect((await chat.ask({ images: [IMAGE], text: 'ok' })).tokenIds.length).toBeGreaterThan(0);
  });

  it('a second load of the same checkpoint takes every graph from the cache', async () => {
    const events: { graph: string; cached: boolean; phase: string }[] = [];
    const again = await engine.loadModel(CLIP_FIXTURE, { cacheDir, threads: 1, onProgress: (e) => events.push(e) });
    await again.close();
    const done = events.filter((e) => e.phase === 'done');
    expect(done.map((e) => e.graph).sort()).toEqual(['decoder', 'embed', 'projector', 'vision']);
    expect(done.every((e) => e.cached)).toBe(true);
  });
});

describe('answers with special tokens', () => {
  it('a turn whose answer holds special tokens is continued by the next turn (the cache holds them)', async () => {
    const dir = path.join(path.dirname(CLIP_FIXTURE), 'llava-siglip-qwen2-tiny');
    const model = await engine.loadModel(dir, { cacheDir: tempDir('special-graphs'), threads: 1 });
    try {
      // Seed 1 at temperature 3 samples <|endoftext|> (256) twice mid-answer on this fixture.
      const chat = model.chat({ maxNewTokens: 12, sampling: { kind: 'sample', temperature: 3, topP: 1, seed: 1 } });
      const first = await chat.ask({ images: [path.join(dir, 'image.png')], text: 'What is shown?' });
      expect(first.tokenIds).toContain(256);
      expect(first.text).not.toContain('<|endoftext|>');
      const second = await chat.ask({ text: 'And then?' });
      expect(second.timings.cachedTokens).toBe(first.promptTokenIds.length + first.tokenIds.length - 1);
    } finally {
      await model.close();
    }
  });
});

describe('runtime placement and providers', () => {
  it('inference runs off the main thread: timers keep firing during a long turn', async () => {
    const dir = tempDir('busy');
    writeTinyLlava(dir, { vocab: 300, textHidden: 256, textIntermediate: 1024, textLayers: 6, textHeads: 8, textKvHeads: 2, seed: 4 });
    const model = await engine.loadModel(dir, { cacheDir: tempDir('busy-graphs'), threads: 1 });
    try {
      const chat = model.chat({ maxNewTokens: 96, prefillChunk: 64 });
      let last = performance.now();
      let maxGap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 2);
      const started = performance.now();
      await chat.ask({ text: 'x'.repeat(1200) });
      const elapsed = performance.now() - started;
      clearInterval(timer);
      // The turn takes far longer than any gap between ticks: the loop was never blocked by ORT.
      expect(elapsed).toBeGreaterThan(200);
      expect(maxGap).toBeLessThan(elapsed / 3);
    } finally {
      await model.close();
    }
  });

  it('cuda without its binaries fails up front with how to install them', async () => {
    await expect(engine.loadModel(CLIP_FIXTURE, { provider: 'cuda', cacheDir: tempDir('cuda') })).rejects.toMatchObject({
      code: 'PROVIDER_UNAVAILABLE',
      message: expect.stringContaining('ONNXRUNTIME_NODE_INSTALL=cuda12'),
    });
  });

  it('webgpu without a GPU adapter fails with a clear provider error', async () => {
    // No Vulkan driver to load: what a machine without a GPU or lavapipe looks like (this process probes once).
    const before = process.env.VK_ICD_FILENAMES;
    process.env.VK_ICD_FILENAMES = path.join(tempDir('no-icd'), 'none.json');
    try {
      await expect(engine.loadModel(CLIP_FIXTURE, { provider: 'webgpu', cacheDir: tempDir('webgpu') })).rejects.toMatchObject({
        code: 'PROVIDER_UNAVAILABLE',
        message: expect.stringMatching(/VK_ERROR_INCOMPATIBLE_DRIVER[\s\S]*--provider cpu/),
      });
    } finally {
      if (before === undefined) delete process.env.VK_ICD_FILENAMES;
      else process.env.VK_ICD_FILENAMES = before;
    }
  });
});

describe('minNewTokens', () => {
  it('masks end-of-sequence until that many tokens, like min_new_tokens; maxNewTokens bounds it', async () => {
    // The fixture with its first greedy token declared end-of-sequence: a plain turn stops at once.
    const dir = tempDir('min-new-tokens');
    fs.cpSync(CLIP_FIXTURE, dir, { recursive: true });
    const expected = JSON.parse(fs.readFileSync(path.join(CLIP_FIXTURE, 'expected.json'), 'utf8')) as { question: string; greedy_ids: number[] };
    const eos = expected.greedy_ids[0]!;
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: eos }));
    const model = await engine.loadModel(dir, { cacheDir: tempDir('min-new-graphs'), threads: 1 });
    try {
      const turn = { images: [path.join(dir, 'image.png')], text: expected.question };
      const plain = await model.chat({ maxNewTokens: 6 }).ask(turn);
      expect(plain.stopReason).toBe('eos');
      expect(plain.tokenIds).toEqual([]);
      const held = await model.chat({ maxNewTokens: 6, minNewTokens: 4 }).ask(turn);
      expect(held.tokenIds.length).toBeGreaterThanOrEqual(4);
      expect(held.tokenIds.slice(0, 4)).not.toContain(eos);
      // The first token is the runner-up of the same logits.
      const ranked = [...plain.lastPromptLogits.keys()].sort((a, b) => plain.lastPromptLogits[b]! - plain.lastPromptLogits[a]!);
      expect(held.tokenIds[0]).toBe(ranked[1]);
      const perTurn = await model.chat({ maxNewTokens: 6 }).ask({ ...turn, minNewTokens: 2 });
      expect(perTurn.tokenIds.slice(0, 2)).toEqual(held.tokenIds.slice(0, 2));
      await expect(model.chat({ maxNewTokens: 3, minNewTokens: 4 }).ask(turn)).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'minNewTokens' });
    } finally {
      await model.close();
    }
  });
});
