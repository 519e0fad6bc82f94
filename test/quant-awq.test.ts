/**
 * AWQ int4: the packing math (bit-exact), the scale search against round-to-nearest on activations with a
 * few large channels, the scale folding (exactly the same float model), the plan cache, and end to end:
 * `precision: 'awq'` on a small checkpoint whose norms carry outlier channels, as real LLMs' do.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensorsCheckpoint, writeTinyLlava, gaussian, type TinyLlava, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir, textPromptLogits } from './helpers/engine.js';
import { decodeNBits } from './helpers/nbits.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { graphCacheKey } from '../dist/src/graph/build.js';
import { awqScale, effectiveWeight, searchClip, searchScale } from '../dist/src/quant/awq-search.js';
import { dequantizeInt4, fakeQuantizeInt4, int4Codes, quantizeInt4 } from '../dist/src/weights/int4.js';
import { worldCalibrationSamples } from '../dist/src/quant/calibration-set.js';
import { outputErrorMeter } from '../dist/src/quant/output-error.js';
import { allAwqGroups } from '../dist/src/weights/awq-groups.js';
import { awqPlanId, readAwqPlan, scaleKey } from '../dist/src/weights/awq-plan.js';
import { awqWeights, clipBlocks } from '../dist/src/weights/awq-weights.js';

const randn = (n: number, seed: number, std = 1) => {
  const g = gaussian(seed);
  return Float32Array.from({ length: n }, () => std * g());
};

/** ‖X·Δᵀ‖² in float64, Δ = Weff − W: the output error, computed here without ORT. */
function outputError(x: Float32Array, rows: number, weff: Float32Array, w: Float32Array, out: number): number {
  const k = x.length / rows;
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let dot = 0;
      for (let c = 0; c < k; c++) dot += x[r * k + c]! * (weff[o * k + c]! - w[o * k + c]!);
      sum += dot * dot;
    }
  }
  return sum;
}

/** Calibration-like activations: N(0, 1) channels plus a few channels `outlier` times larger. */
function activations(rows: number, k: number, outliers: number[], outlier: number, seed: number) {
  const x = randn(rows * k, seed);
  for (let r = 0; r < rows; r++) for (const c of outliers) x[r * k + c]! *= outlier;
  const meanAbs = new Float32Array(k);
  for (let i = 0; i < x.length; i++) meanAbs[i % k]! += Math.abs(x[i]!) / rows;
  return { x, rows, meanAbs };
}

describe('packing math', () => {
  const [n, k] = [24, 128];
  const w = randn(n * k, 3, 0.05);

  it('RTN: the packed bytes decode (per the MatMulNBits spec) to the codes, and dequantize to (q − zp)·scale bit-exactly', () => {
    for (const blockSize of [16, 32, 64] as const) {
      const codes = int4Codes(w, n, k, blockSize);
      const packed = quantizeInt4(w, n, k, blockSize);
      const decoded = decodeNBits(packed);
      const blocks = k / blockSize;
      expect(decoded.codes).toEqual(codes.codes);
      expect(decoded.zeros).toEqual(codes.zeroPoints);
      expect(dequantizeInt4(packed)).toEqual(decoded.weights);
      expect(fakeQuantizeInt4(w, n, k, blockSize)).toEqual(decoded.weights);
      expect(packed.scales.length).toBe(n * blocks);
    }
  });

  it('a K that is not a multiple of the block is zero-padded and still decodes exactly', () => {
    const k2 = 40;
    const w2 = randn(n * k2, 4, 0.05);
    const packed = quantizeInt4(w2, n, k2, 32);
    expect(dequantizeInt4(packed)).toEqual(decodeNBits(packed).weights);
    expect(fakeQuantizeInt4(w2, n, k2, 32)).toEqual(dequantizeInt4(packed));
  });

  it('AWQ: the graph holds Q(W·diag(s)); its weights divided by s are exactly the effective weight the search scored', () => {
    const s = awqScale(
      Float32Array.from({ length: k }, (_, i) => 0.1 + (i % 7)),
      0.5,
    );
    const scaled = Float32Array.from(w, (v, i) => v * s[i % k]!);
    const packed = quantizeInt4(scaled, n, k, 32);
    const graphWeights = decodeNBits(packed).weights;
    expect(graphWeights).toEqual(fakeQuantizeInt4(scaled, n, k, 32));
    const divided = Float32Array.from(graphWeights, (v, i) => v / s[i % k]!);
    expect(effectiveWeight(w, n, s, 32)).toEqual(divided);
    // The scale is AutoAWQ's: mean|x|^α normalised by sqrt(max · min); α = 0 is all ones (round-to-nearest).
    expect(
      Array.from(
        awqScale(
          Float32Array.from({ length: k }, (_, i) => i + 1),
          0,
        ),
      ),
    ).toEqual(Array(k).fill(1));
    expect(Math.max(...s) * Math.min(...s)).toBeCloseTo(1, 5);
  });

  it('clipping clamps each block to its max |w| shrunk by step / 20 (AutoAWQ apply_clip)', () => {
    const row = Float32Array.from([0.5, -1, 0.25, 0.75, 2, -0.5, 1, -3]);
    const steps = Uint8Array.from([0, 10]); // one row, two blocks of 4
    clipBlocks(row, 8, 4, steps);
    expect(Array.from(row)).toEqual([0.5, -1, 0.25, 0.75, 1.5, -0.5, 1, -1.5]);
  });
});

