/**
 * SparseVILA and the baselines on the fixture checkpoints: budgets, salience, retrieval sets and decode
 * numerics, each checked against an independent computation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_FIXTURE, SIGLIP_FIXTURE, writeTinyEngineLlava } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill } from '../dist/src/session/prefill.js';
import { visionZip } from '../dist/src/sparsity/methods/visionzip.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
type Policy = Parameters<typeof engine.validatePolicy>[0];
const IMAGE = path.join(CLIP_FIXTURE, 'image.png');
const SIGLIP_IMAGE = path.join(SIGLIP_FIXTURE, 'image.png');

const sparsevila = (keep: number, retrieve: number, extra: Record<string, unknown> = {}) =>
  engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: keep } }, retrieve: { budget: { ratio: retrieve } }, ...extra });

async function collect(gen: AsyncGenerator<{ id?: number; logits?: Float32Array; text: string }, any>) {
  const events: { id?: number; logits?: Float32Array }[] = [];
  let r = await gen.next();
  while (!r.done) {
    events.push(r.value);
    r = await gen.next();
  }
  return { events: events.filter((e) => e.id !== undefined), answer: r.value };
}

describe('on the CLIP/LLaMA fixture', () => {
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('sparsity-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('keep 100% and retrieve 100% reproduce dense: same tokens, logits within 1e-4, over two turns', async () => {
    const dense = model.chat({ maxNewTokens: 6 });
    const sparse = model.chat({ maxNewTokens: 6, policy: sparsevila(1, 1) });
    for (const turn of [{ images: [IMAGE], text: 'What is shown?' }, { text: 'Anything else?' }]) {
      const a = await collect((await stepTurn(dense, turn)).decode({ withLogits: true }));
      const b = await collect((await stepTurn(sparse, turn)).decode({ withLogits: true }));
      expect(b.answer.tokenIds).toEqual(a.answer.tokenIds);
      a.events.forEach((e, i) => expect(maxAbsDiff(e.logits!, b.events[i]!.logits!)).toBeLessThan(1e-4));
    }
  });

  it('a retrieval decode equals a dense decode whose attention is masked to the same per-layer subsets', async () => {
    const chat = model.chat({ maxNewTokens: 5, policy: sparsevila(0.5, 0.25) });
    const encoded = await chat.encode([IMAGE]);
    const pruned = await encoded.prune();
    const prefilled = await pruned.prefill('Where is the object?');
    const retrieved = prefilled.retrieve();
    const run = await collect(retrieved.decode({ withLogits: true }));

    // The twin: same ids and positions in a fresh cache, every later step on the FULL cache with the
    // non-retrieved visual columns masked per layer.
    const rt = model.runtime;
    const cache = await rt.createCache();
    await prefill(rt, {
      cache,
      ids: prefilled.promptTokenIds,
      positions: prefilled.positions,
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds: pruned.embeds,
      hidden: model.spec.text.hiddenSize,
      chunks: fixedChunks(512),
      logits: 'last',
    });
    expect(run.events.length).toBeGreaterThan(2);
    const rows = prefilled.promptTokenIds.length;
    const visualRows = prefilled.promptTokenIds.flatMap((id, r) => (id === model.spec.imageTokenId ? [r] : []));
    expect(visualRows).toHaveLength(8);
    for (let i = 0; i + 1 < run.events.length; i++) {
      const pastBias = retrieved.layers!.map((layer) => {
        const bias = new Float32Array(rows + i);
        for (const r of visualRows) if (!layer.rows.includes(r)) bias[r] = -1e9;
        return bias;
      });
      const out = await rt.step({ target: { cache }, ids: [run.events[i]!.id!], positions: [prefilled.positions.at(-1)! + 1 + i], logits: 'last', pastBias });
      expect(maxAbsDiff(out.logits, run.events[i + 1]!.logits!)).toBeLessThan(1e-4);
    }
    await rt.dropCache(cache);
  });

  it('salience is the CLS attention of the feature layer, and kept counts equal the budget', async () => {
    const expected = JSON.parse(fs.readFileSync(path.join(CLIP_FIXTURE, 'expected.json'), 'utf8'));
    const chat = model.chat({ policy: sparsevila(0.5, 1) });
    const encoded = await chat.encode([IMAGE, IMAGE]);
    expect(encoded.salience[0]!.source).toBe('cls');
    expect(encoded.salience[0]!.grid).toEqual({ rows: 4, cols: 4 });
    expect(maxAbsDiff(encoded.salience[0]!.scores, expected.vision_cls_attention)).toBeLessThan(1e-5);
    const pruned = await encoded.prune();
    expect(pruned.kept.map((k) => k.length)).toEqual([8, 8]);
    // The kept tokens are the 8 most salient, in order.
    const order = [...expected.vision_cls_attention.keys()].sort((a, b) => expected.vision_cls_attention[b] - expected.vision_cls_attention[a]);
    expect(pruned.kept[0]).toEqual(order.slice(0, 8).sort((a, b) => a - b));
    expect((await encoded.prune({ budget: { count: 3 }, scope: 'per-image' })).kept.map((k) => k.length)).toEqual([3, 3]);
    expect((await encoded.prune({ budget: { count: 5 }, scope: 'global' })).kept.flat()).toHaveLength(5);
  });

  it('summary-token salience from token 0 is the CLS attention; summary indices are checked', async () => {
    const expected = JSON.parse(fs.readFileSync(path.join(CLIP_FIXTURE, 'expected.json'), 'utf8'));
    const encoded = await model.chat({ policy: sparsevila(0.5, 1, { salience: { summary: [0] } }) }).encode([IMAGE]);
    expect(encoded.salience[0]!.source).toBe('summary');
    expect(maxAbsDiff(encoded.salience[0]!.scores, expected.vision_cls_attention)).toBeLessThan(1e-5);
    const two = await model.chat({ policy: sparsevila(0.5, 1, { salience: { summary: [0, 3] } }) }).encode([IMAGE]);
    expect(maxAbsDiff(two.salience[0]!.scores, encoded.salience[0]!.scores)).toBeGreaterThan(1e-4);
    expect(() => sparsevila(0.5, 1, { salience: { summary: [9] } })).toThrow(expect.objectContaining({ subject: 'policy.salience.summary' }));
  });

  it('per-layer retrieval sets are the brute-force top-k of the question attention mass', async () => {
    const chat = model.chat({ maxNewTokens: 2, policy: sparsevila(0.75, 0.25) });
    const prefilled = await (await (await chat.encode([IMAGE])).prune()).prefill('Which corner is brightest?');
    const retrieved = prefilled.retrieve();
    const visualRows = prefilled.promptTokenIds.flatMap((id, r) => (id === model.spec.imageTokenId ? [r] : []));
    const columns = prefilled.promptTokenIds.length;
    prefilled.mass!.forEach((mass, l) => {
      const heads = mass.length / columns;
      const score = (r: number) => Array.from({ length: heads }, (_, h) => mass[h * columns + r]!).reduce((a, b) => a + b, 0);
      const brute = [...visualRows]
        .sort((a, b) => score(b) - score(a) || a - b)
        .slice(0, 3)
        .sort((a, b) => a - b);
      expect(retrieved.layers![l]!.rows).toEqual(brute);
    });
    await collect(retrieved.decode());
  });
});

describe('baselines and multi-turn fidelity on a random 4-layer checkpoint', () => {
  let model: Model;
  beforeAll(async () => {
    const dir = tempDir('fastv');
    writeTinyEngineLlava(dir);
    model = await engine.loadModel(dir, { cacheDir: tempDir('fastv-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('FastV at (K=2, R=50%) equals a brute-force token-by-token reference with the same drops masked', async () => {
    const chat = model.chat({ maxNewTokens: 1, policy: { method: 'fastv', layer: 2, dropRatio: 0.5 } });
    const encoded = await chat.encode([IMAGE]);
    const prefilled = await (await encoded.prune()).prefill('Describe the picture.');
    const ids = prefilled.promptTokenIds;
    const rt = model.runtime;
    const common = {
      ids,
      positions: prefilled.positions,
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds: encoded.embeds,
      hidden: model.spec.text.hiddenSize,
      chunks: fixedChunks(512),
      logits: 'last' as const,
    };
    // 1. The drop set: the last prompt token's attention at layer K−1 = 1, heads summed, lowest half dropped.
    const dense = await rt.createCache();
    const last = new Float32Array(ids.length);
    last[ids.length - 1] = 1;
    const { mass } = await prefill(rt, { ...common, cache: dense, massWeights: last });
    const visualRows = ids.flatMap((id, r) => (id === model.spec.imageTokenId ? [r] : []));
    const heads = mass![1]!.length / ids.length;
    const score = (r: number) => Array.from({ length: heads }, (_, h) => mass![1]![h * ids.length + r]!).reduce((a, b) => a + b, 0);
    const dropped = new Set([...visualRows].sort((a, b) => score(a) - score(b) || b - a).slice(0, visualRows.length / 2));
    // 2. Token by token, every earlier token is "past": mask the dropped ones at layers ≥ K.
    const brute = await rt.createCache();
    let logits = new Float32Array();
    for (let r = 0; r < ids.length; r++) {
      const pastBias = Array.from({ length: model.spec.text.numLayers }, (_, l) => {
        const b = new Float32Array(r);
        if (l >= 2) for (const d of dropped) if (d < r) b[d] = -1e9;
        return b;
      });
      const embed =
        ids[r] === model.spec.imageTokenId
          ? { rows: [0], embeds: encoded.embeds.slice(visualRows.indexOf(r) * common.hidden, (visualRows.indexOf(r) + 1) * common.hidden) }
          : undefined;
      logits = (
        await rt.step({
          target: { cache: brute },
          ids: [ids[r]!],
          positions: [prefilled.positions[r]!],
          splice: embed,
          logits: 'last',
          pastBias: r ? pastBias : undefined,
        })
      ).logits;
    }
    expect(maxAbsDiff(logits, prefilled.lastPromptLogits)).toBeLessThan(1e-4);
    // And FastV really changed the result.
    const denseLogits = (await prefill(rt, { ...common, cache: await rt.createCache() })).logits;
    expect(maxAbsDiff(denseLogits, prefilled.lastPromptLogits)).toBeGreaterThan(1e-3);
    await collect(prefilled.retrieve().decode());
  });

  it('turn 2 retrieves tokens turn 1 did not, and stays closer to dense than FastV, whose turn-1 drops are permanent', async () => {
    const turns = [{ images: [IMAGE], text: 'What is at the top left?' }, { text: 'And what is at the bottom right?' }];
    const run = async (policy: Policy) => {
      const sink = new engine.MemorySink();
      // One token on turn 1: its logits come from the prefill, so every policy that keeps all tokens at
      // prefill leaves turn 2 the same cache as dense; only what each policy did to the cache differs.
      const chat = model.chat({ maxNewTokens: 4, policy, tracer: new engine.Tracer([sink]) });
      const out = [];
      for (const [i, t] of turns.entries()) out.push(await collect((await stepTurn(chat, t)).decode({ withLogits: true, maxNewTokens: i ? 4 : 1 })));
      return { out, sink };
    };
    const dense = await run({ method: 'dense' });
    const svila = await run(sparsevila(1, 0.25));
    const fastv = await run({ method: 'fastv', layer: 2, dropRatio: 0.75 });
    const sets = (turn: number) =>
      svila.sink
        .of('retrieval')
        .filter((e) => e.turn === turn)
        .map((e) => new Set(e.retrieved));
    const [t1, t2] = [sets(0), sets(1)];
    expect(t1).toHaveLength(4);
    expect(t2.some((set, l) => [...set].some((i) => !t1[l]!.has(i)))).toBe(true);
    // Turn 2 re-scores the full retained cache: its first token sees everything dense sees. FastV's turn-1
    // query dropped 75% of the image from layers ≥ 2 for good, so turn 2 cannot get it back.
    const d2 = dense.out[1]!.events[0]!.logits!;
    const klSparse = klDivergence(d2, svila.out[1]!.events[0]!.logits!);
    const klFastv = klDivergence(d2, fastv.out[1]!.events[0]!.logits!);
    expect(klSparse).toBeLessThan(1e-6);
    expect(klFastv).toBeGreaterThan(1e-4);
    expect(svila.out[1]!.answer.tokenIds[0]).toBe(dense.out[1]!.answer.tokenIds[0]);
  });
});

function klDivergence(pLogits: Float32Array, qLogits: Float32Array): number {
  const logSoftmax = (x: Float32Array) => {
    const m = Math.max(...x);
    const z = Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0)) + m;
    return Float64Array.from(x, (v) => v - z);
  };
  const lp = logSoftmax(pLogits);
  const lq = logSoftmax(qLogits);
  return lp.reduce((acc, v, i) => acc + Math.exp(v) * (v - lq[i]!), 0);
}

describe('top-k', () => {
  it('takes the largest scores, ties to the lower index, returned in index order', () => {
    expect(engine.topK([1, 3, 3, 2], 2)).toEqual([1, 2]);
    expect(engine.topK([5, 5, 5, 1], 2)).toEqual([0, 1]);
    expect(engine.topK([0.1, 0.9, 0.5, 0.7], 3, [0, 2, 3])).toEqual([0, 2, 3]);
    expect(engine.topK([0.1, 0.9, 0.5, 0.7], 1, [0, 2, 3])).toEqual([3]);
    expect(engine.topK([1, 2], 0)).toEqual([]);
    const scores = Array.from({ length: 5000 }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 1);
    const brute = [...scores.keys()]
      .sort((a, b) => scores[b]! - scores[a]! || a - b)
      .slice(0, 417)
      .sort((a, b) => a - b);
    expect(engine.topK(scores, 417)).toEqual(brute);
  });

  it('equals a sort-based reference on heavy ties, sorted and reversed inputs, candidates out of order, and NaN (ranked last)', () => {
    const reference = (scores: number[], k: number, among: number[]) =>
      [...among]
        .sort((a, b) => {
          const [x, y] = [Number.isNaN(scores[a]!) ? -Infinity : scores[a]!, Number.isNaN(scores[b]!) ? -Infinity : scores[b]!];
          return y - x || a - b;
        })
        .slice(0, k)
        .sort((a, b) => a - b);
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const n = 2000;
    const inputs: [string, number[]][] = [
      ['four distinct values', Array.from({ length: n }, () => Math.floor(rand() * 4))],
      ['ascending', Array.from({ length: n }, (_, i) => i)],
      ['descending', Array.from({ length: n }, (_, i) => n - i)],
      ['all equal', Array.from({ length: n }, () => 1)],
      ['with NaN and ±Infinity', Array.from({ length: n }, (_, i) => (i % 17 === 0 ? NaN : i % 29 === 0 ? Infinity : i % 31 === 0 ? -Infinity : rand()))],
    ];
    const everyIndex = Array.from({ length: n }, (_, i) => i);
    const shuffled = [...everyIndex].sort(() => rand() - 0.5).slice(0, 1500);
    for (const [, scores] of inputs) {
      for (const k of [1, 7, 500, 1499, 1999, 2000]) {
        expect(engine.topK(scores, k)).toEqual(reference(scores, k, everyIndex));
        expect(engine.topK(scores, k, shuffled)).toEqual(reference(scores, k, shuffled));
      }
    }
  });
});

describe('VisionZip', () => {
  it('keeps the dominant tokens by CLS attention and merges the rest into uniformly spaced targets by key similarity', () => {
    // 6 tokens, 2-d features, 2-d keys. Salience picks 4 and 1; targets among [0,2,3,5] every 2nd: 0 and 3.
    const features = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    const salience = [0.1, 0.9, 0.2, 0.05, 0.8, 0.3];
    const keys = Float32Array.from([1, 0, 0, 1, 0.9, 0.1, 0, 1, 1, 1, 0.1, 0.9]);
    const z = visionZip(features, salience, keys, 2, 2, 2);
    expect(z.tokens).toEqual([0, 1, 3, 4]);
    // 2 (key ≈ [1,0]) joins target 0; 5 (key ≈ [0,1]) joins target 3.
    expect(z.merged.get(0)).toEqual([2]);
    expect(z.merged.get(3)).toEqual([5]);
    expect(Array.from(z.features)).toEqual([0 + 2, 0 + 2, 1, 1, 3 + 5, 3 + 5, 4, 4]);
  });

  it('a VisionZip chat feeds dominant + contextual tokens with compact positions', async () => {
    const model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('vz-graphs'), threads: 1 });
    try {
      const chat = model.chat({ maxNewTokens: 2, policy: { method: 'visionzip', dominant: 5, contextual: 3 } });
      const pruned = await (await chat.encode([IMAGE])).prune();
      expect(pruned.kept[0]).toHaveLength(8);
      const prefilled = await pruned.prefill('What is shown?');
      expect(prefilled.promptTokenIds.filter((id) => id === model.spec.imageTokenId)).toHaveLength(8);
      expect(prefilled.positions).toEqual(prefilled.positions.map((_, i) => i));
      await collect(prefilled.retrieve().decode());
    } finally {
      await model.close();
    }
  });
});

describe('fidelity against a dense twin', () => {
  it('is perfect at 100% budgets and measurably lower at sparse ones, over two turns', async () => {
    const model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('fidelity-graphs'), threads: 1 });
    try {
      const turns = [{ images: [IMAGE], text: 'What is shown?' }, { text: 'Anything else?' }];
      const report = async (policy: Policy) => {
        const chat = model.chat({ maxNewTokens: 6, policy, fidelity: true });
        const out = [];
        for (const t of turns) out.push((await chat.ask(t)).fidelity!);
        return out;
      };
      for (const f of await report(sparsevila(1, 1))) {
        expect(f.tokenAgreement).toBe(1);
        expect(f.firstDivergence).toBeNull();
        expect(f.meanKl).toBeLessThan(1e-6);
        expect(f.retrievalRecall).toEqual([expect.closeTo(1, 6), expect.closeTo(1, 6)]);
      }
      const sparse = await report(sparsevila(0.5, 0.25));
      for (const f of sparse) {
        expect(f.meanKl).toBeGreaterThan(1e-6);
        // 4 of 16 image tokens attended per layer: recall is a share, below 1 and above 0.
        for (const r of f.retrievalRecall!) (expect(r).toBeGreaterThan(0), expect(r).toBeLessThan(1));
      }
      // Step 0 compares the prefill's logits: pruning alone already moves them.
      expect(sparse[0]!.klPerStep[0]).toBeGreaterThan(0);
      const dense = await report({ method: 'dense' });
      expect(dense.every((f) => f.retrievalRecall === null && f.tokenAgreement === 1)).toBe(true);
    } finally {
      await model.close();
    }
  });
});

/** encode → prune → prefill → retrieve with the chat's policy. */
async function stepTurn(chat: ReturnType<Model['chat']>, turn: { images?: string[]; text: string }) {
  const prefilled = turn.images ? await (await (await chat.encode(turn.images)).prune()).prefill(turn.text) : await chat.prefill(turn.text);
  return prefilled.retrieve();
}

