/**
 * Qwen2.5-VL in int4. AutoAWQ checkpoints as AutoAWQ writes them for this architecture
 * (awq/models/qwen2_5_vl.py: the decoder layers' q/k/v/o and gate/up/down quantized; the tower, embeddings and
 * head in float; quantization_config.modules_to_not_convert = ["visual"]), written here from a float checkpoint
 * with known codes in both key layouts: the engine must hold exactly the stored codes in MatMulNBits, build the
 * tower as the float checkpoint's, compute with exactly w = (q − z) · s, and chat. Round-to-nearest int4 on a
 * float Qwen checkpoint must stay close to fp32. Checkpoints that contradict their own config are refused,
 * naming the tensor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DECODER_LINEARS, int4Nodes, isDecoderLinear, patchConfig, quantizeAutoAwq, readGraph, type Known } from './helpers/autoawq.js';
import { writeSafetensorsCheckpoint, type TensorToWrite } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir, textPromptLogits } from './helpers/engine.js';
import { thrown } from './helpers/thrown.js';
import { writeTinyQwenVL, type RandomQwenVLOptions } from '../dist/src/testing.js';
import { ensureModelGraph, openCheckpoint } from '../dist/src/families/registry.js';
import { argmax } from '../dist/src/session/sampling.js';
import { autoAwqWeights, readAutoAwqLinear, repackAutoAwq } from '../dist/src/weights/autoawq.js';

const GROUP = 32;
const IMAGE = path.resolve(__dirname, '../../shared/fixtures/qwen2_5_vl-tiny/image.png');
// What AutoAWQ saves for Qwen2.5-VL (awq/models/_config.py `to_transformers_dict`, with the class's
// modules_to_not_convert), in this group size.
const AWQ_CONFIG = { quant_method: 'awq', bits: 4, group_size: GROUP, zero_point: true, version: 'gemm', modules_to_not_convert: ['visual'] };
/**
 * Scales of the known weights: large enough that the decoder layers, not the tied embedding, choose the answer
 * (at 0.004, as quant-autoawq.test.ts, every answer token repeats the prompt's last one); small enough that
 * MatMulNBits' int8 activations stay within 2% of the float twin's logits.
 */
const SCALE = 0.015;
const TOKENS = Array.from({ length: 16 }, (_, i) => (i * 31 + 7) % 250);

type Layout = 'hub' | 'current';

interface AwqQwen {
  awq: string;
  twin: string;
  known: Map<string, Known>;
  /** What `awq` holds, by on-disk name. */
  tensors: TensorToWrite[];
}

/**
 * A tiny Qwen2.5-VL quantized as AutoAWQ would (the linears `quantize` picks; the decoder linears by default),
 * and its float twin holding the dequantized weights.
 */
function writeAwqQwen(layout: Layout, quantize = isDecoderLinear, config: Record<string, unknown> = AWQ_CONFIG): AwqQwen {
  const options: RandomQwenVLOptions = { version: '2.5', layout, seed: 7, std: 0.2, textIntermediate: 128, maxPixels: 112 * 112 };
  const [awq, twin] = [tempDir(`qwen-awq-${layout}`), tempDir(`qwen-awq-twin-${layout}`)];
  const base = writeTinyQwenVL(awq, options);
  writeTinyQwenVL(twin, options);
  const copy = quantizeAutoAwq(base.tensors, quantize, GROUP, 100, SCALE);
  writeSafetensorsCheckpoint(awq, copy.quantized);
  writeSafetensorsCheckpoint(twin, copy.twin);
  patchConfig(awq, (c) => (c.quantization_config = config));
  return { awq, twin, known: copy.known, tensors: copy.quantized };
}

const cached = new Map<Layout, AwqQwen>();
const written = (layout: Layout) => cached.get(layout) ?? (cached.set(layout, writeAwqQwen(layout)), cached.get(layout)!);
const greedy = new Map<string, number[]>();

