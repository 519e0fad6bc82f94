/**
 * What a decode step and a prefill cost beyond attention itself, checked where a copy would hide: the feeds a
 * step hands onnxruntime (views of the KV store, not copies), the store and the retrieval view across steps
 * (no re-allocation, no re-gather), the decoder graph's score-sized tensors (no concatenated, softmaxed or
 * split copies of the [heads, T, past] scores), and the prefill's chunk plan (the attention-mass graph sees
 * only the question's rows).
 */
import fs from 'node:fs';
import onnxProto from 'onnx-proto';
import type ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import { openCheckpoint } from '../src/families/index.js';
import { ensureGraph } from '../src/graph/build.js';
import { KvCache } from '../src/runtime/kv-cache.js';
import { DecoderStepper } from '../src/runtime/llm-step.js';
import { chunkRowsAt, fixedChunks, MIN_CHUNK_ROWS } from '../src/runtime/memory.js';
import type { Runtime } from '../src/runtime/runtime.js';
import type { StepRequest, StepResult } from '../src/runtime/protocol.js';
import { chunkStarts, prefill } from '../src/session/prefill.js';
import { writeTinyLlava } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/engine.js';

const SHAPE = { layers: 3, kvHeads: 2, headDim: 4 };
const ROW = SHAPE.kvHeads * SHAPE.headDim;
const HIDDEN = 8;

/** Stands in for an ORT session: records each run's feeds and returns new rows, as the decoder graph does. */
class RecordingSession {
  readonly feeds: Record<string, ort.Tensor>[] = [];
  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, { data: Float32Array }>> {
    this.feeds.push(feeds);
    const T = feeds.position_ids!.dims[0]!;
    const out: Record<string, { data: Float32Array }> = { logits: { data: new Float32Array(5) } };
    for (let l = 0; l < SHAPE.layers; l++) {
      out[`new_key.${l}`] = { data: new Float32Array(T * ROW).fill(this.feeds.length) };
      out[`new_value.${l}`] = { data: new Float32Array(T * ROW).fill(-this.feeds.length) };
    }
    return out;
  }
}

function filledCache(rows: number, reserve: number): KvCache {
  const cache = new KvCache(SHAPE);
  cache.reserve(reserve);
  const block = Float32Array.from({ length: rows * ROW }, (_, i) => i);
  cache.append(
    Array(SHAPE.layers).fill(block),
    Array(SHAPE.layers).fill(block),
    Array.from({ length: rows }, (_, i) => i),
  );
  return cache;
}

const step = (stepper: DecoderStepper, target: Parameters<DecoderStepper['run']>[0], position: number) =>
  stepper.run(target, { embeds: new Float32Array(HIDDEN), positions: [position] });

