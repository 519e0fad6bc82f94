/**
 * Retrieval that follows the answer (RetrieveBudget.refreshEvery, perLayer): a refresh step attends the whole
 * cache and its attention, blended with the question's, re-ranks each layer's set; the steps between read the
 * sets it chose. Checked against dense decoding and against a brute-force reference that recomputes every set
 * from the attention mass through a separate, simple path (sort, not top-k) and decodes over masked columns.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_FIXTURE, TINY_ENGINE_LAYERS, writeTinyEngineLlava } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill } from '../dist/src/session/prefill.js';
import { fieldsProblem } from '../dist/src/trace/validate.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
type Policy = Parameters<typeof engine.validatePolicy>[0];
const IMAGE = path.join(CLIP_FIXTURE, 'image.png');
const LAYERS = TINY_ENGINE_LAYERS;

const sparsevila = (keep: number, retrieve: Record<string, unknown>) =>
  engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: keep } }, retrieve: { budget: { ratio: 1 }, ...retrieve } });

/** Every generated token with its logits, and the answer, from a turn's step API. */
async function run(chat: ReturnType<Model['chat']>, turn: { images?: string[]; text: string }, tokens: number) {
  const prefilled = turn.images ? await (await (await chat.encode(turn.images)).prune()).prefill(turn.text) : await chat.prefill(turn.text);
  const gen = prefilled.retrieve().decode({ withLogits: true, maxNewTokens: tokens, minNewTokens: tokens });
  const events: { id: number; logits: Float32Array }[] = [];
  let r = await gen.next();
  for (; !r.done; r = await gen.next()) if (r.value.id !== undefined) events.push({ id: r.value.id, logits: r.value.logits! });
  return { prefilled, events, answer: r.value };
}

/** The k = round(ratio · n) (or count, at least 1) highest of `scores`, ties to the lower index, ascending: by sorting. */
function bruteTop(scores: number[], budget: { ratio: number } | { count: number }): number[] {
  const n = scores.length;
  const k = Math.max(1, Math.min(n, 'ratio' in budget ? Math.round(budget.ratio * n) : budget.count));
  return [...scores.keys()]
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, k)
    .sort((a, b) => a - b);
}

/** Per layer, each visual row's attention mass summed over heads ([heads, columns] per layer). */
const headSums = (mass: Float32Array[], columns: number, visualRows: number[]) =>
  mass.map((m) => visualRows.map((r) => Array.from({ length: m.length / columns }, (_, h) => m[h * columns + r]!).reduce((a, b) => a + b, 0)));

