/**
 * The engine's equivalences on a Qwen2-VL model, shared by the CPU tests (qwen-chat.test.ts) and the GPU tier
 * (gpu.test.ts): each builds its reference independently of the path it checks.
 */
import { expect } from 'vitest';
import type * as engine from 'sparsevila-ts';
import { MASKED } from '../../dist/src/runtime/protocol.js';
import { fixedChunks } from '../../dist/src/runtime/memory.js';
import { prefill, type PositionRows } from '../../dist/src/session/prefill.js';
import { argmax } from '../../dist/src/session/sampling.js';
import { maxAbsDiff } from './engine.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;

/** Token 4 of a greedy answer equals the argmax of one prefill over the prompt and the answer's first three tokens. */
export async function expectIncrementalEqualsRecompute(model: Model, images: readonly string[], text: string): Promise<void> {
  const pre = await (await (await model.chat({ maxNewTokens: 4 }).encode(images)).prune()).prefill(text);
  const answer = await drain(pre.retrieve().decode());
  const next = Math.max(...pre.positionRows!.flat()) + 1;
  const extra = answer.tokenIds.slice(0, 3);
  const rows = pre.positionRows!.map((r) => [...r, ...extra.map((_, k) => next + k)]) as unknown as PositionRows;
  const out = await prefill(model.runtime, {
    cache: await model.runtime.createCache(),
    ids: [...pre.promptTokenIds, ...extra],
    positions: rows[0],
    positionRows: rows,
    imageTokenId: model.spec.imageTokenId,
    imageEmbeds: pre.imageEmbedsAll,
    hidden: model.spec.text.hiddenSize,
    chunks: fixedChunks(512),
    logits: 'last',
  });
  expect(argmax(out.logits)).toBe(answer.tokenIds[3]);
}

/**
 * A SparseVILA retrieval decode equals its twin: the same ids and M-RoPE rows in a fresh cache, each step over
 * the FULL cache with the unretrieved visual rows masked per layer; generated tokens take the next text positions.
 */
export async function expectRetrievalEqualsMaskedDense(model: Model, images: readonly string[], text: string): Promise<void> {
  const chat = model.chat({ policy: { method: 'sparsevila', keep: { budget: { ratio: 0.75 } }, retrieve: { budget: { ratio: 0.25 } } }, maxNewTokens: 4 });
  const pruned = await (await chat.encode(images)).prune();
  const pre = await pruned.prefill(text);
  const retrieved = pre.retrieve();
  const events: { id?: number; logits?: Float32Array }[] = [];
  const it = retrieved.decode({ withLogits: true });
  for (let r = await it.next(); !r.done; r = await it.next()) if (r.value.id !== undefined) events.push(r.value);
  const rt = model.runtime;
  const cache = await rt.createCache();
  await prefill(rt, {
    cache,
    ids: pre.promptTokenIds,
    positions: pre.positions,
    positionRows: pre.positionRows,
    imageTokenId: model.spec.imageTokenId,
    imageEmbeds: pruned.embeds,
    hidden: model.spec.text.hiddenSize,
    chunks: fixedChunks(512),
    logits: 'last',
  });
  const rows = pre.promptTokenIds.length;
  const visualRows = pre.promptTokenIds.flatMap((id, r) => (id === model.spec.imageTokenId ? [r] : []));
  const next = Math.max(...pre.positionRows!.flat()) + 1;
  expect(events.length).toBeGreaterThan(2);
  for (let i = 0; i + 1 < events.length; i++) {
    const pastBias = retrieved.layers!.map((layer) => {
      const bias = new Float32Array(rows + i);
      for (const r of visualRows) if (!layer.rows.includes(r)) bias[r] = MASKED;
      return bias;
    });
    const out = await rt.step({ target: { cache }, ids: [events[i]!.id!], positions: [next + i], logits: 'last', pastBias });
    expect(maxAbsDiff(out.logits, events[i + 1]!.logits!)).toBeLessThan(1e-4);
  }
  await rt.dropCache(cache);
}

/** Runs a decode stream to its end; its answer. */
export async function drain<T>(gen: AsyncGenerator<unknown, T>): Promise<T> {
  for (;;) {
    const r = await gen.next();
    if (r.done) return r.value;
  }
}