describe('a decode step copies nothing proportional to the cache', () => {
  it('feeds every layer its past as a zero-copy prefix of the KV store, and its bias from one reused buffer', async () => {
    const session = new RecordingSession();
    const stepper = new DecoderStepper(session as unknown as ort.InferenceSession, SHAPE.layers, SHAPE.kvHeads, SHAPE.headDim, HIDDEN);
    const cache = filledCache(1000, 1010);
    const stores = Array.from({ length: SHAPE.layers }, (_, l) => cache.past(l).keys.buffer);
    for (let s = 0; s < 8; s++) await step(stepper, cache, 1000 + s);
    session.feeds.forEach((feeds, s) => {
      for (let l = 0; l < SHAPE.layers; l++) {
        const keys = feeds[`past_key.${l}`]!.data as Float32Array;
        expect(keys.buffer, `step ${s} layer ${l}`).toBe(stores[l]);
        expect(keys.byteOffset).toBe(0);
        expect(keys.length).toBe((1000 + s) * ROW);
        expect((feeds[`past_value.${l}`]!.data as Float32Array).buffer).toBe(cache.past(l).values.buffer);
        // One zero-bias buffer serves every layer and step: no per-step [past] array.
        expect((feeds[`past_bias.${l}`]!.data as Float32Array).buffer).toBe((session.feeds[0]![`past_bias.0`]!.data as Float32Array).buffer);
      }
    });
    // The store was reserved for the turn: the steps wrote their rows in place, never re-allocating it.
    for (let l = 0; l < SHAPE.layers; l++) expect(cache.past(l).keys.buffer).toBe(stores[l]);
    expect(cache.length).toBe(1008);
    expect(Array.from(cache.past(0).keys.subarray(1007 * ROW, 1008 * ROW))).toEqual(Array(ROW).fill(8));
  });

  it('a retrieval view gathers its rows once; each step appends one row to the view and to the cache', async () => {
    const session = new RecordingSession();
    const stepper = new DecoderStepper(session as unknown as ort.InferenceSession, SHAPE.layers, SHAPE.kvHeads, SHAPE.headDim, HIDDEN);
    const cache = filledCache(1000, 1010);
    const subsets = [null, Array.from({ length: 100 }, (_, i) => i * 10), [0, 1, 2, 999]];
    const view = cache.select(subsets);
    const gather = vi.spyOn(cache, 'gather');
    const compact = [1, 2].map((l) => view.past(l).keys.buffer);
    for (let s = 0; s < 8; s++) await step(stepper, view, 1000 + s);
    expect(gather).not.toHaveBeenCalled();
    session.feeds.forEach((feeds, s) => {
      expect((feeds['past_key.0']!.data as Float32Array).buffer).toBe(cache.past(0).keys.buffer);
      expect(feeds['past_key.1']!.dims[0]).toBe(100 + s);
      expect(feeds['past_key.2']!.dims[0]).toBe(4 + s);
      expect((feeds['past_key.1']!.data as Float32Array).buffer).toBe(compact[0]);
      expect((feeds['past_key.2']!.data as Float32Array).buffer).toBe(compact[1]);
    });
    expect(cache.length).toBe(1008);
    expect(view.past(2).rows).toBe(12);
  });

  it('an fp16 store: steps feed float16 views of its half rows and append the graph half rows, with no conversion', async () => {
    const half = { ...SHAPE, type: 'float16' as const };
    const session = {
      feeds: [] as Record<string, ort.Tensor>[],
      async run(feeds: Record<string, ort.Tensor>) {
        this.feeds.push(feeds);
        const out: Record<string, { data: Float32Array | Uint16Array }> = { logits: { data: new Float32Array(5) } };
        for (let l = 0; l < SHAPE.layers; l++) for (const n of ['new_key', 'new_value']) out[`${n}.${l}`] = { data: new Uint16Array(ROW).fill(0x3c00) }; // 1.0
        return out;
      },
    };
    const stepper = new DecoderStepper(session as unknown as ort.InferenceSession, SHAPE.layers, SHAPE.kvHeads, SHAPE.headDim, HIDDEN, 1, false, 'float16');
    const cache = new KvCache(half);
    cache.reserve(8);
    for (let s = 0; s < 3; s++) await step(stepper, cache, s);
    // The first step had no past (a masked half dummy row); the next read the store's own buffer.
    expect(session.feeds[0]!['past_key.0']!.type).toBe('float16');
    for (const s of [1, 2]) {
      const keys = session.feeds[s]!['past_key.1']!;
      expect(keys.type).toBe('float16');
      expect((keys.data as Uint16Array).buffer).toBe(cache.past(1).keys.buffer);
      expect(keys.dims[0]).toBe(s);
    }
    expect(cache.past(2).keys).toBeInstanceOf(Uint16Array);
    expect(Array.from(cache.past(2).values.subarray(0, 3 * ROW))).toEqual(Array(3 * ROW).fill(0x3c00));
    // A view gathers half rows; float32 rows are refused by a half store.
    expect(cache.select([null, [0, 2], [1]]).past(1).keys).toBeInstanceOf(Uint16Array);
    const f32 = Array(SHAPE.layers).fill(new Float32Array(ROW));
    expect(() => cache.append(f32, f32, [9])).toThrow(/Float32Array appended to a float16 store/);
  });

  it('a view has room for every row the cache was reserved for: a 128-token answer never regrows it', async () => {
    const session = new RecordingSession();
    const stepper = new DecoderStepper(session as unknown as ort.InferenceSession, SHAPE.layers, SHAPE.kvHeads, SHAPE.headDim, HIDDEN);
    const cache = filledCache(1000, 1000 + 129);
    const view = cache.select(Array.from({ length: SHAPE.layers }, () => Array.from({ length: 100 }, (_, i) => i * 10)));
    const buffers = Array.from({ length: SHAPE.layers }, (_, l) => view.past(l).keys.buffer);
    for (let s = 0; s < 128; s++) await step(stepper, view, 1000 + s);
    for (let l = 0; l < SHAPE.layers; l++) expect(view.past(l).keys.buffer, `layer ${l}`).toBe(buffers[l]);
    expect(view.past(0).rows).toBe(228);
  });
});

/**
 * The decoder graph's tensors shaped like the attention scores of the past, [kvHeads, groups·T, past]: from the
 * `scores_past` FusedMatMul through every consumer that keeps that shape (elementwise ops, Concat, Softmax,
 * Split). Reductions over the past (MatMul with values or row weights, ReduceMax/Sum) end the walk; Reshape
 * is followed but not counted (onnxruntime reshapes in place).
 */
