import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { CheckpointError, SparseVilaError, type ErrorCode } from '../src/errors.js';
import { decodeToFloat32, openSafetensors, type LlavaSpec } from '../src/checkpoint/index.js';
import { openCheckpoint } from '../src/families/index.js';
import { CLIP_FIXTURE, SIGLIP_FIXTURE, corruptSafetensors, writeSafetensors, writeTinyLlava, type TinyLlavaOptions } from './helpers/checkpoint-writer.js';
import { thrown } from './helpers/thrown.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-ckpt-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let counter = 0;
const tmp = (): string => path.join(tmpRoot, `c${counter++}`);
const tiny = (o: TinyLlavaOptions = {}) => writeTinyLlava(tmp(), o);

/** Run fn, assert it throws `cls` with `code`, and that message and subject name each of `mentions`. */
export function expectError(fn: () => unknown, cls: typeof SparseVilaError, code: ErrorCode, ...mentions: string[]): SparseVilaError {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(cls);
  const err = caught as SparseVilaError;
  expect(err.code).toBe(code);
  expect(err.subject).toBeTruthy();
  for (const m of mentions) expect(err.message).toContain(m);
  return err;
}

/** Independent of src/: parse a safetensors file whole and return a tensor's raw F32 values. */
function rawF32(file: string, key: string): { shape: number[]; values: Float32Array } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const entry = JSON.parse(buf.subarray(8, 8 + n).toString())[key];
  const [b, e] = entry.data_offsets as [number, number];
  const bytes = Uint8Array.prototype.slice.call(buf, 8 + n + b, 8 + n + e);
  return { shape: entry.shape, values: new Float32Array(bytes.buffer) };
}

