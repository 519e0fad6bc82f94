/**
 * Sparsity methods as plug-ins: DivPrune (a method added through the interface alone) against a
 * brute-force transcription of its reference code, and a method registered from outside the package run
 * through `ask`, the step API, the CLI flags, the trace and the profiler's label. Also: the dense twin chunks its prefill as its
 * chat does.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MIN_CHUNK_ROWS } from '../src/runtime/memory.js';
import { CLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';
import { foldEvents } from '../profiler-ui/web/data/run-model.js';
import { runSummary } from '../profiler-ui/web/data/summary.js';
import type { LlavaSpec } from '../dist/src/checkpoint/spec.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
const IMAGE = path.join(CLIP_FIXTURE, 'image.png');

/**
 * vbdi/divprune's `DivPrune()` written out as it is, on a materialised distance matrix: 1 − cos (here as
 * dot / (|a| |b|)); the first pick is the argmax of each column's second smallest entry (torch.topk(2,
 * largest=False).values[1]); each later pick the argmax of the column minimum over the picked rows; the
 * picks sorted.
 */
function divPruneReference(x: Float32Array, n: number, d: number, k: number): number[] {
  const dist = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => {
      let dot = 0;
      let ni = 0;
      let nj = 0;
      for (let c = 0; c < d; c++) {
        dot += x[i * d + c]! * x[j * d + c]!;
        ni += x[i * d + c]! ** 2;
        nj += x[j * d + c]! ** 2;
      }
      return 1 - dot / Math.sqrt(ni * nj);
    }),
  );
  const argmax = (xs: number[]) => xs.reduce((best, v, j) => (v > xs[best]! ? j : best), 0);
  const picked: number[] = [];
  for (let i = 0; i < k; i++) {
    const scores = Array.from({ length: n }, (_, j) =>
      i === 0 ? dist.map((row) => row[j]!).sort((a, b) => a - b)[1]! : Math.min(...picked.map((s) => dist[s]![j]!)),
    );
    picked.push(argmax(scores));
  }
  return picked.sort((a, b) => a - b);
}

describe('DivPrune', () => {
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('methods-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('keeps the max-min diverse tokens of each image, as its reference code picks them, per image and over a turn', async () => {
    const n = (model.spec as LlavaSpec).imageTokenCount;
    const d = model.spec.text.hiddenSize;
    for (const keep of [{ count: 5 }, { ratio: 0.5 }, { count: 1 }]) {
      const chat = model.chat({ policy: { method: 'divprune', keep: { budget: keep } } });
      const encoded = await chat.encode([IMAGE, path.join(CLIP_FIXTURE, '..', 'llava-siglip-qwen2-tiny', 'image.png')]);
      const pruned = await encoded.prune();
      const k = engine.budgetCount(keep, n);
      pruned.kept.forEach((kept, img) => expect(kept).toEqual(divPruneReference(encoded.embeds.subarray(img * n * d, (img + 1) * n * d), n, d, k)));
      // The kept tokens' own embeddings enter the LLM (no merging).
      expect(Array.from(pruned.embeds.subarray(0, d))).toEqual(Array.from(encoded.embeds.subarray(pruned.kept[0]![0]! * d, (pruned.kept[0]![0]! + 1) * d)));
    }
    const global = await (await model.chat({ policy: { method: 'divprune', keep: { budget: { count: 7 }, scope: 'global' } } }).encode([IMAGE, IMAGE])).prune();
    // Two copies of one image: a diverse pick never takes a token twice, so the 7 spread over both copies' tokens without repeating a patch.
    const flat = global.kept.flatMap((ks, img) => ks.map((t) => img * n + t));
    expect(flat).toHaveLength(7);
    expect(new Set(global.kept.flat()).size).toBe(7);
  });

  it('answers through ask with its label in the trace, and refuses a per-image minimum', async () => {
    const sink = new engine.MemorySink();
    const chat = model.chat({ maxNewTokens: 3, policy: { method: 'divprune', keep: { budget: { count: 6 } } }, tracer: new engine.Tracer([sink]) });
    const answer = await chat.ask({ images: [IMAGE], text: 'What is shown?' });
    expect(answer.sparsity.turnKeptPerImage).toEqual([6]);
    expect(sink.of('run.start')[0]!.label).toBe('DivPrune keep 6');
    expect(sink.of('kept')[0]!.kept).toHaveLength(6);
    expect(() => engine.validatePolicy({ method: 'divprune', keep: { budget: { ratio: 0.5 }, minPerImage: 2 } })).toThrow(
      expect.objectContaining({ code: 'OPTION_INVALID', subject: 'policy.keep.minPerImage' }),
    );
    expect(engine.policyFromFlags({ policy: 'divprune', keep: '25%', 'keep-scope': 'global' })).toEqual({
      method: 'divprune',
      keep: { budget: { ratio: 0.25 }, scope: 'global', minPerImage: 0 },
    });
  });
});

