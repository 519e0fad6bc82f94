/**
 * The Qwen2-VL / Qwen2.5-VL vision side against the outside reference (../shared/fixtures/qwen2*_vl-tiny,
 * numbers from transformers' math in PyTorch): the processor's pixel_values and grid, the window order, and
 * the vision graph run on onnxruntime-node (merger output within 1e-4, each full block's received attention
 * within 1e-5); then the processor's edge cases (smart_resize, video padding) and a multi-image call.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensorsDir } from '../dist/src/checkpoint/safetensors.js';
import { ConfigError, InputError } from '../dist/src/errors.js';
import { OnnxGraphBuilder } from '../dist/src/graph/onnx-builder.js';
import { loadImage } from '../dist/src/media/image.js';
import {
  loadQwenProcessorConfig,
  parseQwenProcessorConfig,
  qwenPixelValues,
  roundHalfEven,
  smartResize,
  type QwenPixels,
} from '../dist/src/families/qwen2-vl/processor.js';
import type { GridThw, QwenProcessorSpec, QwenVisionSpec } from '../dist/src/families/qwen2-vl/spec.js';
import { buildQwenVisionGraph } from '../dist/src/families/qwen2-vl/vision-graph.js';
import { fullSegments, mergedSalience, qwenVisionFeeds, windowIndex } from '../dist/src/families/qwen2-vl/vision-order.js';
import type { GraphTensor } from '../dist/src/families/family.js';
import type { WeightReader } from '../dist/src/weights/weight-reader.js';
import type { RgbImage } from '../dist/src/media/rgb-image.js';
import { FIXTURES_DIR } from './helpers/checkpoint-writer.js';
import { maxAbsDiff } from './helpers/engine.js';
import { tempDir } from './helpers/temp.js';
import { thrown } from './helpers/thrown.js';

interface Expected {
  image_grid_thw: number[][];
  resized_size_wh: number[][];
  pixel_values_shape: number[];
  pixel_values_sum: number;
  pixel_values_abs_sum: number;
  vision_embeds: number[][];
  vision_full_attention_blocks: number[];
  vision_mean_attention_full_blocks: Record<string, number[]>;
  vision_cu_seqlens: number[];
  vision_window_index?: number[];
  vision_cu_window_seqlens?: number[];
}

/** The tower's spec from a fixture's config.json (hub layout, vision_config nested); the family's config reader is tested on its own. */
function visionSpecOf(dir: string): QwenVisionSpec {
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const vc = config.vision_config;
  const is25 = config.model_type === 'qwen2_5_vl';
  const hidden = is25 ? vc.hidden_size : vc.embed_dim;
  const depth = vc.depth as number;
  const full: number[] = is25 ? vc.fullatt_block_indexes : Array.from({ length: depth }, (_, i) => i);
  return {
    version: is25 ? '2.5' : '2',
    hiddenSize: hidden,
    intermediateSize: is25 ? vc.intermediate_size : hidden * vc.mlp_ratio,
    numLayers: depth,
    numHeads: vc.num_heads,
    act: vc.hidden_act,
    inChannels: vc.in_chans,
    patchSize: vc.patch_size,
    temporalPatchSize: vc.temporal_patch_size,
    mergeSize: vc.spatial_merge_size,
    outHiddenSize: is25 ? vc.out_hidden_size : vc.hidden_size,
    windowSize: is25 ? vc.window_size : null,
    fullAttentionBlocks: full,
    salienceBlock: full[full.length - 1]!,
    tokensPerSecond: vc.tokens_per_second ?? 2,
    eps: 1e-6,
  };
}

