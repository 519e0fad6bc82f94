/**
 * Checkpoints quantized by AutoAWQ (GEMM): written here from known int4 codes, zero points and scales,
 * packed the way AutoAWQ's WQLinear_GEMM.from_linear packs them; loaded, the engine must hold exactly
 * those codes in MatMulNBits and compute with exactly w = (q − z) · s.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { gaussian, roundTo, writeSafetensorsCheckpoint, writeTinyLlava, type TensorToWrite, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir, textPromptLogits } from './helpers/engine.js';
import { decodeNBits } from './helpers/nbits.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { ensureGraph } from '../dist/src/graph/build.js';
import { autoAwqWeights, readAutoAwqLinear, repackAutoAwq } from '../dist/src/weights/autoawq.js';
import { dequantizeInt4 } from '../dist/src/weights/int4.js';

/** AutoAWQ's order_map: nibble j of a packed word holds column 8c + ORDER[j]. */
const ORDER = [0, 2, 4, 6, 1, 3, 5, 7];
const GROUP = 32;
const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const OPTIONS: TinyLlavaOptions = { text: 'llama', layout: 'legacy', textHidden: 64, textIntermediate: 128, textHeads: 4, textKvHeads: 2, seed: 41 };

/** AutoAWQ's packing of an [rows, cols] int4 matrix into int32 [rows, cols / 8] (from_linear's loop). */
function packAutoAwq(value: (row: number, col: number) => number, rows: number, cols: number): Int32Array {
  const out = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols / 8; c++) {
      for (let j = 0; j < 8; j++) out[r * (cols / 8) + c]! |= value(r, 8 * c + ORDER[j]!) << (4 * j);
    }
  }
  return out;
}

interface Known {
  out: number;
  in: number;
  /** [out, in] */
  codes: Uint8Array;
  /** [out, groups] */
  zeros: Uint8Array;
  /** [groups, out], as AutoAWQ stores them (F16 values) */
  scales: Float32Array;
  /** (q − z) · s, [out, in] */
  weight: Float32Array;
}

function knownLinear(out: number, inF: number, seed: number): Known {
  const g = gaussian(seed);
  const groups = inF / GROUP;
  const codes = Uint8Array.from({ length: out * inF }, () => Math.floor(Math.abs(g() * 7919)) % 16);
  const zeros = Uint8Array.from({ length: out * groups }, () => Math.floor(Math.abs(g() * 104729)) % 16);
  const scales = roundTo(
    'F16',
    Float32Array.from({ length: groups * out }, () => 0.001 + 0.004 * Math.abs(g())),
  );
  const weight = Float32Array.from({ length: out * inF }, (_, i) => {
    const [o, c] = [Math.floor(i / inF), i % inF];
    const grp = Math.floor(c / GROUP);
    return (codes[i]! - zeros[o * groups + grp]!) * scales[grp * out + o]!;
  });
  return { out, in: inF, codes, zeros, scales, weight };
}

const transposeZeros = (k: Known) => (g: number, o: number) => k.zeros[o * (k.in / GROUP) + g]!;

let awqDir: string;
let twinDir: string;
const known = new Map<string, Known>();

function writeConfig(dir: string, patch: (config: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  patch(config);
  fs.writeFileSync(file, JSON.stringify(config));
}

beforeAll(() => {
  awqDir = tempDir('autoawq');
  twinDir = tempDir('autoawq-twin');
  const base = writeTinyLlava(awqDir, OPTIONS);
  writeTinyLlava(twinDir, OPTIONS);
  const quantized: TensorToWrite[] = [];
  const twin: TensorToWrite[] = [];
  let seed = 100;
  for (const [name, t] of base.tensors) {
    const module = name.slice(0, -'.weight'.length);
    const isLinear = name.startsWith('model.language_model.layers.') && LINEARS.some((l) => name.endsWith(`${l}.weight`));
    if (!isLinear) {
      quantized.push({ name: t.key, dtype: t.dtype, shape: t.shape, values: t.values });
      twin.push({ name: t.key, dtype: t.dtype, shape: t.shape, values: t.values });
      continue;
    }
    const [out, inF] = t.shape as [number, number];
    const k = knownLinear(out, inF, seed++);
    known.set(module, k);
    const key = t.key.slice(0, -'.weight'.length);
    // AutoAWQ stores the transpose: qweight [in, out/8], qzeros [in/group, out/8], scales [in/group, out].
    const qweight = packAutoAwq((i, o) => k.codes[o * inF + i]!, inF, out);
    const qzeros = packAutoAwq(transposeZeros(k), inF / GROUP, out);
    quantized.push(
      { name: `${key}.qweight`, dtype: 'I32', shape: [inF, out / 8], raw: new Uint8Array(qweight.buffer) },
      { name: `${key}.qzeros`, dtype: 'I32', shape: [inF / GROUP, out / 8], raw: new Uint8Array(qzeros.buffer) },
      { name: `${key}.scales`, dtype: 'F16', shape: [inF / GROUP, out], values: k.scales },
    );
    twin.push({ name: t.key, dtype: 'F32', shape: t.shape, values: k.weight });
  }
  writeSafetensorsCheckpoint(awqDir, quantized);
  writeSafetensorsCheckpoint(twinDir, twin);
  writeConfig(awqDir, (c) => {
    c.quantization_config = { quant_method: 'awq', bits: 4, group_size: GROUP, zero_point: true, version: 'GEMM', modules_to_not_convert: null };
  });
});

describe('AutoAWQ checkpoints', () => {
  it('reads quantization_config (version case-insensitive) and repacks every linear bit-exactly: codes, zero points, w = (q − z)·s', () => {
    const ck = openCheckpoint(awqDir);
    expect(ck.layout).toBe('legacy');
    expect(ck.quantization).toEqual({ method: 'awq', bits: 4, groupSize: 32, zeroPoint: true, version: 'gemm', modulesNotConverted: [] });
    const reader = autoAwqWeights(ck);
    expect(known.size).toBe(2 * LINEARS.length);
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
    const model = onnxProto.onnx.ModelProto.decode(fs.readFileSync(modelPath));
    const data = fs.readFileSync(modelPath + '.data');
    // Initializers of up to 64 bytes are inline (onnx-builder.ts), the rest in the external data file.
    const bytesOf = (name: string) => {
      const init = model.graph!.initializer!.find((i) => i.name === name)!;
      if (init.rawData?.length) return new Uint8Array(init.rawData);
      const field = (key: string) => Number(init.externalData!.find((e) => e.key === key)!.value);
      return new Uint8Array(data.subarray(field('offset'), field('offset') + field('length')));
    };
    for (const [module, k] of known) {
      const q = repackAutoAwq(readAutoAwqLinear(ck, module, 32));
      expect(bytesOf(`${module}.qweight`)).toEqual(q.packed);
      expect(bytesOf(`${module}.qzeros`)).toEqual(q.zeroPoints);
      expect(new Float32Array(bytesOf(`${module}.scales`).buffer)).toEqual(q.scales);
      expect(q.n).toBe(k.out);
    }
    const blockSizes = model
      .graph!.node!.filter((n) => n.opType === 'MatMulNBits' && n.name!.includes('layers.'))
      .map((n) => n.attribute!.find((a) => a.name === 'block_size')!.i);
    expect(blockSizes.map(Number)).toEqual(Array(2 * LINEARS.length).fill(32));
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
    writeConfig(dir, (c) => ((c.quantization_config as Record<string, unknown>)[field] = value));
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