function scoreSizedNodes(modelPath: string, layer: number): string[] {
  const model = onnxProto.onnx.ModelProto.decode(fs.readFileSync(modelPath));
  const nodes = model.graph!.node!;
  const consumers = new Map<string, typeof nodes>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const start = nodes.find((n) => n.name === `/model/layers.${layer}/self_attn/scores_past`);
  if (!start) throw new Error('no scores_past node');
  const keepsShape = new Set(['Add', 'Sub', 'Mul', 'Div', 'Exp', 'Concat', 'Softmax', 'Split', 'Where', 'Identity', 'Cast', 'Reshape', 'Transpose']);
  const found: string[] = [];
  const seen = new Set<string>();
  const walk = (n: (typeof nodes)[number]) => {
    if (seen.has(n.name!)) return;
    seen.add(n.name!);
    if (n.opType !== 'Reshape') found.push(n.opType!);
    for (const out of n.output ?? []) for (const c of consumers.get(out) ?? []) if (keepsShape.has(c.opType!)) walk(c);
  };
  walk(start);
  return found;
}

describe('the decoder graph holds the attention scores as few times as it can', () => {
  it('its score-sized tensors are the scores, the masked scores, their shift and its exp — no Concat, Softmax or Split copies', () => {
    const dir = tempDir('eff-graph');
    writeTinyLlava(dir, { vision: 'siglip', text: 'qwen2', textHeads: 4, textKvHeads: 2, seed: 5 });
    const checkpoint = openCheckpoint(dir);
    for (const kind of ['decoder', 'decoder-mass'] as const) {
      const graph = ensureGraph(checkpoint, kind, { precision: 'fp32', blockSize: 32, cacheDir: tempDir('eff-graphs') });
      for (let layer = 0; layer < checkpoint.spec.text.numLayers; layer++) {
        expect(scoreSizedNodes(graph, layer), `${kind} layer ${layer}`).toEqual(['FusedMatMul', 'Add', 'Sub', 'Exp']);
      }
    }
  });
});

describe('the prefill runs the attention-mass graph on the question rows only, and chunks alike with or without it', () => {
  it('chunk starts: every chunkSize rows, the grid restarting at each break', () => {
    expect(chunkStarts(1300, 512, [0, -1])).toEqual([0, 512, 1024]);
    expect(chunkStarts(1300, 512, [0, 1290])).toEqual([0, 512, 1024, 1290]);
    expect(chunkStarts(1300, 512, [1024, 1024])).toEqual([0, 512, 1024]);
    expect(chunkStarts(1300, 512, [700, -1])).toEqual([0, 512, 700, 1212]);
    expect(chunkStarts(1300, 512, [1280, 1299])).toEqual([0, 512, 1024, 1280, 1299]);
    expect(chunkStarts(1300, 512, [1300, 0])).toEqual([0, 512, 1024]);
    // A size per start: the grid follows it, and still restarts at each break.
    expect(chunkStarts(1300, (at) => (at < 600 ? 400 : 100), [1250, -1])).toEqual([0, 400, 800, 900, 1000, 1100, 1200, 1250]);
  });

  it('chunk rows under a score limit: the largest chunk whose heads × rows × (past + rows) × 4 bytes fit, 32 at the least', () => {
    const rule = { rows: 512, scoreBytes: 256 * 2 ** 20, heads: 14 };
    const fits = (past: number, rows: number) => rule.heads * rows * (past + rows) * 4 <= rule.scoreBytes;
    expect(chunkRowsAt(rule, 0)).toBe(512);
    expect(chunkRowsAt(rule, 8192)).toBe(512);
    for (const past of [9000, 16384, 32768, 46800]) {
      const rows = chunkRowsAt(rule, past);
      expect(rows, `past ${past}`).toBeLessThan(512);
      expect(fits(past, rows) && !fits(past, rows + 1), `past ${past}: ${rows} rows`).toBe(true);
    }
    expect(chunkRowsAt(rule, 32768)).toBe(145);
    expect(chunkRowsAt(rule, 10_000_000)).toBe(MIN_CHUNK_ROWS);
    expect(chunkRowsAt({ ...rule, rows: 16 }, 10_000_000)).toBe(16);
    expect(chunkRowsAt({ ...rule, scoreBytes: Infinity }, 10_000_000)).toBe(512);
  });

  it('a long prompt with a 10-row question: chunk-sized steps without mass weights, then one 10-row step with them', async () => {
    const calls: StepRequest[] = [];
    const heads = 2;
    const runtime = {
      step: async (req: Omit<StepRequest, 'op'>): Promise<StepResult> => {
        calls.push(req as StepRequest);
        const width = calls.reduce((n, c) => n + c.ids.length, 0);
        return { logits: new Float32Array(3), mass: req.massWeights ? [new Float32Array(heads * width).fill(1)] : undefined, seconds: 0 };
      },
    } as unknown as Runtime;
    const n = 1300;
    const massWeights = new Float32Array(n).fill(0.1, n - 10);
    const ids = Array.from({ length: n }, (_, i) => i % 50);
    /** The prompt of `ids` in chunks of 512, with `extra` over it. */
    const run = (extra: Partial<Parameters<typeof prefill>[1]>) =>
      prefill(runtime, { cache: 1, ids, positions: ids.map((_, i) => i), imageTokenId: -1, hidden: 4, chunks: fixedChunks(512), logits: 'last', ...extra });
    const out = await run({ massWeights });
    expect(calls.map((c) => [c.ids.length, c.massWeights?.length ?? 0])).toEqual([
      [512, 0],
      [512, 0],
      [266, 0],
      [10, 10],
    ]);
    expect(calls.flatMap((c) => c.positions)).toEqual(ids.map((_, i) => i));
    expect(out.mass![0]!.length).toBe(heads * n);

    // With images, the text after the last one is a chunk of its own whether or not it is weighted: a dense
    // chat and a SparseVILA chat chunk one prompt alike.
    for (const weights of [massWeights, undefined]) {
      calls.length = 0;
      const withImage = ids.map((id, i) => (i >= 100 && i < 1250 ? 999 : id));
      await run({ ids: withImage, imageTokenId: 999, imageEmbeds: new Float32Array(1150 * 4), massWeights: weights });
      expect(calls.map((c) => c.ids.length)).toEqual(weights ? [512, 512, 226, 40, 10] : [512, 512, 226, 50]);
    }

    // Under a score limit the chunks shrink as the cache grows, counting the rows cached before this prefill.
    const rule = { rows: 512, scoreBytes: heads * 4 * 200 * 1000, heads };
    for (const pastRows of [0, 3000]) {
      calls.length = 0;
      await run({ chunks: rule, pastRows });
      const sizes = calls.map((c) => c.ids.length);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(n);
      let past = pastRows;
      for (const [k, rows] of sizes.entries()) {
        if (k < sizes.length - 1) expect(rows, `chunk ${k} after ${past} rows`).toBe(chunkRowsAt(rule, past));
        expect(heads * rows * (past + rows) * 4).toBeLessThanOrEqual(rule.scoreBytes);
        past += rows;
      }
      expect(sizes[0]).toBe(pastRows === 0 ? 447 : 65);
    }
  });
});