/** The fixtures store the hub layout (`visual.*`); the graph asks for the current one (`model.visual.*`). */
function hubWeights(dir: string): WeightReader & { close(): void } {
  const store = openSafetensorsDir(dir);
  const onDisk = (name: string) => name.replace(/^model\.visual\./, 'visual.');
  return {
    has: (name) => store.has(onDisk(name)),
    read: (name, shape) => {
      const actual = store.info(onDisk(name))?.shape;
      if (shape && actual && actual.join() !== shape.join()) throw new Error(`${name}: shape [${actual}], expected [${shape}]`);
      return store.read(onDisk(name));
    },
    close: () => store.close(),
  };
}

async function buildGraph(dir: string, v: QwenVisionSpec): Promise<ort.InferenceSession> {
  const w = hubWeights(dir);
  const b = new OnnxGraphBuilder('vision', tempDir('qwen-vision'));
  try {
    buildQwenVisionGraph(b, w, v, { precision: 'fp32', blockSize: 32 });
  } finally {
    w.close();
  }
  const built = b.save();
  return ort.InferenceSession.create(built.modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

async function runVision(session: ort.InferenceSession, images: QwenPixels | QwenPixels[], v: QwenVisionSpec) {
  const { feeds, units } = qwenVisionFeeds(images, v);
  const tensors = Object.fromEntries(Object.entries(feeds).map(([k, f]: [string, GraphTensor]) => [k, new ort.Tensor(f.type, f.data, f.dims)]));
  const out = await session.run(tensors);
  const data = (name: string) => out[name]!.data as Float32Array;
  return { units, out, embeds: data('image_embeds'), received: (block: number) => data(`received_attention.${block}`), keys: data('key_metric') };
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));

describe.each(['qwen2_5_vl-tiny', 'qwen2_vl-tiny'])('%s vision side matches transformers', (name) => {
  const dir = path.join(FIXTURES_DIR, name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const v = visionSpecOf(dir);
  let spec: QwenProcessorSpec;
  let pixels: QwenPixels;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    spec = await loadQwenProcessorConfig(dir);
    pixels = qwenPixelValues([await loadImage(path.join(dir, 'image.png'))], spec);
    session = await buildGraph(dir, v);
  });
  afterAll(() => session?.release());

  it('processes the image into pixel_values of the reference shape, sums and grid', () => {
    expect([pixels.grid]).toEqual(expected.image_grid_thw);
    const rowLen = pixels.pixels.length / (pixels.grid[0] * pixels.grid[1] * pixels.grid[2]);
    expect([pixels.grid[0] * pixels.grid[1] * pixels.grid[2], rowLen]).toEqual(expected.pixel_values_shape);
    let sum = 0;
    let abs = 0;
    for (const x of pixels.pixels) {
      sum += x;
      abs += Math.abs(x);
    }
    expect(relDiff(sum, expected.pixel_values_sum)).toBeLessThan(1e-3);
    expect(relDiff(abs, expected.pixel_values_abs_sum)).toBeLessThan(1e-3);
  });

  it('orders the units window by window as get_window_index does (identity without windows)', () => {
    const { windowIndex: order, cuWindowSeqlens } = windowIndex(pixels.grid, v);
    const units = expected.vision_embeds.length;
    expect(order).toEqual(expected.vision_window_index ?? Array.from({ length: units }, (_, i) => i));
    expect(cuWindowSeqlens).toEqual(expected.vision_cu_window_seqlens ?? expected.vision_cu_seqlens);
  });

  it('gives the merger output within 1e-4 and every full block’s received attention within 1e-5, in image order', async () => {
    const r = await runVision(session, pixels, v);
    expect(r.units).toBe(expected.vision_embeds.length);
    const embedErr = maxAbsDiff(r.embeds, expected.vision_embeds.flat());
    expect(embedErr).toBeLessThan(1e-4);
    expect(v.fullAttentionBlocks).toEqual(expected.vision_full_attention_blocks);
    for (const block of v.fullAttentionBlocks) {
      const err = maxAbsDiff(r.received(block), expected.vision_mean_attention_full_blocks[String(block)]!);
      expect(err, `block ${block}`).toBeLessThan(1e-5);
    }
    const salience = mergedSalience(r.received(v.salienceBlock), pixels.grid, v.mergeSize);
    expect(salience.length).toBe(r.units);
    expect(salience.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(r.out['key_metric']!.dims).toEqual([r.units, v.hiddenSize / v.numHeads]);
  });
});

describe('smart_resize', () => {
  const f = 28;
  it('refuses a side below the factor with a typed error naming the image size', () => {
    const e = thrown(() => smartResize(10, 40, f, 3136, 12845056));
    expect(e).toBeInstanceOf(InputError);
    expect(e).toMatchObject({ code: 'IMAGE_SIZE', subject: '40x10' });
    expect((e as Error).message).toMatch(/40x10/);
  });

  it('refuses an aspect ratio over 200 and accepts exactly 200', () => {
    expect(thrown(() => smartResize(28, 28 * 201, f, 3136, 1e12))).toMatchObject({ code: 'IMAGE_SIZE', subject: `${28 * 201}x28` });
    expect(smartResize(28, 28 * 200, f, 28 * 28, 1e12)).toEqual({ height: 28, width: 5600 });
  });

  it('scales an image over max_pixels down to within it, both sides multiples of 28', () => {
    const maxPixels = 28 * 28 * 1280;
    const out = smartResize(3000, 4000, f, 3136, maxPixels);
    expect(out.height * out.width).toBeLessThanOrEqual(maxPixels);
    expect(out.height % f).toBe(0);
    expect(out.width % f).toBe(0);
    // floor(3000 / sqrt(12e6 / 1003520) / 28) · 28
    expect(out).toEqual({ height: 840, width: 1148 });
  });

  it('scales an image under min_pixels up', () => {
    expect(smartResize(30, 30, f, 56 * 56, 1e9)).toEqual({ height: 56, width: 56 });
  });

  it('rounds halves to even as Python does', () => {
    expect([0.5, 1.5, 2.5, 3.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 4, -2, 2, 3]);
    // 70 / 28 = 2.5 → 2 (not 3); 98 / 28 = 3.5 → 4
    expect(smartResize(70, 98, f, 28 * 28, 1e9)).toEqual({ height: 56, width: 112 });
  });
});

describe('the Qwen processor config', () => {
  it('reads size {shortest_edge, longest_edge}, lets min_pixels / max_pixels win, and defaults as Qwen2VLImageProcessor', () => {
    expect(parseQwenProcessorConfig({ size: { shortest_edge: 100, longest_edge: 2000 } })).toMatchObject({ minPixels: 100, maxPixels: 2000 });
    expect(parseQwenProcessorConfig({ min_pixels: 5, max_pixels: 6, size: { shortest_edge: 100, longest_edge: 2000 } })).toMatchObject({
      minPixels: 5,
      maxPixels: 6,
    });
    expect(parseQwenProcessorConfig({})).toMatchObject({
      minPixels: 3136,
      maxPixels: 1003520,
      patchSize: 14,
      temporalPatchSize: 2,
      mergeSize: 2,
      doResize: true,
    });
  });

  it('refuses bad values with a ConfigError naming the file and field', () => {
    expect(thrown(() => parseQwenProcessorConfig({ patch_size: 0 }, 'p.json'))).toMatchObject({ code: 'CONFIG_INVALID', subject: 'p.json#patch_size' });
    expect(thrown(() => parseQwenProcessorConfig({ min_pixels: 10, max_pixels: 5 }, 'p.json'))).toMatchObject({ subject: 'p.json#min_pixels' });
    expect(thrown(() => parseQwenProcessorConfig({ image_std: [1, 0, 1] }, 'p.json'))).toBeInstanceOf(ConfigError);
    expect(thrown(() => parseQwenProcessorConfig({ resample: 2 }, 'p.json'))).toMatchObject({ code: 'CONFIG_UNSUPPORTED', subject: 'p.json#resample' });
  });
});

/** A deterministic image with texture in every patch. */
function noise(w: number, h: number, seed: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return { width: w, height: h, data };
}

describe('Qwen video frames and multi-image calls', () => {
  const dir = path.join(FIXTURES_DIR, 'qwen2_5_vl-tiny');
  const v = visionSpecOf(dir);
  let spec: QwenProcessorSpec;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    spec = await loadQwenProcessorConfig(dir);
    session = await buildGraph(dir, v);
  });
  afterAll(() => session?.release());

  it('pads a 3-frame video to 4 by repeating the last frame (grid t = 2) and splits full attention by temporal slice', () => {
    const frames = [noise(56, 56, 1), noise(56, 56, 2), noise(56, 56, 3)];
    const { pixels, grid } = qwenPixelValues(frames, spec);
    expect(grid).toEqual([2, 4, 4]);
    // Row layout (C, tp, p, p): in the second temporal slice both tp halves are frame 3.
    const rowLen = 3 * 2 * 14 * 14;
    const half = 14 * 14;
    const row = pixels.subarray(16 * rowLen, 17 * rowLen);
    for (let c = 0; c < 3; c++) expect(row.subarray(2 * c * half, (2 * c + 1) * half)).toEqual(row.subarray((2 * c + 1) * half, (2 * c + 2) * half));
    const first = pixels.subarray(0, rowLen);
    expect(first.subarray(0, half)).not.toEqual(first.subarray(half, 2 * half));
    const seg = fullSegments(grid);
    expect([...seg]).toEqual([...Array(16).fill(0), ...Array(16).fill(1)]);
    const { cuWindowSeqlens } = windowIndex(grid, v);
    expect(cuWindowSeqlens).toEqual([0, 16, 32]);
  });

  it('runs a video with full attention split by temporal slice: each slice’s received attention sums to 1', async () => {
    const video = qwenPixelValues([noise(56, 56, 1), noise(56, 56, 2), noise(56, 56, 3)], spec);
    const r = await runVision(session, video, v);
    expect(r.units).toBe(8);
    for (const block of v.fullAttentionBlocks) {
      const received = r.received(block);
      const slice = (t: number) => received.subarray(16 * t, 16 * (t + 1)).reduce((a, b) => a + b, 0);
      expect(slice(0), `block ${block}`).toBeCloseTo(1, 5);
      expect(slice(1), `block ${block}`).toBeCloseTo(1, 5);
    }
  });

  it('resizes an image over max_pixels before patching', () => {
    const small = { ...spec, maxPixels: 56 * 84 };
    const { grid } = qwenPixelValues([noise(300, 200, 4)], small);
    expect(grid[1] * grid[2] * 14 * 14).toBeLessThanOrEqual(small.maxPixels);
    expect(grid).toEqual([1, 4, 6]);
  });

  it('gives two images of different grids in one call the embeds and attention of two separate calls', async () => {
    const a = qwenPixelValues([noise(112, 84, 5)], spec);
    const b = qwenPixelValues([noise(56, 140, 6)], spec);
    expect(a.grid).not.toEqual(b.grid);
    const ra = await runVision(session, a, v);
    const rb = await runVision(session, b, v);
    const both = await runVision(session, [a, b], v);
    expect(both.units).toBe(ra.units + rb.units);
    expect(maxAbsDiff(both.embeds, [...ra.embeds, ...rb.embeds])).toBeLessThan(1e-5);
    for (const block of v.fullAttentionBlocks) {
      expect(maxAbsDiff(both.received(block), [...ra.received(block), ...rb.received(block)]), `block ${block}`).toBeLessThan(1e-6);
    }
    expect(maxAbsDiff(both.keys, [...ra.keys, ...rb.keys])).toBeLessThan(1e-5);
    const grids: GridThw[] = [a.grid, b.grid];
    expect(mergedSalience(both.received(v.salienceBlock), grids, v.mergeSize).reduce((x, y) => x + y, 0)).toBeCloseTo(2, 5);
  });
});