describe('retrieval that follows the answer, on a random 4-layer checkpoint', () => {
  let model: Model;
  beforeAll(async () => {
    const dir = tempDir('refresh');
    writeTinyEngineLlava(dir);
    model = await engine.loadModel(dir, { cacheDir: tempDir('refresh-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('refreshing at retrieve 100% (every step, or every 3) equals dense: same tokens, logits within 1e-4, over two turns', async () => {
    const turns = [{ images: [IMAGE], text: 'Describe the picture.' }, { text: 'And the corners?' }];
    const dense = model.chat({ policy: { method: 'dense' } });
    const every1 = model.chat({ policy: sparsevila(1, { refreshEvery: 1 }) });
    const every3 = model.chat({ policy: sparsevila(1, { refreshEvery: 3, refreshBlend: 0.25 }) });
    for (const turn of turns) {
      const d = await run(dense, turn, 8);
      for (const chat of [every1, every3]) {
        const s = await run(chat, turn, 8);
        expect(s.answer.tokenIds).toEqual(d.answer.tokenIds);
        d.events.forEach((e, i) => expect(maxAbsDiff(e.logits, s.events[i]!.logits)).toBeLessThan(1e-4));
      }
    }
  });

  it('refresh every 3 with per-layer budgets equals a brute-force reference: the sets the trace reports, and the logits of a masked dense decode', async () => {
    const N = 3;
    const blend = 0.25;
    const perLayer = [{ ratio: 0.25 }, { count: 2 }, { ratio: 0.5 }, { count: 1 }];
    const sink = new engine.MemorySink();
    const chat = model.chat({ policy: sparsevila(1, { perLayer, refreshEvery: N, refreshBlend: blend }), tracer: new engine.Tracer([sink]) });
    const steps = 10;
    const { prefilled, events } = await run(chat, { images: [IMAGE], text: 'What is in each corner of the picture?' }, steps + 1);

    // The question's scores: uniform weights over the rows after the last image token, a fresh cache.
    const rt = model.runtime;
    const ids = prefilled.promptTokenIds;
    const visualRows = ids.flatMap((id, r) => (id === model.spec.imageTokenId ? [r] : []));
    const weights = new Float32Array(ids.length);
    weights.fill(1 / (ids.length - visualRows.at(-1)! - 1), visualRows.at(-1)! + 1);
    const cache = await rt.createCache();
    const pre = await prefill(rt, {
      cache,
      ids,
      positions: prefilled.positions,
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds: prefilled.imageEmbedsAll,
      hidden: model.spec.text.hiddenSize,
      chunks: fixedChunks(512),
      logits: 'last',
      massWeights: weights,
    });
    const question = headSums(pre.mass!, ids.length, visualRows);
    let sets = question.map((s, l) => bruteTop(s, perLayer[l]!));
    const refreshes = sink.of('retrieval').filter((e) => e.step !== undefined);
    expect(refreshes.map((e) => e.step)).toEqual([3, 3, 3, 3, 6, 6, 6, 6, 9, 9, 9, 9]);
    expect(sink.of('retrieval').every((e) => fieldsProblem(e as never) === null)).toBe(true);
    expect(fieldsProblem({ ...refreshes[0]!, step: 'three' } as never)).toMatch(/'step' must be a finite number/);

    let rows = ids.length;
    for (let s = 1; s <= steps; s++) {
      const token = events[s - 1]!.id;
      const position = prefilled.positions.at(-1)! + s;
      const dense = s % N === 0;
      const pastBias = dense
        ? undefined
        : sets.map((set) => {
            const bias = new Float32Array(rows);
            visualRows.forEach((r, i) => (bias[r] = set.includes(i) ? 0 : -1e9));
            return bias;
          });
      const out = await rt.step({
        target: { cache },
        ids: [token],
        positions: [position],
        logits: 'last',
        pastBias,
        massWeights: dense ? new Float32Array([1]) : undefined,
      });
      rows++;
      expect(maxAbsDiff(out.logits, events[s]!.logits)).toBeLessThan(1e-4);
      if (dense) {
        const step = headSums(out.mass!, rows, visualRows);
        sets = step.map((m, l) =>
          bruteTop(
            m.map((x, i) => blend * x + (1 - blend) * question[l]![i]!),
            perLayer[l]!,
          ),
        );
        expect(refreshes.filter((e) => e.step === s).map((e) => [...e.retrieved].sort((a, b) => a - b))).toEqual(sets);
      }
    }
    // A dense refresh step reports every row attended; the steps after it their view's.
    const decodeSteps = sink.of('decode.step');
    expect(decodeSteps[2]).toMatchObject({ step: 3, attended: ids.length + 3, visualAttended: visualRows.length });
    expect(decodeSteps[3]!.visualAttended).toBeLessThan(visualRows.length);
    await rt.dropCache(cache);
  });

  it('the dense twin scores a refresh step as fully attended and the answer averages what each layer attended over the steps', async () => {
    const chat = model.chat({ policy: sparsevila(1, { budget: { ratio: 0.25 }, refreshEvery: 1 }), fidelity: true });
    const all = await chat.ask({ images: [IMAGE], text: 'What is shown?', maxNewTokens: 6, minNewTokens: 6 });
    // Every step is a refresh (dense): the sparse chat is the dense one, and every step's recall is 1.
    expect(all.fidelity!.tokenAgreement).toBe(1);
    expect(all.fidelity!.retrievalRecall).toEqual(Array(LAYERS).fill(1));
    expect(all.sparsity.attendedVisualPerLayer).toEqual(Array(LAYERS).fill(16));

    const every2 = model.chat({ policy: sparsevila(1, { budget: { ratio: 0.25 }, refreshEvery: 2 }), fidelity: true });
    const a = await every2.ask({ images: [IMAGE], text: 'What is shown?', maxNewTokens: 8, minNewTokens: 8 });
    // 7 fed steps (a length stop leaves the last token unfed): 2, 4, 6 dense (16 tokens), 1, 3, 5, 7 on 4 of 16.
    expect(a.sparsity.attendedVisualPerLayer).toEqual(Array(LAYERS).fill((3 * 16 + 4 * 4) / 7));
    for (const r of a.fidelity!.retrievalRecall!) (expect(r).toBeGreaterThan(0), expect(r).toBeLessThan(1));
  });
});

describe('refresh and per-layer budgets are validated policy fields', () => {
  const base = { method: 'sparsevila', keep: { budget: { ratio: 0.5 } } };
  it.each<[string, Record<string, unknown>, string]>([
    ['negative refreshEvery', { budget: { ratio: 0.25 }, refreshEvery: -1 }, 'policy.retrieve.refreshEvery'],
    ['fractional refreshEvery', { budget: { ratio: 0.25 }, refreshEvery: 1.5 }, 'policy.retrieve.refreshEvery'],
    ['refreshBlend above 1', { budget: { ratio: 0.25 }, refreshEvery: 4, refreshBlend: 2 }, 'policy.retrieve.refreshBlend'],
    ['NaN refreshBlend', { budget: { ratio: 0.25 }, refreshEvery: 4, refreshBlend: Number.NaN }, 'policy.retrieve.refreshBlend'],
    ['refreshBlend without refreshEvery', { budget: { ratio: 0.25 }, refreshBlend: 0.5 }, 'policy.retrieve.refreshBlend'],
    ['empty perLayer', { budget: { ratio: 0.25 }, perLayer: [] }, 'policy.retrieve.perLayer'],
    ['perLayer ratio over 1', { budget: { ratio: 0.25 }, perLayer: [{ ratio: 0.5 }, { ratio: 2 }] }, 'policy.retrieve.perLayer[1].ratio'],
  ])('%s → OPTION_INVALID naming %s', (_name, retrieve, subject) => {
    expect(() => engine.validatePolicy({ ...base, retrieve } as Policy)).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject }));
  });

  it('a once-per-turn policy is the value it was; refresh and per-layer budgets show in the label; the CLI flags give them', () => {
    expect(engine.validatePolicy({ ...base, retrieve: { budget: { ratio: 0.25 }, refreshEvery: 0 } } as Policy)).toEqual({
      ...base,
      keep: { budget: { ratio: 0.5 }, scope: 'per-image', minPerImage: 0 },
      retrieve: { budget: { ratio: 0.25 }, minPerImage: 0, perKvHead: false },
      salience: 'auto',
      positions: 'original',
    });
    const p = engine.validatePolicy({ ...base, retrieve: { budget: { ratio: 0.25 }, perLayer: [{ count: 1 }, { ratio: 0.75 }], refreshEvery: 8 } } as Policy);
    expect(engine.policyLabel(p)).toBe('SparseVILA keep 50% · retrieve 1/75% · refresh every 8 (blend 0.5)');
    const flags = engine.policyFromFlags({ policy: 'sparsevila', 'retrieve-per-layer': '1,0.75', 'refresh-every': '8', 'refresh-blend': '1' });
    expect(flags).toMatchObject({ retrieve: { perLayer: [{ count: 1 }, { ratio: 0.75 }], refreshEvery: 8, refreshBlend: 1 } });
    expect(() => engine.policyFromFlags({ policy: 'sparsevila', 'refresh-every': 'often' })).toThrow(
      expect.objectContaining({ code: 'OPTION_INVALID', subject: 'policy.retrieve.refreshEvery' }),
    );
  });

  it('a chat refuses per-layer budgets that do not name every layer of the model', async () => {
    const model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('refresh-policy-graphs'), threads: 1 });
    try {
      const policy = { ...base, retrieve: { budget: { ratio: 0.25 }, perLayer: [{ ratio: 0.5 }] } } as Policy;
      expect(() => model.chat({ policy })).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'policy.retrieve.perLayer' }));
    } finally {
      await model.close();
    }
  });
});