describe('fixtures', () => {
  test('CLIP+LLaMA fixture (legacy layout) reads every canonical tensor bit-exactly and gives the full spec', () => {
    const ck = openCheckpoint(CLIP_FIXTURE);
    expect(ck.layout).toBe('legacy');
    const file = path.join(CLIP_FIXTURE, 'model.safetensors');
    const pairs: Array<[string, string]> = [
      ['model.vision_tower.vision_model.embeddings.class_embedding', 'vision_tower.vision_model.embeddings.class_embedding'],
      ['model.vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight', 'vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight'],
      ['model.multi_modal_projector.linear_1.weight', 'multi_modal_projector.linear_1.weight'],
      ['model.language_model.layers.1.self_attn.k_proj.weight', 'language_model.model.layers.1.self_attn.k_proj.weight'],
      ['model.language_model.norm.weight', 'language_model.model.norm.weight'],
      ['lm_head.weight', 'language_model.lm_head.weight'],
    ];
    for (const [canonical, onDisk] of pairs) {
      const ref = rawF32(file, onDisk);
      expect(ck.shape(canonical)).toEqual(ref.shape);
      expect(ck.read(canonical, ref.shape)).toEqual(ref.values);
    }
    expect(ck.shape('model.language_model.embed_tokens.weight')).toEqual([260, 48]);
    expect(ck.has('lm_head.weight')).toBe(true);
    const spec: LlavaSpec = {
      family: 'llava',
      architecture: 'LlavaForConditionalGeneration',
      vision: {
        kind: 'clip',
        hiddenSize: 32,
        intermediateSize: 64,
        numLayers: 3,
        numHeads: 4,
        imageSize: 28,
        patchSize: 7,
        numChannels: 3,
        act: 'quick_gelu',
        layerNormEps: 1e-5,
        gridSize: 4,
        numPositions: 17,
      },
      text: {
        kind: 'llama',
        hiddenSize: 48,
        intermediateSize: 96,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 12,
        vocabSize: 260,
        rmsNormEps: 1e-5,
        ropeTheta: 10000,
        ropeScaling: { type: 'default' },
        maxPositionEmbeddings: 4096,
        attentionBias: false,
        outputBias: false,
        mlpBias: false,
        tieWordEmbeddings: false,
        act: 'silu',
      },
      projector: { act: 'gelu', bias: true, inputSize: 32, outputSize: 48 },
      featureLayers: [2],
      selectStrategy: 'default',
      imageTokenId: 259,
      imageTokenCount: 16,
    };
    expect(ck.spec).toEqual(spec);
    const expected = JSON.parse(fs.readFileSync(path.join(CLIP_FIXTURE, 'expected.json'), 'utf8'));
    expect(ck.spec.imageTokenCount).toBe(expected.image_token_count);
    ck.close();
  });

  test('SigLIP+Qwen2 fixture (current layout, tied) reads bit-exactly, has no lm_head, and gives the full spec', () => {
    const ck = openCheckpoint(SIGLIP_FIXTURE);
    expect(ck.layout).toBe('current');
    const file = path.join(SIGLIP_FIXTURE, 'model.safetensors');
    for (const name of [
      'model.vision_tower.vision_model.embeddings.patch_embedding.bias',
      'model.vision_tower.vision_model.embeddings.position_embedding.weight',
      'model.language_model.layers.0.self_attn.q_proj.bias',
      'model.language_model.embed_tokens.weight',
    ]) {
      const ref = rawF32(file, name);
      expect(ck.read(name, ref.shape)).toEqual(ref.values);
    }
    expect(ck.has('lm_head.weight')).toBe(false);
    expect(ck.has('model.vision_tower.vision_model.pre_layrnorm.weight')).toBe(false);
    const spec: LlavaSpec = {
      family: 'llava',
      architecture: 'LlavaForConditionalGeneration',
      vision: {
        kind: 'siglip',
        hiddenSize: 32,
        intermediateSize: 64,
        numLayers: 2,
        numHeads: 4,
        imageSize: 32,
        patchSize: 8,
        numChannels: 3,
        act: 'gelu_pytorch_tanh',
        layerNormEps: 1e-6,
        gridSize: 4,
        numPositions: 16,
      },
      text: {
        kind: 'qwen2',
        hiddenSize: 64,
        intermediateSize: 128,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 16,
        vocabSize: 260,
        rmsNormEps: 1e-6,
        ropeTheta: 1e6,
        ropeScaling: { type: 'default' },
        maxPositionEmbeddings: 4096,
        attentionBias: true,
        outputBias: false,
        mlpBias: false,
        tieWordEmbeddings: true,
        act: 'silu',
      },
      projector: { act: 'gelu', bias: true, inputSize: 32, outputSize: 64 },
      featureLayers: [2],
      selectStrategy: 'full',
      imageTokenId: 259,
      imageTokenCount: 16,
    };
    expect(ck.spec).toEqual(spec);
    ck.close();
  });
});