async function chat(dir: string, precision?: 'fp32' | 'int4'): Promise<{ tokenIds: number[]; lastPromptLogits: Float32Array }> {
  const model = await engine.loadModel(dir, { cacheDir: tempDir('qwen-awq-graphs'), threads: 1, precision });
  try {
    return await model.chat({ maxNewTokens: 6 }).ask({ images: [IMAGE], text: 'What is in the picture?' });
  } finally {
    await model.close();
  }
}

describe.each(['hub', 'current'] as const)('an AutoAWQ Qwen2.5-VL checkpoint (%s layout)', (layout) => {
  it('opens with its quantization_config; the decoder linears are AutoAWQ int4, the tower, embeddings and head float', () => {
    const { awq, known } = written(layout);
    const ck = openCheckpoint(awq);
    try {
      expect(ck.layout).toBe(layout);
      expect(ck.quantization).toEqual({ method: 'awq', bits: 4, groupSize: 32, zeroPoint: true, version: 'gemm', modulesNotConverted: ['visual'] });
      expect(known.size).toBe(2 * DECODER_LINEARS.length);
      const reader = autoAwqWeights(ck);
      for (const module of known.keys()) expect(reader.packedInt4!(module), module).toBeDefined();
      for (const module of ['model.visual.blocks.0.attn.qkv', 'model.visual.merger.mlp.0', 'model.language_model.embed_tokens', 'lm_head']) {
        expect(reader.packedInt4!(module), module).toBeUndefined();
      }
    } finally {
      ck.close();
    }
  });

  it("builds the decoder with the stored codes as MatMulNBits (in the checkpoint's group size) and the tower as the float checkpoint's", () => {
    const { awq, twin, known } = written(layout);
    const [ck, twinCk] = [openCheckpoint(awq), openCheckpoint(twin)];
    const options = { precision: 'int4' as const, blockSize: 16 as const, cacheDir: tempDir('qwen-awq-graphs') };
    try {
      const { bytesOf, nodes } = readGraph(ensureModelGraph(ck, 'decoder', options));
      for (const module of known.keys()) {
        const q = repackAutoAwq(readAutoAwqLinear(ck, module, GROUP));
        expect(bytesOf(`${module}.qweight`), module).toEqual(q.packed);
        expect(bytesOf(`${module}.qzeros`), module).toEqual(q.zeroPoints);
        expect(new Float32Array(bytesOf(`${module}.scales`).slice().buffer), module).toEqual(q.scales);
      }
      // Every decoder linear's rows, and nothing else: the tied head stays the float embedding. Four nodes a layer
      // (q/k/v and gate/up share one).
      const { blockSizes, rows } = int4Nodes(nodes);
      expect(nodes.filter((n) => n.opType === 'MatMulNBits').length).toBe(blockSizes.length);
      expect(blockSizes).toEqual(Array(2 * 4).fill(GROUP));
      expect(rows).toBe([...known.values()].reduce((sum, k) => sum + k.out, 0));
      // The tower: the very graph of the float twin (same tensors, same precision), with no int4 in it.
      const vision = ensureModelGraph(ck, 'vision', options);
      const twinVision = ensureModelGraph(twinCk, 'vision', options);
      expect(readGraph(vision).nodes.some((n) => n.opType === 'MatMulNBits')).toBe(false);
      expect(fs.readFileSync(vision).equals(fs.readFileSync(twinVision))).toBe(true);
      expect(fs.readFileSync(vision + '.data').equals(fs.readFileSync(twinVision + '.data'))).toBe(true);
    } finally {
      ck.close();
      twinCk.close();
    }
  });

  it('computes with the stored weights: fp32 logits equal the dequantized twin (1e-4), int4 within activation rounding', async () => {
    const { awq, twin } = written(layout);
    const logitsOf = (dir: string, precision: 'fp32' | 'int4') => textPromptLogits(dir, TOKENS, { precision, blockSize: 32, hidden: 64, mrope: true });
    const reference = await logitsOf(twin, 'fp32');
    const [dequantized, stored] = [await logitsOf(awq, 'fp32'), await logitsOf(awq, 'int4')];
    const scale = maxAbsDiff(reference, new Float32Array(reference.length));
    console.log(
      `Qwen AutoAWQ (${layout}) vs float twin: fp32 max |Δ| ${maxAbsDiff(dequantized, reference)}, ` +
        `int4 max |Δ| ${maxAbsDiff(stored, reference).toExponential(2)} of ${scale.toFixed(3)}`,
    );
    expect(maxAbsDiff(dequantized, reference)).toBeLessThan(1e-4);
    // MatMulNBits at accuracy level 4 rounds activations to int8 blocks: ~1% of the range, not a weight error.
    expect(maxAbsDiff(stored, reference) / scale).toBeLessThan(0.03);
  });

  it('chats (int4 by default): the greedy tokens of the float twin; fp32 the twin exactly', async () => {
    const { awq, twin } = written(layout);
    const [stored, dequantized, reference] = [await chat(awq), await chat(awq, 'fp32'), await chat(twin)];
    console.log(`Qwen AutoAWQ (${layout}) chat: int4 ${stored.tokenIds}, fp32 ${dequantized.tokenIds}, twin ${reference.tokenIds}`);
    expect(maxAbsDiff(dequantized.lastPromptLogits, reference.lastPromptLogits)).toBeLessThan(1e-4);
    expect(dequantized.tokenIds).toEqual(reference.tokenIds);
    expect(stored.tokenIds).toEqual(reference.tokenIds);
    greedy.set(layout, stored.tokenIds);
    // The two layouts hold the same values: the same answer.
    if (greedy.size === 2) expect(greedy.get('hub')).toEqual(greedy.get('current'));
  });

  it("a tower linear stored quantized against modules_to_not_convert ['visual'] is refused, naming the tensor", () => {
    const tower = 'model.visual.blocks.0.attn.qkv.weight';
    const { awq } = writeAwqQwen(layout, (n) => isDecoderLinear(n) || n === tower);
    const onDisk = layout === 'hub' ? 'visual.blocks.0.attn.qkv.qweight' : 'model.visual.blocks.0.attn.qkv.qweight';
    const e = thrown(() => openCheckpoint(awq));
    expect(e).toBeInstanceOf(engine.CheckpointError);
    expect(e).toMatchObject({ code: 'CHECKPOINT_CORRUPT', subject: onDisk });
    expect((e as Error).message).toContain('modules_to_not_convert');
  });
});