describe('scale search against round-to-nearest', () => {
  let meter: Awaited<ReturnType<typeof outputErrorMeter>>;
  beforeAll(async () => (meter = await outputErrorMeter(1)));
  afterAll(() => meter?.close());

  const [rows, k, out] = [256, 128, 96];
  const w = randn(out * k, 21, 0.02);

  it('with four channels 30× larger than the rest (as LLM activations have), AWQ cuts the output error ~5× (RTN 229.9 → AWQ 46.6 at α = 0.45)', async () => {
    const act = activations(rows, k, [5, 40, 77, 120], 30, 22);
    const found = await searchScale(meter, act, [{ w, out }], 32);
    // Independent float64 errors of the weights each choice puts in the graph.
    const rtn = outputError(act.x, rows, fakeQuantizeInt4(w, out, k, 32), w, out);
    const awq = outputError(act.x, rows, effectiveWeight(w, out, found.scale, 32), w, out);
    console.log(`outliers: RTN error ${rtn.toFixed(3)}, AWQ ${awq.toFixed(3)} (α = ${found.alpha}); curve ${found.curve.map((e) => e.toFixed(2)).join(' ')}`);
    expect(found.alpha).toBeGreaterThan(0);
    expect(found.rtnError).toBeCloseTo(rtn, 0);
    expect(found.error).toBeCloseTo(awq, 0);
    expect(awq).toBeLessThan(rtn / 2);
    expect(found.error).toBe(Math.min(...found.curve));
  });

  it('without outlier channels AWQ is never worse than RTN on the calibration rows (α = 0 is RTN)', async () => {
    const act = activations(rows, k, [], 1, 23);
    const found = await searchScale(meter, act, [{ w, out }], 32);
    const rtn = outputError(act.x, rows, fakeQuantizeInt4(w, out, k, 32), w, out);
    const awq = outputError(act.x, rows, effectiveWeight(w, out, found.scale, 32), w, out);
    console.log(`no outliers: RTN error ${rtn.toFixed(4)}, AWQ ${awq.toFixed(4)} (α = ${found.alpha})`);
    expect(found.error).toBeLessThanOrEqual(found.rtnError);
    expect(awq).toBeLessThanOrEqual(rtn * (1 + 1e-5));
  });

  it("the clip search lowers each block's share of the output error, and usually the whole output's", async () => {
    const act = activations(rows, k, [5, 40], 10, 24);
    const heavy = randn(out * k, 25, 0.02).map((v, i) => (i % 53 === 0 ? v * 12 : v)); // a few large weights per row
    const steps = searchClip(act.x, rows, heavy, out, 32);
    expect(steps.some((v) => v > 0)).toBe(true);
    const clipped = Float32Array.from(heavy);
    clipBlocks(clipped, k, 32, steps);
    const plain = outputError(act.x, rows, fakeQuantizeInt4(heavy, out, k, 32), heavy, out);
    const withClip = outputError(act.x, rows, fakeQuantizeInt4(clipped, out, k, 32), heavy, out);
    console.log(`clip: output error ${plain.toFixed(4)} → ${withClip.toFixed(4)} (${steps.filter((v) => v > 0).length} of ${steps.length} blocks clipped)`);
    expect(withClip).toBeLessThan(plain);
  });
});