describe('a method registered from outside the package', () => {
  type Checkerboard = { method: 'checkerboard'; phase: 0 | 1; retrieveCount: number };
  const checkerboard: import('sparsevila-ts').SparsityMethod<Checkerboard> = {
    name: 'checkerboard',
    summary: 'keeps every other patch (a test method)',
    validate(v) {
      if (v.phase !== 0 && v.phase !== 1) throw new engine.InputError('OPTION_INVALID', 'policy.phase: must be 0 or 1', { subject: 'policy.phase' });
      return { method: 'checkerboard', phase: v.phase, retrieveCount: Number(v.retrieveCount ?? 2) };
    },
    label: (p) => `checkerboard phase ${p.phase}`,
    cli: {
      flags: { 'checker-phase': { type: 'string', help: 'which patches the checkerboard keeps, 0 or 1' } },
      policy: (v) => ({ method: 'checkerboard', phase: Number(v['checker-phase'] ?? 0) }),
    },
    prune: (p, t) => ({ kept: t.tokensPerImage.map((n) => Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === p.phase)) }),
    keptCount: (_, tokens) => tokens.reduce((a, n) => a + Math.ceil(n / 2), 0),
    retrieve: (p) => ({ budget: { count: p.retrieveCount }, minPerImage: 0, perKvHead: false }),
  };
  let model: Model;
  beforeAll(async () => {
    engine.registerSparsityMethod(checkerboard);
    model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('methods-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('runs through ask and the step API: its keep set at prefill, its retrieval at decode, its label in the trace', async () => {
    const policy = { method: 'checkerboard', phase: 1 };
    const sink = new engine.MemorySink();
    const answer = await model.chat({ maxNewTokens: 3, policy, tracer: new engine.Tracer([sink]) }).ask({ images: [IMAGE], text: 'What is shown?' });
    const odd = Array.from({ length: 8 }, (_, i) => 2 * i + 1);
    expect(answer.sparsity.policy).toBe('checkerboard');
    expect(answer.sparsity.turnKeptPerImage).toEqual([8]);
    expect(answer.sparsity.attendedVisualPerLayer).toEqual(Array(model.spec.text.numLayers).fill(2));
    expect(sink.of('run.start')[0]).toMatchObject({ policy: { method: 'checkerboard', phase: 1, retrieveCount: 2 }, label: 'checkerboard phase 1' });
    expect(sink.of('kept')[0]!.kept).toEqual(odd);
    expect(sink.of('retrieval').map((e) => e.retrieved.length)).toEqual(Array(model.spec.text.numLayers).fill(2));
    // The profiler page's own fold and summary show the run under the method's label.
    const [run] = [...foldEvents(sink.events).values()];
    expect(runSummary(run!)).toMatchObject({ label: 'checkerboard phase 1', method: 'checkerboard' });

    const chat = model.chat({ maxNewTokens: 2, policy });
    const pruned = await (await chat.encode([IMAGE])).prune();
    expect(pruned.kept).toEqual([odd]);
    const retrieved = (await pruned.prefill('What is shown?')).retrieve();
    expect(retrieved.layers!.map((l) => l.rows.length)).toEqual(Array(model.spec.text.numLayers).fill(2));
    const overridden = (await (await (await model.chat({ policy }).encode([IMAGE])).prune({ budget: { count: 3 } })).prefill('Hi')).retrieve({
      budget: { count: 1 },
      minPerImage: 0,
      perKvHead: false,
    });
    expect(overridden.layers!.map((l) => l.rows.length)).toEqual(Array(model.spec.text.numLayers).fill(1));
  });

  it('gets CLI flags and help, typed errors for its policy, and no second registration', () => {
    expect(engine.policyFromFlags({ policy: 'checkerboard', 'checker-phase': '1' })).toEqual({ method: 'checkerboard', phase: 1, retrieveCount: 2 });
    expect(engine.cliHelp()).toMatch(/--checker-phase V\s+which patches the checkerboard keeps, 0 or 1 \[checkerboard\]/);
    expect(engine.cliHelp()).toContain('checkerboard: keeps every other patch');
    expect(() => engine.validatePolicy({ method: 'checkerboard', phase: 2 })).toThrow(
      expect.objectContaining({ code: 'OPTION_INVALID', subject: 'policy.phase' }),
    );
    expect(() => model.chat({ policy: { method: 'checkerboard', phase: 3 } })).toThrow(expect.objectContaining({ subject: 'policy.phase' }));
    expect(() => engine.registerSparsityMethod(checkerboard)).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'method.name' }));
    expect(() =>
      engine.registerSparsityMethod({ ...checkerboard, name: 'other', cli: { flags: { keep: { type: 'boolean', help: '' } }, policy: () => ({}) } }),
    ).toThrow(expect.objectContaining({ subject: '--keep' }));
    expect(() => engine.validatePolicy({ method: 'nope' })).toThrow(
      expect.objectContaining({ subject: 'policy.method', message: expect.stringContaining('checkerboard') }),
    );
  });
});