describe('malformed and unusual Qwen AWQ checkpoints', () => {
  it('a tower linear quantized where modules_to_not_convert does not keep it in float is read dequantized, exactly', () => {
    const tower = 'model.visual.blocks.0.attn.qkv.weight';
    const { awq, known } = writeAwqQwen('hub', (n) => isDecoderLinear(n) || n === tower, { ...AWQ_CONFIG, modules_to_not_convert: null });
    const ck = openCheckpoint(awq);
    try {
      expect(autoAwqWeights(ck).read(tower, [96, 32])).toEqual(known.get('model.visual.blocks.0.attn.qkv')!.weight);
    } finally {
      ck.close();
    }
  });

  it('a quantized tensor that is no linear (the Conv3d patch embedding) is a TENSOR_SHAPE error naming its qweight', () => {
    const { awq, tensors } = writeAwqQwen('hub', isDecoderLinear, { ...AWQ_CONFIG, modules_to_not_convert: null });
    const dir = rewriteWith(awq, tensors, (name) => name !== 'visual.patch_embed.proj.weight', [
      { name: 'visual.patch_embed.proj.qweight', dtype: 'I32', shape: [32, 4], raw: new Uint8Array(32 * 4 * 4) },
      { name: 'visual.patch_embed.proj.qzeros', dtype: 'I32', shape: [1, 4], raw: new Uint8Array(16) },
      { name: 'visual.patch_embed.proj.scales', dtype: 'F16', shape: [1, 32], values: new Float32Array(32).fill(0.01) },
    ]);
    const ck = openCheckpoint(dir);
    try {
      const e = thrown(() => ensureModelGraph(ck, 'vision', { precision: 'int4', blockSize: 32, cacheDir: tempDir('qwen-awq-graphs') }));
      expect(e).toBeInstanceOf(engine.CheckpointError);
      expect(e).toMatchObject({ code: 'TENSOR_SHAPE', subject: 'model.visual.patch_embed.proj.qweight' });
    } finally {
      ck.close();
    }
  });

  it("a decoder linear's missing qzeros is TENSOR_MISSING naming it", () => {
    const { awq, tensors } = written('hub');
    const dir = rewriteWith(awq, tensors, (name) => name !== 'model.layers.1.mlp.down_proj.qzeros', []);
    const ck = openCheckpoint(dir);
    try {
      const e = thrown(() => ensureModelGraph(ck, 'decoder', { precision: 'int4', blockSize: 32, cacheDir: tempDir('qwen-awq-graphs') }));
      expect(e).toBeInstanceOf(engine.CheckpointError);
      expect(e).toMatchObject({ code: 'TENSOR_MISSING', subject: 'model.language_model.layers.1.mlp.down_proj.qzeros' });
    } finally {
      ck.close();
    }
  });
});

