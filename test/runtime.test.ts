/**
 * The runtime's numerics on tiny random checkpoints written in the HF layout: chunked prefill, incremental
 * decode, decode over a position subset, and int4, each against an independent path through the same graphs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyLlava, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir, TEST_RUNTIME } from './helpers/engine.js';
import { embedding, linear } from '../dist/src/graph/layers.js';
import { Runtime } from '../dist/src/runtime/runtime.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill } from '../dist/src/session/prefill.js';
import { OnnxGraphBuilder } from '../dist/src/graph/onnx-builder.js';
import { graphCacheKey } from '../dist/src/graph/build.js';
import { argmax } from '../dist/src/session/sampling.js';
import { dequantizeInt4, quantizeInt4 } from '../dist/src/weights/int4.js';

type Runtime = InstanceType<typeof Runtime>;

const VOCAB = 300;
const ids = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % 256);
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

async function start(options: TinyLlavaOptions, precision: 'fp32' | 'fp16' | 'int4' = 'fp32'): Promise<{ rt: Runtime; vocab: number; hidden: number }> {
  const dir = tempDir('rt');
  const written = writeTinyLlava(dir, { vocab: VOCAB, ...options });
  const rt = await Runtime.start(dir, { precision, blockSize: 32, cacheDir: tempDir('graphs') }, TEST_RUNTIME);
  return { rt, vocab: VOCAB, hidden: written.config.text_config.hidden_size };
}

/** Logits of every position for `tokens`, from one prefill call over an empty cache. */
async function oneShot(rt: Runtime, tokens: number[], hidden: number): Promise<Float32Array> {
  const cache = await rt.createCache();
  const out = await prefill(rt, { cache, ids: tokens, positions: range(tokens.length), imageTokenId: -1, hidden, chunks: fixedChunks(1 << 20), logits: 'all' });
  await rt.dropCache(cache);
  return out.logits;
}

const SHAPES: [string, TinyLlavaOptions][] = [
  ['clip + llama, legacy layout, GQA 4/2', { vision: 'clip', text: 'llama', layout: 'legacy', textHeads: 4, textKvHeads: 2, seed: 1 }],
  [
    'siglip + qwen2, current layout, tied, GQA 8/2, BF16, 3 shards',
    { vision: 'siglip', text: 'qwen2', layout: 'current', tie: true, textHeads: 8, textKvHeads: 2, textHidden: 64, dtype: 'BF16', shards: 3, seed: 2 },
  ],
  [
    'clip + llama, MHA, F16, llama3 rope scaling, attention bias',
    {
      vision: 'clip',
      text: 'llama',
      textHeads: 4,
      textKvHeads: 4,
      dtype: 'F16',
      attentionBias: true,
      seed: 3,
      ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    },
  ],
];