/** A tiny checkpoint whose LLM norm weights boost a few channels: the outlier channels AWQ protects. */
function writeOutlierLlava(dir: string, options: TinyLlavaOptions, boost: number): TinyLlava {
  const tiny = writeTinyLlava(dir, options);
  const outliers = [3, 17, 50, 101].filter((c) => c < (options.textHidden ?? 64));
  const tensors = [...tiny.tensors].map(([name, t]) => {
    const values = Float32Array.from(t.values);
    if (name.startsWith('model.language_model.') && name.endsWith('layernorm.weight')) for (const c of outliers) values[c]! *= boost;
    t.values = values;
    return { name: t.key, dtype: t.dtype, shape: t.shape, values };
  });
  writeSafetensorsCheckpoint(dir, tensors);
  return tiny;
}

describe('folding the AWQ scales', () => {
  it('leaves the fp32 model unchanged before rounding: norm ÷ s, W·diag(s), v_proj and up_proj rows and biases ÷ s', async () => {
    const options: TinyLlavaOptions = {
      text: 'llama',
      textHidden: 64,
      textIntermediate: 128,
      textHeads: 4,
      textKvHeads: 4,
      attentionBias: true,
      mlpBias: true,
      seed: 31,
    };
    const dir = tempDir('fold-a');
    const tiny = writeTinyLlava(dir, options);
    const spec = openCheckpoint(dir).spec;
    // A plan with large, uneven scales on every group (o included: MHA), no clipping.
    const plan = {
      blockSize: 32 as const,
      clip: false,
      calibration: { id: '', samples: 0, tokens: 0, rows: 0 },
      scales: new Map(),
      clips: new Map(),
      report: [],
    };
    for (const g of allAwqGroups(spec.text))
      plan.scales.set(
        scaleKey(g.layer, g.tap),
        awqScale(
          Float32Array.from({ length: g.in }, (_, i) => 0.01 + ((i * 7919) % 97)),
          0.9,
        ),
      );
    expect([...plan.scales.keys()].filter((key) => key.endsWith('.o'))).toHaveLength(2);
    const reader = awqWeights({ has: (n) => tiny.tensors.has(n), read: (n) => tiny.tensors.get(n)!.values }, spec.text, plan);
    const foldedDir = tempDir('fold-b');
    writeTinyLlava(foldedDir, options); // config, tokenizer, processor files
    writeSafetensorsCheckpoint(
      foldedDir,
      [...tiny.tensors].map(([name, t]) => ({ name: t.key, dtype: 'F32', shape: t.shape, values: reader.read(name) })),
    );
    const ln = 'model.language_model.layers.0.input_layernorm.weight';
    expect(maxAbsDiff(reader.read(ln), tiny.tensors.get(ln)!.values)).toBeGreaterThan(0.1);

    const tokens = Array.from({ length: 14 }, (_, i) => (i * 29 + 3) % 250);
    const logitsOf = (d: string) => textPromptLogits(d, tokens, { precision: 'fp32', blockSize: 32, hidden: 64 });
    const [before, after] = [await logitsOf(dir), await logitsOf(foldedDir)];
    const scale = maxAbsDiff(before, new Float32Array(before.length));
    console.log(`folded vs original fp32 logits: max |Δ| ${maxAbsDiff(before, after).toExponential(2)} of max |logit| ${scale.toFixed(3)}`);
    expect(maxAbsDiff(before, after) / scale).toBeLessThan(1e-5);
  });
});