describe("precision 'int4' (round to nearest) on a float Qwen2.5-VL checkpoint", () => {
  it("stays close to fp32: runtime.test.ts's Llava tolerance (cosine > 0.98), and the prompt's greedy ids", async () => {
    // The sizes and seed of runtime.test.ts's Llava int4 test.
    const dir = tempDir('qwen-int4');
    writeTinyQwenVL(dir, { version: '2.5', seed: 7, textHidden: 128, textIntermediate: 256, textHeads: 4, textKvHeads: 2 });
    const tokens = Array.from({ length: 20 }, (_, i) => (i * 37 + 55) % 256);
    const logitsOf = (precision: 'fp32' | 'int4') => textPromptLogits(dir, tokens, { precision, blockSize: 32, hidden: 128, mrope: true });
    const [fp32, int4] = [await logitsOf('fp32'), await logitsOf('int4')];
    const vocab = fp32.length / tokens.length;
    const scale = maxAbsDiff(fp32, new Float32Array(fp32.length));
    const greedyOf = (x: Float32Array) => tokens.map((_, r) => argmax(x, r * vocab, vocab));
    const agree = greedyOf(int4).filter((id, r) => id === greedyOf(fp32)[r]).length;
    console.log(
      `Qwen int4 vs fp32: max |Δlogit| / max |logit| ${(maxAbsDiff(int4, fp32) / scale).toExponential(2)}, ` +
        `greedy id agreement ${agree}/${tokens.length}, cosine ${cosine(int4, fp32).toFixed(5)}`,
    );
    expect(maxAbsDiff(int4, fp32)).toBeGreaterThan(0); // int4 really ran quantized weights
    expect(cosine(int4, fp32)).toBeGreaterThan(0.98);
    // Observed 20 / 20 (Llava's test, which does not require it, sees about half).
    expect(agree / tokens.length).toBeGreaterThanOrEqual(0.9);
  });
});

/** A copy of checkpoint `dir` (which holds `tensors`) with the tensors `keep` picks, plus `extra`. */
function rewriteWith(dir: string, tensors: TensorToWrite[], keep: (name: string) => boolean, extra: TensorToWrite[]): string {
  const out = tempDir('qwen-awq-bad');
  for (const f of fs.readdirSync(dir)) if (!f.endsWith('.safetensors')) fs.copyFileSync(path.join(dir, f), path.join(out, f));
  writeSafetensorsCheckpoint(out, [...tensors.filter((t) => keep(t.name)), ...extra]);
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let [ab, aa, bb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i]! * b[i]!, aa + a[i]! * a[i]!, bb + b[i]! * b[i]!];
  return ab / Math.sqrt(aa * bb);
}