describe('layouts, shards, dtypes', () => {
  test('legacy and current layouts of the same weights read identically under canonical names', () => {
    const a = tiny({ layout: 'legacy', seed: 7 });
    const b = tiny({ layout: 'current', seed: 7 });
    const ca = openCheckpoint(a.dir);
    const cb = openCheckpoint(b.dir);
    expect([ca.layout, cb.layout]).toEqual(['legacy', 'current']);
    for (const [name, t] of a.tensors) {
      expect(ca.read(name, t.shape)).toEqual(t.values);
      expect(cb.read(name, t.shape)).toEqual(t.values);
    }
    ca.close();
    cb.close();
  });

  test('a sharded checkpoint (index + 3 shards) reads every tensor like the single-file one', () => {
    const w = tiny({ vision: 'siglip', text: 'llama', shards: 3, seed: 3 });
    expect(w.files.map((f) => path.basename(f))).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    const ck = openCheckpoint(w.dir);
    for (const [name, t] of w.tensors) expect(ck.read(name, t.shape)).toEqual(t.values);
    ck.close();
  });

  test('F16 and BF16 bit patterns decode to their exact float values', () => {
    const dir = tmp();
    fs.mkdirSync(dir);
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0x8000, 0x3555, 0xfc00];
    const f16Want = [1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -0, 0.333251953125, -Infinity];
    const bf16 = [0x3f80, 0xc040, 0x4049, 0x7f80, 0x0001, 0x8000, 0x3e80];
    const bf16Want = [1, -3, 3.140625, Infinity, 2 ** -133, -0, 0.25];
    const raw = (bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);
    const file = path.join(dir, 'd.safetensors');
    writeSafetensors(file, [
      { name: 'h', dtype: 'F16', shape: [f16.length], raw: raw(f16) },
      { name: 'b', dtype: 'BF16', shape: [bf16.length], raw: raw(bf16) },
      { name: 'nan', dtype: 'F16', shape: [1], raw: raw([0x7e00]) },
    ]);
    const st = openSafetensors(file);
    expect(Array.from(st.read('h'))).toEqual(f16Want);
    expect(Array.from(st.read('b'))).toEqual(bf16Want);
    expect(Number.isNaN(st.read('nan')[0])).toBe(true);
    st.close();
  });

  test('decodeToFloat32 decodes F16/BF16 words from an unaligned byte offset', () => {
    const bytes = new Uint8Array([0xff, 0x00, 0x3c, 0x80, 0x3f]);
    expect(Array.from(decodeToFloat32('F16', bytes.subarray(1, 3), 1))).toEqual([1]);
    expect(Array.from(decodeToFloat32('BF16', bytes.subarray(3, 5), 1))).toEqual([1]);
  });

  test.each(['F16', 'BF16'] as const)('a %s checkpoint decodes to the values it was written with', (dtype) => {
    const w = tiny({ dtype, seed: 11 });
    const ck = openCheckpoint(w.dir);
    for (const [name, t] of w.tensors) expect(ck.read(name)).toEqual(t.values);
    ck.close();
  });

  test('reads are lazy: data changed on disk after opening is what read() returns', () => {
    const w = tiny({ seed: 5 });
    const ck = openCheckpoint(w.dir);
    const name = 'model.language_model.norm.weight';
    const file = w.files[0]!;
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const [begin] = JSON.parse(buf.subarray(8, 8 + n).toString())[w.tensors.get(name)!.key].data_offsets;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, new Uint8Array(new Float32Array([42]).buffer), 0, 4, 8 + n + begin);
    fs.closeSync(fd);
    expect(ck.read(name)[0]).toBe(42);
    ck.close();
  });
});

describe('fingerprint', () => {
  test('fingerprint is stable across opens and changes with config.json and with tensor data', () => {
    const w = tiny({ seed: 9 });
    const fp = openCheckpoint(w.dir).fingerprint;
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(openCheckpoint(w.dir).fingerprint).toBe(fp);
    // One weight byte changed in place (a retrained checkpoint keeps its names, shapes and size).
    const buf = fs.readFileSync(w.files[0]!);
    buf[buf.length - 1] ^= 0xff;
    fs.writeFileSync(w.files[0]!, buf);
    const retrained = openCheckpoint(w.dir).fingerprint;
    expect(retrained).not.toBe(fp);
    const cfg = path.join(w.dir, 'config.json');
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8') + '\n');
    expect(openCheckpoint(w.dir).fingerprint).not.toBe(retrained);
  });
  test('a weight file over 64 MiB is fingerprinted by evenly spaced blocks of its data, first and last included', () => {
    const dir = tmp();
    fs.mkdirSync(dir);
    const file = path.join(dir, 'big.safetensors');
    const bytes = 68 << 20;
    writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [bytes / 4], raw: new Uint8Array(bytes) }]);
    const sample = () => {
      const st = openSafetensors(file);
      try {
        return st.files[0]!.contentSample();
      } finally {
        st.close();
      }
    };
    const zero = sample();
    expect(zero.length).toBe(64 * (64 << 10));
    const start = fs.statSync(file).size - bytes;
    const flip = (at: number) => {
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, new Uint8Array([1]), 0, 1, at);
      fs.closeSync(fd);
    };
    flip(start);
    const first = sample();
    expect(first.equals(zero)).toBe(false);
    flip(start + bytes - 1);
    expect(sample().equals(first)).toBe(false);
  });
});

