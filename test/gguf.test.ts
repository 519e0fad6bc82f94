/**
 * scripts/gguf.mjs turns a checkpoint's text model into the GGUF the benches' llama.cpp peer runs. The property that
 * makes the peer a fair one: llama.cpp, evaluating the same token ids on the file, computes the same logits as our
 * dense path — exactly (float32 rounding) for F32, and for Q4_0 the logits of the weights as llama.cpp's own
 * quantizer rounds them. llama.cpp is node-llama-cpp's prebuilt CPU binary (`build: 'never'`: nothing is fetched
 * or compiled).
 */
import fs from 'node:fs';
import path from 'node:path';
import { getLlama, readGgufFileInfo, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointToGguf, dequantizeQ4_0, quantizeQ4_0 } from '../scripts/gguf.mjs';
import { SafetensorsFile } from '../dist/src/checkpoint/safetensors.js';
import { writeSafetensors, writeTinyLlava } from './helpers/checkpoint-writer.js';
import { writeTinyQwenVL } from '../dist/src/checkpoint/random-qwen.js';
import { engine, maxAbsDiff, tempDir, textPromptLogits } from './helpers/engine.js';
import { thrown } from './helpers/thrown.js';

const IDS = [5, 17, 200, 33, 99, 140, 7, 250, 3, 64];

let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
});
afterAll(async () => {
  await llama?.dispose();
});

/**
 * llama.cpp's logits at every position of IDS, [positions × vocab]. The KV cache in F32 and flash attention off:
 * llama.cpp's defaults (f16 KV, flash attention) round keys and values to half precision, ~1e-4 off float32.
 */
async function llamaCppLogits(file: string): Promise<Float32Array> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const context = await model.createContext({
      contextSize: 64,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    const out = await context.getSequence().controlledEvaluate(IDS.map((id) => [id, { generateNext: { logits: true } }]));
    const vocab = out[0]!.next.logits!.size;
    const logits = new Float32Array(IDS.length * vocab);
    out.forEach((o, p) => {
      for (const [token, value] of o!.next.logits!) logits[p * vocab + token] = value;
    });
    await context.dispose();
    return logits;
  } finally {
    await model.dispose();
  }
}

const ours = (dir: string, hidden: number) => textPromptLogits(dir, IDS, { precision: 'fp32', blockSize: 32, hidden });

