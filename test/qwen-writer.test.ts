/**
 * The random Qwen2-VL / Qwen2.5-VL checkpoint writer (src/checkpoint/random-qwen.ts, the `./testing` entry):
 * what it writes opens through the family registry as the checkpoint it was asked for (spec, key layout,
 * every tensor's values under canonical names), both key layouts are the same model, its defaults are the
 * reference fixtures' files, and both tokenizers load, round-trip the vision tokens and render the Qwen prompt.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/temp.js';
import { thrown } from './helpers/thrown.js';
import { writeRandomQwenVL, writeTinyQwenVL, type RandomQwenVLOptions, type TinyQwenVL } from '../dist/src/testing.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import type { QwenVLSpec } from '../dist/src/families/qwen2-vl/config.js';
import type { Checkpoint } from '../dist/src/checkpoint/checkpoint.js';
import { loadQwenProcessorConfig } from '../dist/src/families/qwen2-vl/processor.js';
import { roundToDtype } from '../dist/src/checkpoint/safetensors-writer.js';
import { loadTextProcessor, renderChat, type TextProcessor } from '../dist/src/text/index.js';

const IMAGE_MESSAGE = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'hi' }] }];
/** The Qwen2-VL chat template's rendering of IMAGE_MESSAGE (fixtures README: the default system prompt, then the turn). */
const IMAGE_PROMPT =
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n';

/** Non-default sizes, so that each one's way into config.json is checked. */
const SIZES: RandomQwenVLOptions = { textHidden: 64, textHeads: 2, textKvHeads: 1, textIntermediate: 96, textLayers: 2, visionLayers: 3, visionHidden: 48 };

/** Runs `fn` on the checkpoint in `dir`, opened through the family registry, and closes it. */
function withCheckpoint<T>(dir: string, fn: (ck: Checkpoint<QwenVLSpec>) => T): T {
  const ck = openCheckpoint(dir) as Checkpoint<QwenVLSpec>;
  try {
    return fn(ck);
  } finally {
    ck.close();
  }
}