describe('typed errors', () => {
  test('a truncated safetensors file is CHECKPOINT_CORRUPT naming the file and the cut tensor', () => {
    const w = tiny();
    corruptSafetensors(w.files[0]!, 'truncate');
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_CORRUPT', w.files[0]!, 'lm_head.weight', 'truncated');
  });

  test('a header that is not JSON is CHECKPOINT_CORRUPT naming the file', () => {
    const w = tiny();
    corruptSafetensors(w.files[0]!, 'bad-json');
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_CORRUPT', w.files[0]!, 'not valid JSON');
  });

  test('a header length beyond the file size is CHECKPOINT_CORRUPT naming the file', () => {
    const w = tiny();
    corruptSafetensors(w.files[0]!, 'header-too-long');
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_CORRUPT', w.files[0]!, 'header length');
  });

  test('data_offsets inconsistent with dtype and shape are CHECKPOINT_CORRUPT naming the tensor', () => {
    const w = tiny();
    corruptSafetensors(w.files[0]!, 'bad-offsets');
    const first = [...w.tensors.values()][0]!.key;
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_CORRUPT', w.files[0]!, first);
  });

  test('a folder named like a weights file is CHECKPOINT_CORRUPT naming it, not an EISDIR from a read', () => {
    const w = tiny();
    const folder = path.join(w.dir, 'x.safetensors');
    fs.mkdirSync(folder);
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_CORRUPT', folder, 'folder');
    expectError(() => openSafetensors(folder), CheckpointError, 'CHECKPOINT_CORRUPT', folder);
  });

  test('an undecodable dtype is TENSOR_DTYPE naming the tensor and the dtype', () => {
    const dir = tmp();
    fs.mkdirSync(dir);
    const file = path.join(dir, 'x.safetensors');
    writeSafetensors(file, [{ name: 'position_ids', dtype: 'I64', shape: [2], raw: new Uint8Array(16) }]);
    const st = openSafetensors(file);
    expectError(() => st.read('position_ids'), CheckpointError, 'TENSOR_DTYPE', 'position_ids', 'I64');
    st.close();
  });

  test('a missing tensor is TENSOR_MISSING naming the canonical name, the on-disk names tried and the dir', () => {
    const w = tiny({ layout: 'legacy' });
    const ck = openCheckpoint(w.dir);
    const name = 'model.language_model.layers.9.mlp.up_proj.weight';
    const err = expectError(() => ck.read(name), CheckpointError, 'TENSOR_MISSING', name, 'language_model.model.layers.9.mlp.up_proj.weight', w.dir);
    expect(err.subject).toBe(name);
    expectError(() => ck.shape(name), CheckpointError, 'TENSOR_MISSING', name);
  });

  test('an untied config without lm_head on disk is TENSOR_MISSING at open', () => {
    const w = tiny({ tie: true, configPatch: { text: { tie_word_embeddings: false }, top: { tie_word_embeddings: false } } });
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'TENSOR_MISSING', 'lm_head.weight');
  });

  test('a shape different from the expected one is TENSOR_SHAPE naming the tensor and both shapes', () => {
    const w = tiny();
    const ck = openCheckpoint(w.dir);
    const name = 'model.language_model.embed_tokens.weight';
    expectError(() => ck.read(name, [260, 47]), CheckpointError, 'TENSOR_SHAPE', name, '[260, 47]', '[260, 48]');
  });

  test('a missing directory, config.json or weights is CHECKPOINT_NOT_FOUND naming the path', () => {
    const missing = path.join(tmpRoot, 'nope');
    expectError(() => openCheckpoint(missing), CheckpointError, 'CHECKPOINT_NOT_FOUND', missing);
    const w = tiny();
    fs.rmSync(w.files[0]!);
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_NOT_FOUND', w.dir);
    fs.rmSync(path.join(w.dir, 'config.json'));
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_NOT_FOUND', path.join(w.dir, 'config.json'));
  });

  test('a shard listed in the index but absent is CHECKPOINT_NOT_FOUND naming the shard', () => {
    const w = tiny({ shards: 2 });
    fs.rmSync(w.files[1]!);
    expectError(() => openCheckpoint(w.dir), CheckpointError, 'CHECKPOINT_NOT_FOUND', w.files[1]!);
  });
});
