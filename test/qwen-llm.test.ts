/**
 * The Qwen2-VL / Qwen2.5-VL family's config, key layouts and LLM against transformers' math on
 * `../shared/fixtures/qwen2*_vl-tiny`: the decoder takes the reference merger output at the image rows and the
 * reference M-RoPE position ids, and must give the reference logits (within 1e-3) and greedy ids. The vision
 * side is checked in qwen-vision.test.ts; the two meet in qwen-chat.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff, TEST_RUNTIME, tempDir } from './helpers/engine.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { parseQwenConfig } from '../dist/src/families/qwen2-vl/config.js';
import { Runtime } from '../dist/src/runtime/runtime.js';
import { fixedChunks } from '../dist/src/runtime/memory.js';
import { prefill, type PositionRows } from '../dist/src/session/prefill.js';
import { argmax } from '../dist/src/session/sampling.js';
import { writeSafetensors } from '../dist/src/checkpoint/safetensors-writer.js';
import { openSafetensors } from '../dist/src/checkpoint/safetensors.js';

const FIXTURES = path.resolve(__dirname, '../../shared/fixtures');

interface Expected {
  input_ids: number[];
  position_ids: number[][];
  rope_deltas: number;
  last_logits: number[];
  prompt_logits_rows: Record<string, number[]>;
  all_logits_sum: number;
  greedy_ids: number[];
  greedy_positions: number[];
  vision_embeds: number[][];
}

/** The fixture re-saved in transformers' current layout: `model.visual.*`, `model.language_model.*`, `text_config` nested. */
function currentLayoutCopy(dir: string): string {
  const out = tempDir('qwen-current');
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const textKeys = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'hidden_act'];
  const text: Record<string, unknown> = { model_type: `${config.model_type}_text` };
  for (const k of [...textKeys, 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'use_sliding_window', 'sliding_window', 'max_window_layers']) {
    text[k] = config[k];
    if (textKeys.includes(k)) delete config[k];
  }
  text.rope_scaling = { type: 'default', rope_type: 'default', mrope_section: (config.rope_scaling as { mrope_section: number[] }).mrope_section };
  delete config.rope_scaling;
  config.text_config = text;
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config));
  const file = openSafetensors(path.join(dir, 'model.safetensors'));
  const tensors = [...file.names()].map((name) => {
    const renamed = name.startsWith('visual.') ? `model.${name}` : name.startsWith('model.') ? `model.language_model.${name.slice(6)}` : name;
    return { name: renamed, dtype: 'F32', shape: [...file.info(name)!.shape], values: file.read(name) };
  });
  writeSafetensors(path.join(out, 'model.safetensors'), tensors);
  file.close();
  return out;
}