describe('GGUF writer (llama.cpp peer)', () => {
  it('F32: llama.cpp computes our dense logits at every position, for Qwen2 and for LLaMA (q/k rows reordered for its rotary)', async () => {
    for (const [vision, arch, hidden] of [
      ['siglip', 'qwen2', 64],
      ['clip', 'llama', 48],
    ] as const) {
      const dir = tempDir(`gguf-${arch}`);
      writeTinyLlava(dir, { vision, seed: 3 });
      const file = path.join(dir, 'model.gguf');
      const written = checkpointToGguf(dir, file, { type: 'F32' });
      expect(written).toMatchObject({ arch, type: 'F32', bytes: fs.statSync(file).size });

      // Read back by node-llama-cpp's own GGUF parser: the architecture's hyperparameters and numpy shapes reversed.
      const info = await readGgufFileInfo(file);
      const meta = info.metadata as unknown as Record<string, Record<string, unknown>>;
      expect(meta.general!.architecture).toBe(arch);
      expect(meta[arch]).toMatchObject({ embedding_length: hidden, block_count: 2, attention: { head_count: 4, head_count_kv: 2 } });
      expect(info.fullTensorInfo!.find((t) => t.name === 'blk.0.ffn_down.weight')!.dimensions.map(Number)).toEqual([hidden * 2, hidden]);

      const theirs = await llamaCppLogits(file);
      const mine = await ours(dir, hidden);
      // float32 throughout on both sides; only summation order differs (measured: 3e-7 on logits of magnitude ~1).
      expect(maxAbsDiff(theirs, mine), arch).toBeLessThan(1e-5);
    }
  });

  it('Q4_0: a block is quantize_row_q4_0_ref bit for bit, and llama.cpp computes the logits of the weights as Q4_0 rounds them', async () => {
    // One block by hand: x_j = j − 16. The signed max-magnitude value is −16, so d = 2 (f16 0x4000) and
    // q_j = min(15, trunc((j − 16) / 2 + 8.5)); byte j holds q_j (low nibble) and q_{j+16} (high nibble).
    const block = quantizeQ4_0(Float32Array.from({ length: 32 }, (_, j) => j - 16));
    const q = (j: number) => Math.min(15, Math.trunc((j - 16) / 2 + 8.5));
    expect([...block]).toEqual([0x00, 0x40, ...Array.from({ length: 16 }, (_, j) => q(j) | (q(j + 16) << 4))]);
    expect([...dequantizeQ4_0(block, 32)]).toEqual(Array.from({ length: 32 }, (_, j) => (q(j) - 8) * 2));

    const dir = tempDir('gguf-q4');
    writeTinyLlava(dir, { vision: 'siglip', seed: 3 });
    const file = path.join(dir, 'model-q4_0.gguf');
    checkpointToGguf(dir, file, { type: 'Q4_0' });
    // The same checkpoint with every text-model matrix rounded through Q4_0 and back, in F32.
    const rounded = tempDir('gguf-q4-rounded');
    fs.cpSync(dir, rounded, { recursive: true });
    const st = new SafetensorsFile(path.join(dir, 'model.safetensors'));
    const tensors = [...st.tensors].map(([name, { shape }]) => {
      const values = st.read(name);
      const matrix = name.startsWith('model.language_model.') && shape.length === 2;
      return { name, dtype: 'F32', shape: [...shape], values: matrix ? dequantizeQ4_0(quantizeQ4_0(values), values.length) : values };
    });
    st.close();
    writeSafetensors(path.join(rounded, 'model.safetensors'), tensors);

    const theirs = await llamaCppLogits(file);
    const onRounded = maxAbsDiff(theirs, await ours(rounded, 64));
    const onOriginal = maxAbsDiff(theirs, await ours(dir, 64));
    // llama.cpp multiplies Q4_0 weights by activations it rounds to Q8_0 (ggml's vec_dot_type): measured 0.006 on
    // logits of magnitude ~1, against 0.1 for the unrounded weights. A wrong scale or nibble order would be far off both.
    expect(onRounded).toBeLessThan(0.02);
    expect(onOriginal).toBeGreaterThan(5 * onRounded);
  });

  it('refuses, with a typed error naming the field, a text model the writer cannot express', () => {
    const refused = (dir: string, type = 'F32') => thrown(() => checkpointToGguf(dir, path.join(dir, 'x.gguf'), { type }));
    const qwenVL = tempDir('gguf-qwen-vl');
    writeTinyQwenVL(qwenVL);
    expect(refused(qwenVL)).toMatchObject({ name: 'ConfigError', code: 'CONFIG_UNSUPPORTED', subject: 'mrope_section' });
    const scaled = tempDir('gguf-scaled');
    writeTinyLlava(scaled, { vision: 'siglip', ropeScaling: { rope_type: 'linear', factor: 2 } });
    expect(refused(scaled)).toMatchObject({ code: 'CONFIG_UNSUPPORTED', subject: 'rope_scaling' });
    // LLaMA's tiny hidden size 48 is not whole Q4_0 blocks of 32.
    const llamaDir = tempDir('gguf-llama-q4');
    writeTinyLlava(llamaDir, { vision: 'clip' });
    expect(refused(llamaDir, 'Q4_0')).toMatchObject({ code: 'CONFIG_UNSUPPORTED', subject: 'token_embd.weight' });
    expect(refused(llamaDir, 'Q8_0')).toMatchObject({ name: 'InputError', code: 'OPTION_INVALID', subject: 'type' });
    expect(refused(llamaDir, 'Q8_0')).toBeInstanceOf(engine.SparseVilaError);
    expect(fs.readdirSync(llamaDir).filter((f) => f.endsWith('.gguf'))).toEqual([]);
  });
});