describe('the dense twin', () => {
  it("prefills in the chat's own chunks: a dense chat agrees with its twin exactly, at any prefillChunk and score limit", async () => {
    const model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('methods-graphs'), threads: 1 });
    try {
      for (const prefillChunk of [7, 512]) {
        const answer = await model
          .chat({ maxNewTokens: 4, prefillChunk, fidelity: true })
          .ask({ images: [IMAGE], text: 'Describe the picture in a few words.' });
        expect(answer.fidelity!.tokenAgreement).toBe(1);
        expect(answer.fidelity!.klPerStep.every((kl) => kl === 0)).toBe(true);
      }
      // Chunks that shrink as the cache grows (a score limit): the twin runs the chat's chunks, on a follow-up turn
      // too, where their sizes depend on the rows cached before it. (This fixture's logits come out alike in any
      // chunks, so the calls themselves are compared.)
      const heads = model.spec.text.numHeads;
      const calls = new Map<number, number[]>();
      const step = model.runtime.step.bind(model.runtime);
      const spy = vi.spyOn(model.runtime, 'step').mockImplementation((req) => {
        const cache = 'cache' in req.target ? req.target.cache : -1;
        calls.set(cache, [...(calls.get(cache) ?? []), req.ids.length]);
        return step(req);
      });
      const chat = model.chat({ maxNewTokens: 4, minNewTokens: 4, prefillChunk: 96, prefillScoreBytes: heads * 4 * 2480, fidelity: true });
      for (const text of ['Describe the picture in a few words.', 'And this one? Name every colour and every shape in it, one by one.']) {
        const answer = await chat.ask({ images: [IMAGE], text });
        expect(answer.fidelity!.tokenAgreement).toBe(1);
      }
      spy.mockRestore();
      const [ours, twin] = [...calls.values()];
      expect(calls.size).toBe(2);
      expect(twin).toEqual(ours);
      // The first question's 50 rows after 22 cached go as 40 and 10; the second's, after ~100, in chunks of 32.
      const chunks = ours!.filter((n) => n > 1);
      expect(chunks).toContain(40);
      expect(chunks).toContain(MIN_CHUNK_ROWS);
    } finally {
      await model.close();
    }
  });
});