describe.each(['qwen2_5_vl-tiny', 'qwen2_vl-tiny'])('%s LLM matches transformers', (name) => {
  const dir = path.join(FIXTURES, name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.start(dir, { precision: 'fp32', blockSize: 32, cacheDir: tempDir('qwen-graphs') }, TEST_RUNTIME);
  });
  afterAll(() => rt?.close());

  it('reads the config: M-RoPE sections, the tower, the token ids; the published key layout', () => {
    const ck = openCheckpoint(dir);
    try {
      expect(ck.layout).toBe('hub');
      const spec = ck.spec;
      expect(spec.family).toBe('qwen2-vl');
      expect(spec.text.mropeSection).toEqual([2, 3, 3]);
      expect(spec.text.tieWordEmbeddings).toBe(name === 'qwen2_5_vl-tiny');
      expect(spec.imageTokenId).toBe(261);
      if (spec.family !== 'qwen2-vl') throw new Error('not qwen');
      expect(spec.vision.fullAttentionBlocks).toEqual(name === 'qwen2_5_vl-tiny' ? [1, 3] : [0, 1, 2, 3]);
      expect(spec.vision.salienceBlock).toBe(3);
      expect(ck.shape('model.language_model.layers.0.self_attn.q_proj.weight')).toEqual([64, 64]);
      expect(ck.shape('model.visual.patch_embed.proj.weight')).toEqual([32, 3, 2, 14, 14]);
    } finally {
      ck.close();
    }
  });

  it('reads the current layout (model.visual.*, model.language_model.*, nested text_config) as the same model', () => {
    const a = openCheckpoint(dir);
    const b = openCheckpoint(currentLayoutCopy(dir));
    try {
      expect(b.layout).toBe('current');
      expect(b.spec).toEqual(a.spec);
      for (const t of ['model.language_model.embed_tokens.weight', 'model.visual.blocks.1.attn.qkv.weight', 'model.language_model.norm.weight']) {
        expect(b.read(t)).toEqual(a.read(t));
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses an unknown rope_scaling type and an mrope_section that does not fit head_dim, naming the field', () => {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const withRope = (rope: unknown) => parseQwenConfig({ ...config, rope_scaling: rope }, 'config.json');
    expect(() => withRope({ type: 'yarn', factor: 4, mrope_section: [2, 3, 3] })).toThrow(
      expect.objectContaining({ code: 'CONFIG_UNSUPPORTED', subject: 'rope_scaling.rope_type' }),
    );
    expect(() => withRope({ type: 'mrope', mrope_section: [2, 3, 4] })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', subject: 'rope_scaling' }));
    expect(() => withRope(null)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', subject: 'rope_scaling' }));
  });

  const promptInput = (cache: number, chunkSize: number) => ({
    cache,
    ids: expected.input_ids,
    positions: expected.position_ids[0]!,
    positionRows: expected.position_ids as unknown as PositionRows,
    imageTokenId: 261,
    imageEmbeds: Float32Array.from(expected.vision_embeds.flat()),
    hidden: 64,
    chunks: fixedChunks(chunkSize),
    logits: 'all' as const,
  });

  it('gives every prompt row the reference logits from the reference M-RoPE ids (1e-3), chunked or not', async () => {
    const whole = await prefill(rt, promptInput(await rt.createCache(), 1 << 20));
    const chunked = await prefill(rt, promptInput(await rt.createCache(), 7));
    const vocab = 263;
    for (const [row, values] of Object.entries(expected.prompt_logits_rows)) {
      expect(maxAbsDiff(whole.logits.subarray(+row * vocab, (+row + 1) * vocab), values), `row ${row}`).toBeLessThan(1e-3);
    }
    expect(maxAbsDiff(whole.logits.subarray(-vocab), expected.last_logits)).toBeLessThan(1e-3);
    expect(Math.abs(whole.logits.reduce((a, b) => a + b, 0) - expected.all_logits_sum)).toBeLessThan(1e-2);
    expect(maxAbsDiff(chunked.logits, whole.logits)).toBeLessThan(1e-4);
  });

  it('decodes the reference greedy ids at positions L + k + rope_deltas', async () => {
    const cache = await rt.createCache();
    const out = await prefill(rt, { ...promptInput(cache, 1 << 20), logits: 'last' });
    const ids = [argmax(out.logits)];
    const L = expected.input_ids.length;
    for (let k = 0; ids.length < expected.greedy_ids.length; k++) {
      expect(expected.greedy_positions[k]).toBe(L + k + expected.rope_deltas);
      const step = await rt.step({ target: { cache }, ids: [ids.at(-1)!], positions: [expected.greedy_positions[k]!], logits: 'last' });
      ids.push(argmax(step.logits));
    }
    expect(ids).toEqual(expected.greedy_ids);
  });

  it('refuses M-RoPE rows that do not match the token count', async () => {
    const cache = await rt.createCache();
    await expect(rt.step({ target: { cache }, ids: [1, 2], positions: [0, 1, 2, 3], logits: 'last' })).rejects.toThrow(/4 positions for 2 tokens/);
  });
});