describe('policies are validated values', () => {
  it.each<[string, Policy, string]>([
    ['negative keep ratio', { method: 'sparsevila', keep: { budget: { ratio: -0.1 } }, retrieve: { budget: { ratio: 0.1 } } }, 'policy.keep.budget.ratio'],
    ['keep over 100%', { method: 'sparsevila', keep: { budget: { ratio: 1.5 } }, retrieve: { budget: { ratio: 0.1 } } }, 'policy.keep.budget.ratio'],
    [
      'NaN retrieve ratio',
      { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: Number.NaN } } },
      'policy.retrieve.budget.ratio',
    ],
    ['zero count', { method: 'stride', keep: { budget: { count: 0 } } }, 'policy.keep.budget.count'],
    ['unknown policy', { method: 'magic' }, 'policy.method'],
    ['FastV drop of 100%', { method: 'fastv', layer: 2, dropRatio: 1 }, 'policy.dropRatio'],
    ['PyramidDrop ratios not matching layers', { method: 'pdrop', layers: [1, 2], keepRatios: [0.5] }, 'policy.keepRatios'],
  ])('%s → OPTION_INVALID naming %s', (_name, policy, subject) => {
    expect(() => engine.validatePolicy(policy)).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject }));
  });

  it('a chat refuses a bad policy before touching the model, and encode refuses an empty image list', async () => {
    const model = await engine.loadModel(SIGLIP_FIXTURE, { cacheDir: tempDir('policy-graphs'), threads: 1 });
    try {
      expect(() => model.chat({ policy: { method: 'sparsevila', keep: { budget: { ratio: 2 } } } as Policy })).toThrow(/ratio/);
      await expect(model.chat().encode([])).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'images' });
      // SigLIP has no CLS token: 'cls' salience is refused with the reason.
      const chat = model.chat({ policy: sparsevila(0.5, 0.5, { salience: 'cls' }) });
      await expect(chat.encode([SIGLIP_IMAGE])).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'policy.salience' });
    } finally {
      await model.close();
    }
  });
});
