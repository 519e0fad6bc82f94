/**
 * Checkpoints quantized by AutoAWQ (GEMM): written here from known int4 codes, zero points and scales,
 * packed the way AutoAWQ's WQLinear_GEMM.from_linear packs them; loaded, the engine must hold exactly
 * those codes in MatMulNBits and compute with exactly w = (q − z) · s.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DECODER_LINEARS, int4Nodes, isDecoderLinear, patchConfig, quantizeAutoAwq, readGraph, type Known } from './helpers/autoawq.js';
import { writeSafetensorsCheckpoint, writeTinyLlava, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir, textPromptLogits } from './helpers/engine.js';
import { decodeNBits } from './helpers/nbits.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { ensureGraph } from '../dist/src/graph/build.js';
import { autoAwqWeights, readAutoAwqLinear, repackAutoAwq } from '../dist/src/weights/autoawq.js';
import { dequantizeInt4 } from '../dist/src/weights/int4.js';

const GROUP = 32;
const OPTIONS: TinyLlavaOptions = { text: 'llama', layout: 'legacy', textHidden: 64, textIntermediate: 128, textHeads: 4, textKvHeads: 2, seed: 41 };

let awqDir: string;
let twinDir: string;
const known = new Map<string, Known>();

beforeAll(() => {
  awqDir = tempDir('autoawq');
  twinDir = tempDir('autoawq-twin');
  const base = writeTinyLlava(awqDir, OPTIONS);
  writeTinyLlava(twinDir, OPTIONS);
  // AutoAWQ stores the transpose: qweight [in, out/8], qzeros [in/group, out/8], scales [in/group, out].
  const { quantized, twin, known: stored } = quantizeAutoAwq(base.tensors, isDecoderLinear, GROUP, 100);
  for (const [module, k] of stored) known.set(module, k);
  writeSafetensorsCheckpoint(awqDir, quantized);
  writeSafetensorsCheckpoint(twinDir, twin);
  patchConfig(awqDir, (c) => {
    c.quantization_config = { quant_method: 'awq', bits: 4, group_size: GROUP, zero_point: true, version: 'GEMM', modules_to_not_convert: null };
  });
});

describe('AutoAWQ checkpoints', () => {
  it('reads quantization_config (version case-insensitive) and repacks every linear bit-exactly: codes, zero points, w = (q − z)·s', () => {
    const ck = openCheckpoint(awqDir);
    expect(ck.layout).toBe('legacy');
    expect(ck.quantization).toEqual({ method: 'awq', bits: 4, groupSize: 32, zeroPoint: true, version: 'gemm', modulesNotConverted: [] });
    const reader = autoAwqWeights(ck);
    expect(known.size).toBe(2 * DECODER_LINEARS.length);
    for (const [module, k] of known) {
      const q = reader.packedInt4!(module)!;
      expect([q.n, q.k, q.blockSize]).toEqual([k.out, k.in, 32]);
      const decoded = decodeNBits(q);
      expect(decoded.codes).toEqual(k.codes);
      expect(decoded.zeros).toEqual(k.zeros);
      expect(dequantizeInt4(q)).toEqual(k.weight);
      expect(reader.read(`${module}.weight`, [k.out, k.in])).toEqual(k.weight);
      expect(reader.has(`${module}.weight`)).toBe(true);
    }
    // Float tensors pass through.
    expect(reader.packedInt4!('lm_head')).toBeUndefined();
    expect(reader.read('model.language_model.norm.weight')).toEqual(openCheckpoint(twinDir).read('model.language_model.norm.weight'));
    ck.close();
  });

  it('the int4 decoder graph holds the stored codes as MatMulNBits initializers, in their own group size', () => {
    const ck = openCheckpoint(awqDir);
    const modelPath = ensureGraph(ck, 'decoder', { precision: 'int4', blockSize: 16, cacheDir: tempDir('graphs') });
    const { bytesOf, nodes } = readGraph(modelPath);
    for (const [module, k] of known) {
      const q = repackAutoAwq(readAutoAwqLinear(ck, module, 32));
      expect(bytesOf(`${module}.qweight`)).toEqual(q.packed);
      expect(bytesOf(`${module}.qzeros`)).toEqual(q.zeroPoints);
      expect(new Float32Array(bytesOf(`${module}.scales`).buffer)).toEqual(q.scales);
      expect(q.n).toBe(k.out);
    }
    // Every stored linear's rows, in its own group size: four nodes a layer (q/k/v and gate/up share one).
    const { blockSizes, rows } = int4Nodes(nodes);
    expect(blockSizes).toEqual(Array(2 * 4).fill(32));
    expect(rows).toBe([...known.values()].reduce((sum, k) => sum + k.out, 0));
    ck.close();
  });

  it('its logits are those of the known weights: fp32 equal to the float twin, int4 (the default) within activation rounding', async () => {
    const tokens = Array.from({ length: 12 }, (_, i) => (i * 31 + 7) % 250);
    const logitsOf = (dir: string, precision: 'fp32' | 'int4') => textPromptLogits(dir, tokens, { precision, blockSize: 32, hidden: 64 });
    const twin = await logitsOf(twinDir, 'fp32');
    const dequantized = await logitsOf(awqDir, 'fp32');
    const stored = await logitsOf(awqDir, 'int4');
    const scale = maxAbsDiff(twin, new Float32Array(twin.length));
    console.log(
      `AutoAWQ vs float twin: fp32 max |Δ| ${maxAbsDiff(dequantized, twin)}, int4 max |Δ| ${maxAbsDiff(stored, twin).toExponential(2)} of ${scale.toFixed(3)}`,
    );
    expect(maxAbsDiff(dequantized, twin)).toBe(0);
    // MatMulNBits at accuracy level 4 rounds activations to int8 blocks: ~1% of the range, not a weight error.
    expect(maxAbsDiff(stored, twin) / scale).toBeLessThan(0.03);

    const model = await engine.loadModel(awqDir, { cacheDir: tempDir('graphs'), threads: 1 });
    try {
      const answer = await model.chat({ maxNewTokens: 3 }).ask({ text: 'What is here?' });
      expect(answer.tokenIds.length).toBeGreaterThan(0);
    } finally {
      await model.close();
    }
  });

  it.each([
    ['bits', 8, 'quantization_config.bits'],
    ['zero_point', false, 'quantization_config.zero_point'],
    ['version', 'gemv', 'quantization_config.version'],
    ['version', 'marlin', 'quantization_config.version'],
    ['version', 'exllama', 'quantization_config.version'],
    ['group_size', -1, 'quantization_config.group_size'],
    ['group_size', 100, 'quantization_config.group_size'],
    ['quant_method', 'gptq', 'quantization_config.quant_method'],
    ['backend', 'llm-awq', 'quantization_config.backend'],
  ])('quantization_config.%s = %j is a CONFIG_UNSUPPORTED error naming the field and value', (field, value, subject) => {
    const dir = tempDir('autoawq-bad');
    for (const f of fs.readdirSync(awqDir)) fs.copyFileSync(path.join(awqDir, f), path.join(dir, f));
    patchConfig(dir, (c) => ((c.quantization_config as Record<string, unknown>)[field] = value));
    let caught: unknown;
    try {
      openCheckpoint(dir);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(engine.ConfigError);
    expect(caught).toMatchObject({ code: 'CONFIG_UNSUPPORTED', subject });
    expect((caught as Error).message).toContain(`${subject} = ${JSON.stringify(value)}`);
  });

  it("precision 'awq' on an AutoAWQ checkpoint is refused: it is already quantized", async () => {
    await expect(engine.loadModel(awqDir, { precision: 'awq', cacheDir: tempDir('graphs') })).rejects.toMatchObject({
      code: 'CONFIG_UNSUPPORTED',
      subject: 'quantization_config.quant_method',
    });
  });
});