describe.each(SHAPES)('%s', (_name, options) => {
  let rt: Runtime;
  let vocab: number;
  let hidden: number;
  beforeAll(async () => ({ rt, vocab, hidden } = await start(options)));
  afterAll(() => rt?.close());

  it('chunked prefill equals one-shot prefill for every chunk size', async () => {
    const tokens = ids(23);
    const reference = await oneShot(rt, tokens, hidden);
    for (const chunkSize of [1, 4, 7, 22]) {
      const cache = await rt.createCache();
      const out = await prefill(rt, { cache, ids: tokens, positions: range(23), imageTokenId: -1, hidden, chunks: fixedChunks(chunkSize), logits: 'all' });
      expect(maxAbsDiff(out.logits, reference), `chunk ${chunkSize}`).toBeLessThan(1e-4);
      await rt.dropCache(cache);
    }
  });

  it('incremental decode equals recomputing the whole sequence', async () => {
    const prompt = ids(9, 2);
    const cache = await rt.createCache();
    let logits = (await prefill(rt, { cache, ids: prompt, positions: range(9), imageTokenId: -1, hidden, chunks: fixedChunks(4), logits: 'last' })).logits;
    const sequence = [...prompt];
    for (let step = 0; step < 6; step++) {
      const next = argmax(logits);
      const full = await oneShot(rt, sequence, hidden);
      expect(maxAbsDiff(logits, full.subarray((sequence.length - 1) * vocab))).toBeLessThan(1e-4);
      sequence.push(next);
      logits = (await rt.step({ target: { cache }, ids: [next], positions: [sequence.length - 1], logits: 'last' })).logits;
    }
    await rt.dropCache(cache);
  });

  it('decode over a per-layer position subset equals full attention masked to that subset', async () => {
    const prompt = ids(17, 3);
    const layers = (await rt.cacheInfo(await rt.createCache())).length; // 0: warm the API
    expect(layers).toBe(0);
    const sparse = await rt.createCache();
    const masked = await rt.createCache();
    for (const cache of [sparse, masked]) {
      await prefill(rt, { cache, ids: prompt, positions: range(17), imageTokenId: -1, hidden, chunks: fixedChunks(8), logits: 'last' });
    }
    const numLayers = options.textLayers ?? 2;
    // Different subsets per layer (always keeping the last row), one layer left whole.
    const subsets = Array.from({ length: numLayers }, (_, l) => (l === 1 ? null : range(17).filter((r) => r % (l + 2) === 0 || r === 16)));
    const view = await rt.createView(sparse, subsets);
    let token = 65;
    for (let step = 0; step < 4; step++) {
      const position = 17 + step;
      const viaView = await rt.step({ target: { view }, ids: [token], positions: [position], logits: 'last' });
      // The masked twin attends the full cache; columns outside the subset get −1e9. Rows decoded after the
      // view was made stay visible in both.
      const pastBias = subsets.map((s) => {
        const bias = new Float32Array(17 + step).fill(0);
        if (s) for (let r = 0; r < 17; r++) if (!s.includes(r)) bias[r] = -1e9;
        return bias;
      });
      const viaMask = await rt.step({ target: { cache: masked }, ids: [token], positions: [position], logits: 'last', pastBias });
      expect(maxAbsDiff(viaView.logits, viaMask.logits)).toBeLessThan(1e-4);
      token = argmax(viaView.logits);
    }
    // The view's rows also landed in the full cache, with their positions.
    const info = await rt.cacheInfo(sparse);
    expect(info.length).toBe(21);
    expect(Array.from(info.positions.slice(15))).toEqual([15, 16, 17, 18, 19, 20]);
  });

  it('image embeddings spliced at image-token rows change exactly those rows', async () => {
    const tokens = [1, 2, 299, 299, 299, 3, 4];
    const cache = await rt.createCache();
    const embeds = Float32Array.from({ length: 3 * hidden }, (_, i) => Math.sin(i));
    const withImage = await prefill(rt, {
      cache,
      ids: tokens,
      positions: range(7),
      imageTokenId: 299,
      imageEmbeds: embeds,
      hidden,
      chunks: fixedChunks(3),
      logits: 'all',
    });
    const plain = await oneShot(rt, tokens, hidden);
    expect(maxAbsDiff(withImage.logits.subarray(0, 2 * vocab), plain.subarray(0, 2 * vocab))).toBeLessThan(1e-5);
    expect(maxAbsDiff(withImage.logits.subarray(2 * vocab), plain.subarray(2 * vocab))).toBeGreaterThan(1e-3);
    await expect(
      prefill(rt, {
        cache,
        ids: tokens,
        positions: range(7),
        imageTokenId: 299,
        imageEmbeds: embeds.subarray(hidden),
        hidden,
        chunks: fixedChunks(3),
        logits: 'last',
      }),
    ).rejects.toMatchObject({ code: 'IMAGE_COUNT_MISMATCH' });
  });
});