describe('retrieval over many frames', () => {
  /** Brute force: top-k by summed heads, then each image's best missing tokens up to the floor. */
  function reference(m: Float32Array, columns: number, rows: number[], image: number[], k: number, floor: number): number[] {
    const heads = m.length / columns;
    const scores = rows.map((r) => Array.from({ length: heads }, (_, h) => m[h * columns + r]!).reduce((a, b) => a + b, 0));
    const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
    const chosen = new Set(order.slice(0, k));
    for (const img of [...new Set(image)]) {
      const own = order.filter((i) => image[i] === img);
      const missing = floor - own.filter((i) => chosen.has(i)).length;
      own
        .filter((i) => !chosen.has(i))
        .slice(0, Math.max(0, missing))
        .forEach((i) => chosen.add(i));
    }
    return [...chosen].sort((a, b) => a - b).map((i) => rows[i]!);
  }

  it('the per-frame floor picks what a brute-force reference picks (frames grouped once, not rescanned per frame)', async () => {
    const { retrieve } = await import('../src/sparsity/retrieve.js');
    let s = 3;
    const random = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    for (let trial = 0; trial < 30; trial++) {
      const frames = 1 + Math.floor(random() * 40);
      const per = 1 + Math.floor(random() * 12);
      const n = frames * per;
      const columns = n + 7;
      const rows = Array.from({ length: n }, (_, i) => 4 + i);
      const image = rows.map((_, i) => Math.floor(i / per));
      // Quarter steps make ties common: the reference breaks them to the lower index, as topK does.
      const mass = [Float32Array.from({ length: 4 * columns }, () => Math.round(random() * 4) / 4)];
      const floor = Math.floor(random() * 3);
      const [layer] = retrieve(mass, columns, { rows, image }, { budget: { ratio: 0.1 }, perKvHead: false, minPerImage: floor }, 2);
      expect(layer!.rows, `trial ${trial}`).toEqual(reference(mass[0]!, columns, rows, image, Math.max(1, Math.round(0.1 * n)), floor));
    }
  });
});