describe("precision 'awq' end to end", () => {
  const options: TinyLlavaOptions = {
    vision: 'siglip',
    text: 'qwen2',
    textHidden: 128,
    textIntermediate: 256,
    textHeads: 4,
    textKvHeads: 4,
    seed: 11,
    std: 0.05,
  };
  let dir: string;
  let cacheDir: string;
  const logits: Record<string, Float32Array[]> = {};
  let held: Awaited<ReturnType<typeof worldCalibrationSamples>>;

  beforeAll(async () => {
    dir = tempDir('awq-e2e');
    cacheDir = tempDir('awq-cache');
    writeOutlierLlava(dir, options, 20);
    // Held-out prompts: the world conversations after the 16 the default calibration set uses.
    held = (await worldCalibrationSamples(22, 64)).slice(16);
  });

  const run = async (precision: 'fp32' | 'int4' | 'awq', extra: Partial<Parameters<typeof engine.loadModel>[1]> = {}) => {
    const events: string[] = [];
    const model = await engine.loadModel(dir, { precision, cacheDir, threads: 1, onProgress: (e) => events.push(`${e.graph}:${e.phase}`), ...extra });
    try {
      const out: Float32Array[] = [];
      for (const s of held) out.push((await model.chat({ maxNewTokens: 2 }).ask({ images: s.images, text: s.text })).lastPromptLogits);
      return { out, events };
    } finally {
      await model.close();
    }
  };

  it('runs a turn, and its logits are closer to fp32 than RTN int4 (held-out MSE vs fp32: RTN 0.033, AWQ 0.0095)', async () => {
    for (const p of ['fp32', 'int4', 'awq'] as const) logits[p] = (await run(p)).out;
    const mse = (a: Float32Array[]) => {
      let sum = 0;
      let count = 0;
      a.forEach((x, i) => x.forEach((v, j) => ((sum += (v - logits.fp32![i]![j]!) ** 2), count++)));
      return sum / count;
    };
    const [rtn, awq] = [mse(logits.int4!), mse(logits.awq!)];
    console.log(`held-out last-prompt logits vs fp32: MSE RTN int4 ${rtn.toFixed(4)}, AWQ ${awq.toFixed(4)} (${(rtn / awq).toFixed(1)}× lower)`);
    expect(awq).toBeLessThan(rtn);
    expect(awq).toBeLessThan(rtn / 2);
  });

  it("the plan's errors are never worse than RTN's, and better for every group here", () => {
    const files = fs.readdirSync(path.join(cacheDir, 'awq'));
    expect(files).toHaveLength(1);
    const plan = readAwqPlan(path.join(cacheDir, 'awq', files[0]!));
    expect(plan.calibration).toMatchObject({ samples: 16, rows: 512 });
    expect(plan.report).toHaveLength(2 * 4); // two layers × qkv, o (MHA), gate_up, down
    for (const r of plan.report) {
      expect(r.scaledError).toBeLessThanOrEqual(r.rtnError);
      expect(r.error).toBeLessThanOrEqual(r.scaledError * (1 + 1e-6));
      expect(r.error).toBeLessThan(r.rtnError);
    }
    const total = (f: 'rtnError' | 'error') => plan.report.reduce((a, r) => a + r[f], 0);
    console.log(
      `calibration output error summed over groups: RTN ${total('rtnError').toFixed(1)}, AWQ ${total('error').toFixed(1)}; ` +
        plan.report.map((r) => `${r.layer}.${r.tap} α=${r.alpha}`).join(', '),
    );
  });

  it('a second load reuses the plan; another calibration set or block size is another plan', async () => {
    const again = await run('awq');
    expect(again.events.filter((e) => e.startsWith('awq-'))).toEqual([]);
    expect(again.out[0]).toEqual(logits.awq![0]);
    await run('awq', { calibration: 4 });
    await run('awq', { blockSize: 64 });
    expect(fs.readdirSync(path.join(cacheDir, 'awq'))).toHaveLength(3);
  });

  it('a block size that does not divide the widths is a typed error naming the field', async () => {
    const small = tempDir('awq-small');
    writeTinyLlava(small, { text: 'qwen2', textHidden: 64, textIntermediate: 128 });
    await expect(engine.loadModel(small, { precision: 'awq', blockSize: 128, cacheDir })).rejects.toMatchObject({
      code: 'CONFIG_UNSUPPORTED',
      subject: 'text_config.hidden_size',
      message: expect.stringContaining('hidden_size = 64 is not a multiple of the AWQ block size 128'),
    });
  });

  it('the graph cache key holds the plan and the calibration outputs for decoder graphs only', () => {
    const base = { precision: 'awq' as const, blockSize: 32 as const };
    const a = graphCacheKey('f', { ...base, awq: { file: 'x', id: 'plan-a' } }, 'decoder');
    expect(graphCacheKey('f', { ...base, awq: { file: 'x', id: 'plan-b' } }, 'decoder')).not.toBe(a);
    expect(graphCacheKey('f', { ...base, awq: { file: 'x', id: 'plan-b' } }, 'vision')).toBe(graphCacheKey('f', base, 'vision'));
    expect(graphCacheKey('f', { precision: 'fp32', blockSize: 32, calibration: true }, 'decoder')).not.toBe(
      graphCacheKey('f', { precision: 'fp32', blockSize: 32 }, 'decoder'),
    );
    const id = (p: Partial<Parameters<typeof awqPlanId>[0]>) => awqPlanId({ fingerprint: 'f', blockSize: 32, clip: true, calibrationId: 'c', rows: 512, ...p });
    expect(new Set([id({}), id({ blockSize: 64 }), id({ clip: false }), id({ calibrationId: 'd' }), id({ fingerprint: 'g' })]).size).toBe(5);
  });
});
