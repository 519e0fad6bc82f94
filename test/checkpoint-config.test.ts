import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ConfigError, SparseVilaError, type ErrorCode } from '../src/errors.js';
import { openCheckpoint, parseLlavaConfig } from '../src/families/index.js';
import { CLIP_FIXTURE, SIGLIP_FIXTURE, writeTinyLlava, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { thrown } from './helpers/thrown.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-cfg-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let counter = 0;
const tiny = (o: TinyLlavaOptions = {}) => writeTinyLlava(path.join(tmpRoot, `c${counter++}`), o);

const clipConfig = (): any => JSON.parse(fs.readFileSync(path.join(CLIP_FIXTURE, 'config.json'), 'utf8'));
const siglipConfig = (): any => JSON.parse(fs.readFileSync(path.join(SIGLIP_FIXTURE, 'config.json'), 'utf8'));
const parse = (cfg: unknown) => parseLlavaConfig(cfg, '/ckpt/config.json');

/** Assert a ConfigError with `code`, whose subject is `subject` and whose message names the subject, the file and `mentions`. */
function expectConfigError(fn: () => unknown, code: ErrorCode, subject: string, ...mentions: string[]): void {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(ConfigError);
  const err = caught as SparseVilaError;
  expect(err.code).toBe(code);
  expect(err.subject).toBe(subject);
  for (const m of [subject, 'config.json', ...mentions]) expect(err.message).toContain(m);
}

describe('typed config errors through openCheckpoint', () => {
  test('an unknown architectures[0] is CONFIG_UNSUPPORTED naming the field, the value and what is supported', () => {
    const w = tiny({ configPatch: { top: { architectures: ['LlavaNextForConditionalGeneration'] } } });
    expectConfigError(
      () => openCheckpoint(w.dir),
      'CONFIG_UNSUPPORTED',
      'architectures[0]',
      'LlavaNextForConditionalGeneration',
      'LlavaForConditionalGeneration',
    );
  });

  test('an unsupported rope type (yarn) is CONFIG_UNSUPPORTED naming text_config.rope_scaling.rope_type and the value', () => {
    const w = tiny({ ropeScaling: { rope_type: 'yarn', factor: 4 } });
    expectConfigError(() => openCheckpoint(w.dir), 'CONFIG_UNSUPPORTED', 'text_config.rope_scaling.rope_type', 'yarn', 'llama3');
  });

  test('a vision_feature_layer out of range is CONFIG_INVALID naming the field and the value', () => {
    const w = tiny({ featureLayer: -5, visionLayers: 3 });
    expectConfigError(() => openCheckpoint(w.dir), 'CONFIG_INVALID', 'vision_feature_layer', '-5', '-4..3');
  });
});

describe('parseLlavaConfig', () => {
  test('absent fields take transformers defaults (LlavaConfig, CLIPVisionConfig-L/336, LlamaConfig)', () => {
    const spec = parse({ architectures: ['LlavaForConditionalGeneration'], model_type: 'llava' });
    expect(spec.vision).toMatchObject({
      kind: 'clip',
      hiddenSize: 1024,
      numLayers: 24,
      numHeads: 16,
      imageSize: 336,
      patchSize: 14,
      gridSize: 24,
      numPositions: 577,
      act: 'quick_gelu',
      layerNormEps: 1e-5,
      numChannels: 3,
    });
    expect(spec.text).toMatchObject({
      kind: 'llama',
      hiddenSize: 4096,
      numHeads: 32,
      numKvHeads: 32,
      headDim: 128,
      vocabSize: 32000,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 2048,
      tieWordEmbeddings: false,
      attentionBias: false,
      outputBias: false,
      mlpBias: false,
    });
    expect(spec.featureLayers).toEqual([23]);
    expect(spec.selectStrategy).toBe('default');
    expect(spec.imageTokenId).toBe(32000);
    expect(spec.imageTokenCount).toBe(576);
    expect(spec.projector).toEqual({ act: 'gelu', bias: true, inputSize: 1024, outputSize: 4096 });
  });

  test('Qwen2 defaults: num_key_value_heads 32 when absent, q/k/v bias on, o_proj bias off, 32768 positions', () => {
    const cfg = siglipConfig();
    delete cfg.text_config.num_key_value_heads;
    delete cfg.text_config.max_position_embeddings;
    cfg.text_config.num_attention_heads = 32;
    const t = parse(cfg).text;
    expect(t).toMatchObject({ numKvHeads: 32, headDim: 2, attentionBias: true, outputBias: false, maxPositionEmbeddings: 32768 });
    cfg.text_config.num_key_value_heads = null;
    cfg.text_config.num_attention_heads = 8;
    expect(parse(cfg).text.numKvHeads).toBe(8);
  });

  test('image_token_id is accepted as an alias of image_token_index', () => {
    const cfg = clipConfig();
    delete cfg.image_token_index;
    cfg.image_token_id = 151646;
    expect(parse(cfg).imageTokenId).toBe(151646);
  });

  test('tie_word_embeddings falls back from text_config to the top level', () => {
    const cfg = clipConfig();
    delete cfg.text_config.tie_word_embeddings;
    cfg.tie_word_embeddings = true;
    expect(parse(cfg).text.tieWordEmbeddings).toBe(true);
    delete cfg.tie_word_embeddings;
    expect(parse(cfg).text.tieWordEmbeddings).toBe(false);
  });

  test('LLaMA attention_bias sets q/k/v and o biases; mlp_bias sets MLP biases', () => {
    const cfg = clipConfig();
    Object.assign(cfg.text_config, { attention_bias: true, mlp_bias: true, head_dim: 16 });
    expect(parse(cfg).text).toMatchObject({ attentionBias: true, outputBias: true, mlpBias: true, headDim: 16 });
  });

  test('a list of feature layers resolves each index and widens the projector input', () => {
    const cfg = clipConfig();
    cfg.vision_feature_layer = [-3, -1, 0];
    const spec = parse(cfg);
    expect(spec.featureLayers).toEqual([1, 3, 0]);
    expect(spec.projector.inputSize).toBe(96);
  });

  test('imageTokenCount drops token 0 under "default" on either tower and keeps CLS under "full"', () => {
    const clip = clipConfig();
    clip.vision_feature_select_strategy = 'full';
    expect(parse(clip).imageTokenCount).toBe(17);
    const sig = siglipConfig();
    sig.vision_feature_select_strategy = 'default';
    expect(parse(sig).imageTokenCount).toBe(15);
  });

  test.each([
    [
      { rope_type: 'linear', factor: 2 },
      { type: 'linear', factor: 2 },
    ],
    [
      { type: 'linear', factor: 4 },
      { type: 'linear', factor: 4 },
    ],
    [{ rope_type: 'default' }, { type: 'default' }],
    [
      { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    ],
  ])('rope_scaling %j parses to %j', (raw, want) => {
    const cfg = clipConfig();
    cfg.text_config.rope_scaling = raw;
    expect(parse(cfg).text.ropeScaling).toEqual(want);
  });

  test('rope_parameters (newer configs) supplies rope type and rope_theta', () => {
    const cfg = clipConfig();
    delete cfg.text_config.rope_theta;
    cfg.text_config.rope_parameters = { rope_type: 'linear', factor: 2, rope_theta: 500000 };
    expect(parse(cfg).text).toMatchObject({ ropeTheta: 500000, ropeScaling: { type: 'linear', factor: 2 } });
  });

  test('the legacy rope `type` key with an unsupported value is CONFIG_UNSUPPORTED naming rope_type', () => {
    const cfg = clipConfig();
    cfg.text_config.rope_scaling = { type: 'dynamic', factor: 2 };
    expectConfigError(() => parse(cfg), 'CONFIG_UNSUPPORTED', 'text_config.rope_scaling.rope_type', 'dynamic');
  });

  test('llama3 rope without its required fields is CONFIG_INVALID naming the missing field', () => {
    const cfg = clipConfig();
    cfg.text_config.rope_scaling = { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    expectConfigError(() => parse(cfg), 'CONFIG_INVALID', 'text_config.rope_scaling.low_freq_factor');
  });

  test.each([
    ['vision_config', 'model_type', 'clip', 'siglip_vision_model'],
    ['text_config', 'model_type', 'mistral', 'qwen2'],
    ['vision_config', 'hidden_act', 'relu', 'gelu_pytorch_tanh'],
    ['text_config', 'hidden_act', 'gelu', 'silu'],
    ['', 'projector_hidden_act', 'tanh', 'quick_gelu'],
    ['', 'model_type', 'llava_next', 'llava'],
  ])('%s.%s = %s is CONFIG_UNSUPPORTED naming the field, the value and what is supported', (sub, field, value, supported) => {
    const cfg = clipConfig();
    (sub === '' ? cfg : cfg[sub])[field] = value;
    const subject = sub === '' ? field : `${sub}.${field}`;
    expectConfigError(() => parse(cfg), 'CONFIG_UNSUPPORTED', subject, value, supported);
  });

  test.each([
    ['vision_config', 'hidden_size', 0],
    ['text_config', 'num_hidden_layers', -1],
    ['text_config', 'vocab_size', 'many'],
    ['text_config', 'rms_norm_eps', null],
    ['vision_config', 'patch_size', 2.5],
  ])('%s.%s = %j is CONFIG_INVALID naming the field', (sub, field, value) => {
    const cfg = clipConfig();
    cfg[sub][field] = value;
    expectConfigError(() => parse(cfg), 'CONFIG_INVALID', `${sub}.${field}`);
  });

  test('num_attention_heads not dividing hidden_size, or kv heads not dividing heads, is CONFIG_INVALID', () => {
    const a = clipConfig();
    a.text_config.num_attention_heads = 5;
    a.text_config.num_key_value_heads = 5;
    expectConfigError(() => parse(a), 'CONFIG_INVALID', 'text_config.num_attention_heads', '48');
    const b = clipConfig();
    b.text_config.num_key_value_heads = 3;
    expectConfigError(() => parse(b), 'CONFIG_INVALID', 'text_config.num_key_value_heads', '4');
  });

  test('Qwen2 use_sliding_window is CONFIG_UNSUPPORTED (we run full attention only)', () => {
    const cfg = siglipConfig();
    cfg.text_config.use_sliding_window = true;
    expectConfigError(() => parse(cfg), 'CONFIG_UNSUPPORTED', 'text_config.use_sliding_window');
  });

  test('an unknown select strategy is CONFIG_UNSUPPORTED naming vision_feature_select_strategy', () => {
    const cfg = clipConfig();
    cfg.vision_feature_select_strategy = 'cls_patch';
    expectConfigError(() => parse(cfg), 'CONFIG_UNSUPPORTED', 'vision_feature_select_strategy', 'cls_patch', 'full');
  });

  test('writer options round-trip into the spec (llama3 rope, attention bias, feature list, full strategy)', () => {
    const rope = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const w = tiny({ ropeScaling: rope, attentionBias: true, featureLayer: [-2, -1], strategy: 'full' });
    const ck = openCheckpoint(w.dir);
    expect(ck.spec.text.ropeScaling.type).toBe('llama3');
    expect(ck.spec.text.outputBias).toBe(true);
    expect(ck.spec.featureLayers).toEqual([2, 3]);
    expect(ck.spec.imageTokenCount).toBe(17);
    expect(ck.shape('model.multi_modal_projector.linear_1.weight')).toEqual([48, 64]);
    expect(ck.has('model.language_model.layers.0.self_attn.o_proj.bias')).toBe(true);
    ck.close();
  });
});