describe('weight precision', () => {
  it('MatMulNBits computes x · dequantize(quantize(W))ᵀ: the packing is what the operator reads', async () => {
    const dir = tempDir('nbits');
    const [n, k] = [48, 96];
    const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 0.37) * 0.1);
    const b = new OnnxGraphBuilder('linear', dir);
    const x = b.input('x', 'float32', [1, k]);
    const y = linear(b, { has: () => true, read: () => w }, x, 'probe', { in: k, out: n, bias: false }, { precision: 'int4', blockSize: 32 });
    b.output(y, 'y', 'float32', [1, n]);
    const ort = (await import('onnxruntime-node')).default;
    const session = await ort.InferenceSession.create(b.save().modelPath);
    const input = Float32Array.from({ length: k }, (_, i) => Math.cos(i * 0.21));
    const got = (await session.run({ x: new ort.Tensor('float32', input, [1, k]) })).y!.data as Float32Array;
    const deq = dequantizeInt4(quantizeInt4(w, n, k, 32));
    const want = Float32Array.from({ length: n }, (_, r) => input.reduce((acc, v, c) => acc + v * deq[r * k + c]!, 0));
    const exact = Float32Array.from({ length: n }, (_, r) => input.reduce((acc, v, c) => acc + v * w[r * k + c]!, 0));
    const scale = maxAbsDiff(want, new Float32Array(n));
    // accuracy_level 4 quantizes activations to int8 blocks: ~1% of the range; a packing error would be O(1).
    expect(maxAbsDiff(got, want) / scale).toBeLessThan(0.02);
    expect(maxAbsDiff(deq, w)).toBeLessThan(0.1 / 15); // RTN error ≤ half a step of the widest block
    expect(maxAbsDiff(want, exact)).toBeGreaterThan(0);
  });

  it('an int4 embedding table gathers the dequantized RTN rows exactly (GatherBlockQuantized), at an eighth of the bytes, and refuses ids past the vocabulary', async () => {
    const ort = (await import('onnxruntime-node')).default;
    // 80 columns: the last block of 32 is zero-padded, as the int4 linears pad theirs.
    const [rows, dim] = [50, 80];
    const table = Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i * 0.37) * 0.3);
    const reader = { has: () => true, read: () => table };
    const gather = async (precision: 'fp32' | 'int4') => {
      const dir = tempDir(`embed-${precision}`);
      const b = new OnnxGraphBuilder('embed', dir);
      const ids = b.input('ids', 'int64', ['tokens']);
      b.output(embedding(b, reader, ids, 'probe', { rows, dim }, { precision, blockSize: 32 }), 'y', 'float32', ['tokens', dim]);
      const built = b.save();
      const session = await ort.InferenceSession.create(built.modelPath);
      const run = async (wanted: number[]) =>
        (await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(wanted.map(BigInt)), [wanted.length]) })).y!.data as Float32Array;
      return { run, bytes: built.bytes };
    };
    const [fp32, int4] = [await gather('fp32'), await gather('int4')];
    const wanted = [0, 7, 49, 7];
    const deq = dequantizeInt4(quantizeInt4(table, rows, dim, 32));
    const padded = deq.length / rows;
    const want = Float32Array.from(wanted.flatMap((r) => Array.from(deq.subarray(r * padded, r * padded + dim))));
    expect(maxAbsDiff(await int4.run(wanted), want)).toBeLessThan(1e-7);
    expect(maxAbsDiff(await fp32.run(wanted), Float32Array.from(wanted.flatMap((r) => Array.from(table.subarray(r * dim, (r + 1) * dim)))))).toBe(0);
    expect(int4.bytes).toBeLessThan(fp32.bytes / 5); // codes at half a byte, one fp32 scale and half a byte of zero point per 32
    await expect(int4.run([3, rows])).rejects.toThrow(/out of data bounds/);
  });

  it('int4 (RTN, block 32) and fp16 stay close to fp32 on the same checkpoint', async () => {
    const dir = tempDir('prec');
    writeTinyLlava(dir, { vocab: VOCAB, textHidden: 128, textIntermediate: 256, textHeads: 4, textKvHeads: 2, seed: 7 });
    const tokens = ids(20, 5);
    const logitsFor = async (precision: 'fp32' | 'fp16' | 'int4') => {
      const rt = await Runtime.start(dir, { precision, blockSize: 32, cacheDir: tempDir('graphs') }, TEST_RUNTIME);
      try {
        return await oneShot(rt, tokens, 128);
      } finally {
        await rt.close();
      }
    };
    const [fp32, fp16, int4] = [await logitsFor('fp32'), await logitsFor('fp16'), await logitsFor('int4')];
    const scale = maxAbsDiff(fp32, new Float32Array(fp32.length));
    const rel = (x: Float32Array) => maxAbsDiff(x, fp32) / scale;
    const agree = (x: Float32Array) => {
      let same = 0;
      for (let r = 0; r < tokens.length; r++) same += Number(argmax(x, r * VOCAB, VOCAB) === argmax(fp32, r * VOCAB, VOCAB));
      return same / tokens.length;
    };
    console.log(
      `precision vs fp32: max |Δlogit| / max |logit| fp16 ${rel(fp16).toExponential(2)}, int4 ${rel(int4).toExponential(2)}; ` +
        `argmax agreement fp16 ${agree(fp16)}, int4 ${agree(int4)}; cosine int4 ${cosine(int4, fp32).toFixed(5)}`,
    );
    expect(rel(fp16)).toBeLessThan(5e-3);
    expect(rel(int4)).toBeGreaterThan(0); // int4 really ran quantized weights
    expect(cosine(int4, fp32)).toBeGreaterThan(0.98);
  });
});

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('graph cache', () => {
  it('an fp16 KV cache keys the decoder graphs apart, and shares the others', () => {
    const base = { precision: 'int4' as const, blockSize: 32 as const };
    expect(graphCacheKey('f', { ...base, kvCache: 'fp16' }, 'decoder')).not.toBe(graphCacheKey('f', base, 'decoder'));
    expect(graphCacheKey('f', { ...base, kvCache: 'fp32' }, 'decoder')).toBe(graphCacheKey('f', base, 'decoder'));
    expect(graphCacheKey('f', { ...base, kvCache: 'fp16' }, 'vision')).toBe(graphCacheKey('f', base, 'vision'));
  });

  it('a checkpoint retrained in place (same config, names and shapes) does not reuse its old graphs', async () => {
    const dir = tempDir('retrained');
    const cacheDir = tempDir('graphs');
    const tokens = ids(7);
    const logits = async () => {
      const rt = await Runtime.start(dir, { precision: 'fp32', blockSize: 32, cacheDir }, TEST_RUNTIME);
      try {
        const cache = await rt.createCache();
        return (await prefill(rt, { cache, ids: tokens, positions: range(7), imageTokenId: -1, hidden, chunks: fixedChunks(7), logits: 'last' })).logits;
      } finally {
        await rt.close();
      }
    };
    const hidden = writeTinyLlava(dir, { vocab: VOCAB, seed: 1 }).config.text_config.hidden_size;
    const before = await logits();
    writeTinyLlava(dir, { vocab: VOCAB, seed: 2 });
    const after = await logits();
    expect(maxAbsDiff(before, after)).toBeGreaterThan(1e-3);
    // ... and what it computes is the new weights' function: the same as a fresh cache gives.
    const fresh = await Runtime.start(dir, { precision: 'fp32', blockSize: 32, cacheDir: tempDir('graphs') }, TEST_RUNTIME);
    try {
      const cache = await fresh.createCache();
      const expected = (await prefill(fresh, { cache, ids: tokens, positions: range(7), imageTokenId: -1, hidden, chunks: fixedChunks(7), logits: 'last' }))
        .logits;
      expect(maxAbsDiff(after, expected)).toBeLessThan(1e-6);
    } finally {
      await fresh.close();
    }
  });
});