/** The first index where `a` and `b` differ bit for bit, or -1 (and -2 when their lengths differ). Faster than toEqual on big arrays. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function diskNames(dir: string): string[] {
  const names: string[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const buf = fs.readFileSync(path.join(dir, f));
    const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
    names.push(...Object.keys(header).filter((k) => k !== '__metadata__'));
  }
  return names.sort();
}

describe.each([
  { version: '2', layout: 'hub', tied: false, dtype: 'F32', shards: 1 },
  { version: '2', layout: 'hub', tied: true, dtype: 'BF16', shards: 3 },
  { version: '2', layout: 'current', tied: false, dtype: 'BF16', shards: 2 },
  { version: '2', layout: 'current', tied: true, dtype: 'F16', shards: 1 },
  { version: '2.5', layout: 'hub', tied: false, dtype: 'F16', shards: 2 },
  { version: '2.5', layout: 'hub', tied: true, dtype: 'F32', shards: 1 },
  { version: '2.5', layout: 'current', tied: false, dtype: 'F32', shards: 3 },
  { version: '2.5', layout: 'current', tied: true, dtype: 'BF16', shards: 1 },
] as const)('Qwen$version $layout tied=$tied $dtype in $shards file(s)', (c) => {
  const v25 = c.version === '2.5';
  const extra: RandomQwenVLOptions = v25 ? { windowSize: 112, fullAttBlockIndexes: [0, 2], tokensPerSecond: 4, visionHeads: 3 } : { visionHeads: 4 };
  const dir = tempDir('qwen-writer');
  const written: TinyQwenVL = writeTinyQwenVL(dir, { ...c, ...SIZES, ...extra, seed: 11 });

  it('opens as the checkpoint asked for: family, architecture, layout, text and vision spec, token ids', () => {
    const { spec, layout } = withCheckpoint(dir, (ck) => ({ spec: ck.spec, layout: ck.layout }));
    expect(spec.family).toBe('qwen2-vl');
    expect(spec.architecture).toBe(v25 ? 'Qwen2_5_VLForConditionalGeneration' : 'Qwen2VLForConditionalGeneration');
    expect(layout).toBe(c.layout);
    expect(spec.text).toMatchObject({ hiddenSize: 64, numHeads: 2, numKvHeads: 1, headDim: 32, intermediateSize: 96, numLayers: 2, vocabSize: 263 });
    expect(spec.text.tieWordEmbeddings).toBe(c.tied);
    // head_dim 32: half 16 split as Qwen's [16, 24, 24] is split for half 64.
    expect(spec.text.mropeSection).toEqual([4, 6, 6]);
    expect(spec.vision).toMatchObject({
      version: c.version,
      hiddenSize: 48,
      intermediateSize: v25 ? 96 : 192,
      numLayers: 3,
      numHeads: v25 ? 3 : 4,
      act: v25 ? 'silu' : 'quick_gelu',
      patchSize: 14,
      temporalPatchSize: 2,
      mergeSize: 2,
      outHiddenSize: 64,
      windowSize: v25 ? 112 : null,
      fullAttentionBlocks: v25 ? [0, 2] : [0, 1, 2],
      tokensPerSecond: v25 ? 4 : 1,
    });
    expect([spec.imageTokenId, spec.videoTokenId, spec.visionStartTokenId, spec.visionEndTokenId]).toEqual([261, 262, 259, 260]);
  });

  it('writes the files asked for, and exactly the tensors it reports under the layout’s names', () => {
    expect(written.files).toHaveLength(c.shards);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(c.shards > 1);
    const keys = [...written.tensors.values()].map((t) => t.key);
    expect(diskNames(dir)).toEqual([...keys].sort());
    const prefixes = c.layout === 'hub' ? ['visual.', 'model.', 'lm_head.'] : ['model.visual.', 'model.language_model.', 'lm_head.'];
    expect(keys.every((k) => prefixes.some((p) => k.startsWith(p)))).toBe(true);
    if (c.layout === 'hub') expect(keys.some((k) => k.startsWith('model.language_model.') || k.startsWith('model.visual.'))).toBe(false);
    expect(keys.includes('lm_head.weight')).toBe(!c.tied);
    expect(written.parameters).toBe([...written.tensors.values()].reduce((a, t) => a + t.values.length, 0));
  });

  it('reads every canonical tensor with the values written', () => {
    withCheckpoint(dir, (ck) => {
      expect(ck.has('lm_head.weight')).toBe(!c.tied);
      for (const [name, t] of written.tensors) {
        expect(name.startsWith('model.visual.') || name.startsWith('model.language_model.') || name === 'lm_head.weight').toBe(true);
        expect(t.dtype).toBe(c.dtype);
        expect(firstDifference(ck.read(name, t.shape), t.values), name).toBe(-1);
      }
    });
  });

  it('has every tensor of the transformers class, with its shape', () => {
    const shape = (n: string) => written.tensors.get(n)?.shape;
    expect(shape('model.visual.patch_embed.proj.weight')).toEqual([48, 3, 2, 14, 14]);
    expect(written.tensors.has('model.visual.patch_embed.proj.bias')).toBe(false);
    for (let i = 0; i < 3; i++) {
      const b = `model.visual.blocks.${i}.`;
      for (const n of ['norm1', 'norm2']) {
        expect(shape(`${b}${n}.weight`)).toEqual([48]);
        expect(written.tensors.has(`${b}${n}.bias`)).toBe(!v25);
      }
      expect([shape(`${b}attn.qkv.weight`), shape(`${b}attn.qkv.bias`)]).toEqual([[144, 48], [144]]);
      expect([shape(`${b}attn.proj.weight`), shape(`${b}attn.proj.bias`)]).toEqual([[48, 48], [48]]);
      const mlp = v25 ? { gate_proj: [96, 48], up_proj: [96, 48], down_proj: [48, 96] } : { fc1: [192, 48], fc2: [48, 192] };
      for (const [p, s] of Object.entries(mlp)) expect([shape(`${b}mlp.${p}.weight`), shape(`${b}mlp.${p}.bias`)]).toEqual([s, [s[0]]]);
    }
    expect(written.tensors.has('model.visual.blocks.3.norm1.weight')).toBe(false);
    expect(shape('model.visual.merger.ln_q.weight')).toEqual([48]);
    expect(written.tensors.has('model.visual.merger.ln_q.bias')).toBe(!v25);
    expect([shape('model.visual.merger.mlp.0.weight'), shape('model.visual.merger.mlp.0.bias')]).toEqual([[192, 192], [192]]);
    expect([shape('model.visual.merger.mlp.2.weight'), shape('model.visual.merger.mlp.2.bias')]).toEqual([[64, 192], [64]]);
    const l = 'model.language_model.';
    expect(shape(`${l}embed_tokens.weight`)).toEqual([263, 64]);
    expect([shape(`${l}layers.1.self_attn.k_proj.weight`), shape(`${l}layers.1.self_attn.k_proj.bias`)]).toEqual([[32, 64], [32]]);
    expect(written.tensors.has(`${l}layers.1.self_attn.o_proj.bias`)).toBe(false);
    expect(shape(`${l}layers.1.mlp.down_proj.weight`)).toEqual([64, 96]);
    expect(shape(`${l}norm.weight`)).toEqual([64]);
  });
});

describe('the writer', () => {
  it('writes the same model in the hub and the current layout from one seed', () => {
    const options: RandomQwenVLOptions = { version: '2.5', tied: false, dtype: 'BF16', seed: 3 };
    const hubDir = tempDir('qwen-hub');
    const curDir = tempDir('qwen-current');
    const hub = writeTinyQwenVL(hubDir, { ...options, layout: 'hub' });
    writeTinyQwenVL(curDir, { ...options, layout: 'current', shards: 2 });
    expect(hub.config.text_config).toBeUndefined();
    expect(hub.config.rope_scaling).toEqual({ type: 'mrope', mrope_section: [2, 3, 3] });
    withCheckpoint(curDir, (cur) =>
      withCheckpoint(hubDir, (hubCk) => {
        expect([cur.layout, hubCk.layout]).toEqual(['current', 'hub']);
        expect(cur.spec).toEqual(hubCk.spec);
        for (const [name, t] of hub.tensors) {
          expect(firstDifference(cur.read(name, t.shape), t.values), name).toBe(-1);
          expect(firstDifference(hubCk.read(name, t.shape), t.values), name).toBe(-1);
        }
      }),
    );
  });

  it('writes the current layout as transformers >= 4.52 saves it: text_config nested, rope type "default" beside mrope_section', () => {
    const dir = tempDir('qwen-current-config');
    const { config } = writeTinyQwenVL(dir, { version: '2', layout: 'current' });
    expect(config.text_config).toMatchObject({ model_type: 'qwen2_vl_text', hidden_size: 64, vocab_size: 263 });
    expect(config.text_config.rope_scaling).toEqual({ rope_type: 'default', type: 'default', mrope_section: [2, 3, 3] });
    expect(config.hidden_size).toBeUndefined();
    expect(config.vision_config).toMatchObject({ model_type: 'qwen2_vl', in_channels: 3, embed_dim: 32, hidden_size: 64 });
  });

  it('rounds BF16 values as written: the F32 values of the same seed, rounded to bfloat16', () => {
    const f32 = writeTinyQwenVL(tempDir('qwen-f32'), { seed: 9 });
    const bf16Dir = tempDir('qwen-bf16');
    const bf16 = writeTinyQwenVL(bf16Dir, { seed: 9, dtype: 'BF16' });
    let changed = 0;
    withCheckpoint(bf16Dir, (ck) => {
      for (const [name, t] of bf16.tensors) {
        const exact = f32.tensors.get(name)!.values;
        expect(firstDifference(t.values, roundToDtype('BF16', exact)), name).toBe(-1);
        // bfloat16 keeps the high 16 bits of a float32.
        expect(new Uint32Array(t.values.buffer).every((bits) => (bits & 0xffff) === 0)).toBe(true);
        expect(firstDifference(ck.read(name, t.shape), t.values), name).toBe(-1);
        changed += t.values.some((v, i) => v !== exact[i]) ? 1 : 0;
      }
    });
    expect(changed).toBe(bf16.tensors.size);
  });

  it('streams the same bytes it writes with the values kept, and keeps none', () => {
    const options: RandomQwenVLOptions = { version: '2', dtype: 'F16', shards: 2, seed: 5 };
    const tiny = writeTinyQwenVL(tempDir('qwen-tiny'), options);
    const random = writeRandomQwenVL(tempDir('qwen-random'), options);
    expect(random.files.map((f) => path.basename(f))).toEqual(tiny.files.map((f) => path.basename(f)));
    for (const [i, f] of random.files.entries()) expect(fs.readFileSync(f).equals(fs.readFileSync(tiny.files[i]!))).toBe(true);
    expect([...random.tensors.values()].some((t) => 'values' in t)).toBe(false);
    expect([random.parameters, random.bytes]).toEqual([tiny.parameters, tiny.bytes]);
  });

  it('splits head_dim / 2 over the M-RoPE sections as Qwen does: [16, 24, 24] for head_dim 128, [2, 3, 3] for 16', () => {
    const big = writeRandomQwenVL(tempDir('qwen-mrope'), { textHidden: 256, textHeads: 2, textKvHeads: 1, textLayers: 1, visionLayers: 1, dtype: 'BF16' });
    expect(big.config.rope_scaling.mrope_section).toEqual([16, 24, 24]);
    expect(withCheckpoint(big.dir, (ck) => ck.spec.text.mropeSection)).toEqual([16, 24, 24]);
    expect(writeRandomQwenVL(tempDir('qwen-mrope'), { textLayers: 1 }).config.rope_scaling.mrope_section).toEqual([2, 3, 3]);
  });

  it('writes the pixel bounds asked for into both processor configs', async () => {
    const dir = tempDir('qwen-pixels');
    writeRandomQwenVL(dir, { minPixels: 28 * 28 * 4, maxPixels: 28 * 28 * 64, textLayers: 1 });
    for (const file of ['preprocessor_config.json', 'video_preprocessor_config.json']) {
      expect(await loadQwenProcessorConfig(dir, file)).toMatchObject({ minPixels: 3136, maxPixels: 50176, patchSize: 14, temporalPatchSize: 2, mergeSize: 2 });
    }
  });

  it('refuses options it cannot write: window options for Qwen2-VL, a vocabulary smaller than the tokenizer', () => {
    for (const o of [{ version: '2', windowSize: 112 }, { vocab: 200 }] as RandomQwenVLOptions[]) {
      expect(thrown(() => writeTinyQwenVL(tempDir('qwen-bad'), o))).toMatchObject({ code: 'OPTION_INVALID' });
    }
  });

  it.each([
    ['qwen2_vl-tiny', '2'],
    ['qwen2_5_vl-tiny', '2.5'],
  ] as const)('by default writes the %s fixture’s config, tensor names and shapes, processor and tokenizer files', (fixture, version) => {
    const dir = tempDir('qwen-default');
    const written = writeTinyQwenVL(dir, { version });
    const fixtureDir = path.join(FIXTURES_DIR, fixture);
    const json = (d: string, f: string): unknown => JSON.parse(fs.readFileSync(path.join(d, f), 'utf8'));
    expect(written.config).toEqual(json(fixtureDir, 'config.json'));
    for (const f of ['preprocessor_config.json', 'video_preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.json']) {
      expect(json(dir, f), f).toEqual(json(fixtureDir, f));
    }
    expect(diskNames(dir)).toEqual(diskNames(fixtureDir));
    withCheckpoint(fixtureDir, (fixtureCk) => {
      for (const [name, t] of written.tensors) expect(t.shape, name).toEqual(fixtureCk.shape(name));
    });
  });
});

describe.each(['bytes', 'qwen'] as const)('the %s tokenizer', (tokenizer) => {
  const qwen = tokenizer === 'qwen';
  const dir = tempDir(`qwen-tok-${tokenizer}`);
  // The Qwen vocabulary makes a 151936-row embedding: a narrow model keeps it a few MB.
  const written = writeRandomQwenVL(dir, {
    tokenizer,
    textHidden: 16,
    textHeads: 2,
    textKvHeads: 1,
    textIntermediate: 16,
    textLayers: 1,
    visionLayers: 1,
    dtype: 'BF16',
  });
  let tp: TextProcessor;
  beforeAll(async () => {
    tp = await loadTextProcessor(dir);
  });

  it('names the special tokens the config’s ids point at', () => {
    const spec = withCheckpoint(dir, (ck) => ck.spec);
    expect(spec.text.vocabSize).toBe(qwen ? 151936 : 263);
    expect(spec.imageTokenId).toBe(qwen ? 151655 : 261);
    expect(spec.visionStartTokenId).toBe(qwen ? 151652 : 259);
    const ids = {
      '<|image_pad|>': spec.imageTokenId,
      '<|video_pad|>': spec.videoTokenId,
      '<|vision_start|>': spec.visionStartTokenId,
      '<|vision_end|>': spec.visionEndTokenId,
    };
    for (const [token, id] of Object.entries(ids)) expect(tp.tokenToId(token), token).toBe(id);
    expect(tp.eosTokenIds).toEqual([written.config.eos_token_id]);
    expect(tp.idToToken(written.config.eos_token_id)).toBe('<|im_end|>');
    expect(tp.vocabSize).toBeLessThanOrEqual(spec.text.vocabSize);
  });

  it('round-trips a sentence with an image’s vision tokens in it', () => {
    const sentence = 'Look at <|vision_start|><|image_pad|><|vision_end|> — what is in it? Größe: 42.';
    const ids = tp.encode(sentence);
    const start = ids.indexOf(written.config.vision_start_token_id);
    expect(start).toBeGreaterThan(0);
    expect(ids.slice(start, start + 3)).toEqual([written.config.vision_start_token_id, written.config.image_token_id, written.config.vision_end_token_id]);
    if (qwen) expect(ids.length).toBeLessThan(new TextEncoder().encode(sentence).length / 2); // real merges, not bytes
    expect(tp.decode(ids)).toBe(sentence);
  });

  it('renders the Qwen2-VL chat template for a message with an image', () => {
    expect(renderChat(tp, IMAGE_MESSAGE)).toBe(IMAGE_PROMPT);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
    const template = JSON.parse(fs.readFileSync(path.join(dir, 'chat_template.json'), 'utf8')) as { chat_template: string };
    expect(config.chat_template).toBe(template.chat_template);
  });
});
