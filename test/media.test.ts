import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '../src/errors.js';
import {
  centerCrop,
  loadImage,
  loadPreprocessorConfig,
  parsePreprocessorConfig,
  preprocessImage,
  resizeOutputSize,
  resizeRgb,
  type RgbImage,
} from '../src/media/index.js';

const FIXTURES = '/work/shared/fixtures';
const CLIP_DIR = path.join(FIXTURES, 'llava-clip-llama-tiny');
const SIGLIP_DIR = path.join(FIXTURES, 'llava-siglip-qwen2-tiny');

// ---------------------------------------------------------------------------------------------------------
// Independent reference: Pillow's 8-bit resampler (libImaging/Resample.c: precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc) with its bicubic filter (a = -0.5),
// support 2 × max(scale, 1), 22-bit fixed-point weights, horizontal pass then vertical pass, uint8 in
// between. Written from Pillow's C source; pinned to real Pillow 9.4 output by the golden test below (and
// checked bit-exact against Pillow on 640x480→298x224, 97x61→44x28, 20x15→32x32, 300x200→32x32 offline).
// ---------------------------------------------------------------------------------------------------------
function pilBicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}
const PRECISION_BITS = 22;
function pilCoeffs(inSize: number, outSize: number): { xmin: number; k: number[] }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  return Array.from({ length: outSize }, (_, xx) => {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const w = Array.from({ length: xmax }, (_, x) => pilBicubic((x + xmin - center + 0.5) / filterScale));
    const total = w.reduce((s, v) => s + v, 0);
    const k = w.map((v) => (total !== 0 ? v / total : v)).map((v) => Math.trunc((v < 0 ? -0.5 : 0.5) + v * 2 ** PRECISION_BITS));
    return { xmin, k };
  });
}
const clip8 = (acc: number) => Math.min(255, Math.max(0, Math.floor(acc / 2 ** PRECISION_BITS)));
function pilResize(img: RgbImage, ow: number, oh: number): RgbImage {
  let { data, width: w } = img;
  const h = img.height;
  if (ow !== w) {
    const cs = pilCoeffs(w, ow);
    const out = new Uint8Array(ow * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < ow; x++)
        for (let c = 0; c < 3; c++) {
          const { xmin, k } = cs[x]!;
          let acc = 2 ** (PRECISION_BITS - 1);
          for (let i = 0; i < k.length; i++) acc += data[(y * w + xmin + i) * 3 + c]! * k[i]!;
          out[(y * ow + x) * 3 + c] = clip8(acc);
        }
    data = out;
    w = ow;
  }
  if (oh !== h) {
    const cs = pilCoeffs(h, oh);
    const out = new Uint8Array(w * oh * 3);
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) {
          const { xmin, k } = cs[y]!;
          let acc = 2 ** (PRECISION_BITS - 1);
          for (let i = 0; i < k.length; i++) acc += data[((xmin + i) * w + x) * 3 + c]! * k[i]!;
          out[(y * w + x) * 3 + c] = clip8(acc);
        }
    data = out;
  }
  return { width: ow, height: oh, data };
}

/** A deterministic photo-like image: smooth shading, two hard-edged shapes, mild noise. */
function scene(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) / 65536;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const u = x / w;
      const v = y / h;
      const disc = (u - 0.35) ** 2 + (v - 0.5) ** 2 < 0.04;
      const bar = u > 0.6 && u < 0.8 && v > 0.2 && v < 0.9;
      const col = disc ? [220, 60, 40] : bar ? [30, 90, 200] : [120 + 80 * Math.sin(6 * u + 2 * v), 100 + 60 * Math.cos(5 * v), 90 + 70 * u * v];
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(col[c]! + (rnd() - 0.5) * 12)));
    }
  return { width: w, height: h, data };
}

function meanMaxDiff(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  expect(a.length).toBe(b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

/** transformers' rescale (float64 multiply, cast to float32) then normalize ((x - mean) / std in float32). */
function expectedPixel(x: number, factor: number, mean: number, std: number): number {
  return Math.fround(Math.fround(Math.fround(x * factor) - Math.fround(mean)) / Math.fround(std));
}

describe('PIL-style reference resampler (test helper)', () => {
  it('matches Pillow 9.4 Image.resize(BICUBIC) output, down and up', () => {
    const src = (w: number, h: number): RgbImage => {
      const data = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + x * y * 13) % 256;
      return { width: w, height: h, data };
    };
    // Printed by Pillow 9.4.0: np.asarray(Image.fromarray(src).resize((ow, oh), Image.BICUBIC)).flatten()
    const down = [103, 133, 148, 139, 144, 150, 140, 143, 139, 130, 123, 107, 128, 152, 120, 148, 127, 123, 137, 110, 149, 124, 121, 146, 103, 166, 152, 142, 112, 167, 137, 125, 134, 151, 120, 139];
    expect([...pilResize(src(9, 7), 4, 3).data]).toEqual(down);
    const up = pilResize(src(5, 4), 8, 6).data;
    expect([...up.slice(0, 24)]).toEqual([0, 44, 97, 7, 60, 112, 32, 85, 139, 55, 106, 173, 78, 136, 202, 100, 170, 223, 136, 197, 249, 160, 211, 255]);
    expect([...up.slice(120)]).toEqual([1, 53, 124, 32, 92, 169, 89, 158, 200, 148, 226, 60, 211, 179, 13, 255, 39, 81, 139, 70, 147, 43, 116, 187]);
  });
});

describe('fixture images (already at the model size: no resampling)', () => {
  it.each([CLIP_DIR, SIGLIP_DIR])('%s: preprocess equals (x * rescale - mean) / std exactly in float32', async (dir) => {
    const cfg = await loadPreprocessorConfig(dir);
    const file = path.join(dir, 'image.png');
    const img = await loadImage(file);
    // Decode independently of loadImage's option set.
    const { data: raw, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    expect([img.width, img.height]).toEqual([info.width, info.height]);
    expect(resizeOutputSize(cfg.resize!, img.width, img.height)).toEqual({ width: cfg.centerCrop?.width ?? info.width, height: cfg.centerCrop?.height ?? info.height });

    const px = await preprocessImage(img, cfg);
    expect(px.dims).toEqual([3, info.height, info.width]);
    const { mean, std } = cfg.normalize!;
    const plane = info.width * info.height;
    let maxVsDiv255 = 0;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < plane; p++) {
        const x = raw[p * 3 + c]!;
        expect(px.data[c * plane + p]).toBe(expectedPixel(x, 0.00392156862745098, mean[c]!, std[c]!));
        maxVsDiv255 = Math.max(maxVsDiv255, Math.abs(px.data[c * plane + p]! - Math.fround((x / 255 - mean[c]!) / std[c]!)));
      }
    // The README's (x/255 - mean)/std in float64 and rounded once differs at most by float32 rounding.
    expect(maxVsDiv255).toBeLessThan(1e-6);
  });

  it('an image already at the target size is returned as is (no resampling)', async () => {
    const img = scene(32, 32);
    expect(await resizeRgb(img, 32, 32, 'cubic')).toBe(img);
  });
});

describe('resize paths', () => {
  it('CLIP: shortest edge then center crop on a non-square image gives the crop size', async () => {
    const cfg = await loadPreprocessorConfig(CLIP_DIR);
    expect(resizeOutputSize(cfg.resize!, 97, 61)).toEqual({ width: 44, height: 28 }); // int(28 * 97 / 61) = 44
    expect(resizeOutputSize(cfg.resize!, 61, 97)).toEqual({ width: 28, height: 44 });
    const img = scene(97, 61);
    const px = await preprocessImage(img, cfg);
    expect(px.dims).toEqual([3, 28, 28]);
    expect(px.data.length).toBe(3 * 28 * 28);
    // The tensor is the center crop ((44 - 28) // 2 = 8 columns off the left) of sharp's resize.
    const resized = await resizeRgb(img, 44, 28, 'cubic');
    const cropped = centerCrop(resized, 28, 28);
    expect(cropped.data[0]).toBe(resized.data[8 * 3]);
    const { mean, std } = cfg.normalize!;
    expect(px.data[0]).toBe(expectedPixel(cropped.data[0]!, cfg.rescaleFactor!, mean[0]!, std[0]!));
  });

  it('SigLIP: resizes straight to size.height × size.width, no crop', async () => {
    const cfg = await loadPreprocessorConfig(SIGLIP_DIR);
    expect(cfg.centerCrop).toBeNull();
    const px = await preprocessImage(scene(50, 20), cfg);
    expect(px.dims).toEqual([3, 32, 32]);
  });

  it('center crop zero-pads an image smaller than the crop, as transformers does', () => {
    const img: RgbImage = { width: 20, height: 10, data: new Uint8Array(20 * 10 * 3).fill(200) };
    const out = centerCrop(img, 16, 16);
    expect([out.width, out.height]).toEqual([16, 16]);
    const row = (y: number) => [...out.data.slice(y * 16 * 3, (y + 1) * 16 * 3)];
    // padded height 16: ceil((16 - 10) / 2) = 3 zero rows on top, 3 below; width cropped from x = 2.
    expect(row(2).every((v) => v === 0)).toBe(true);
    expect(row(3).every((v) => v === 200)).toBe(true);
    expect(row(12).every((v) => v === 200)).toBe(true);
    expect(row(13).every((v) => v === 0)).toBe(true);
  });

  /**
   * sharp ('cubic' = Catmull-Rom) vs Pillow BICUBIC, in uint8 levels, measured on the scene() image:
   *   640x427→335x224  mean 0.22, max 1     (CLIP 224 from a photo-sized input)
   *   1200x900→298x224 mean 0.52, max 6     (libvips box-shrinks before large reductions)
   *   97x61→44x28      mean 0.21, max 1
   *   20x15→37x28      mean 5.3,  max 77    (upscaling: libvips' enlargement ignores the kernel and is offset
   *   100x75→448x336   mean 0.95, max 38     from Pillow's pixel-centre alignment)
   */
  it.each([
    [640, 427, 224, 0.3, 2],
    [1200, 900, 224, 0.7, 8],
    [97, 61, 28, 0.3, 2],
    [20, 15, 28, 6, 90],
    [100, 75, 336, 1.2, 50],
  ])('sharp vs Pillow bicubic on %ix%i → shortest edge %i: mean abs diff < %f levels', async (w, h, edge, meanBound, maxBound) => {
    const img = scene(w, h);
    const size = resizeOutputSize({ kind: 'shortest_edge', shortestEdge: edge }, w, h);
    const ours = await resizeRgb(img, size.width, size.height, 'cubic');
    const ref = pilResize(img, size.width, size.height);
    const { mean, max } = meanMaxDiff(ours.data, ref.data);
    console.log(`resample ${w}x${h}→${size.width}x${size.height}: mean |sharp - Pillow| = ${mean.toFixed(3)}, max = ${max}`);
    expect(mean).toBeLessThan(meanBound);
    expect(max).toBeLessThan(maxBound);
  });
});

describe('loadImage', () => {
  it('drops alpha without compositing and replicates grey, like PIL convert("RGB")', async () => {
    const rgba = await sharp(Buffer.from([10, 20, 30, 0, 200, 100, 50, 128]), { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
    expect([...(await loadImage(rgba)).data]).toEqual([10, 20, 30, 200, 100, 50]);
    const grey = await sharp(Buffer.from([7, 250]), { raw: { width: 2, height: 1, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(grey).metadata()).channels).toBe(1);
    expect([...(await loadImage(grey)).data]).toEqual([7, 7, 7, 250, 250, 250]);
  });

  it('applies EXIF orientation (transformers load_image does exif_transpose)', async () => {
    const jpg = await sharp(Buffer.alloc(8 * 4 * 3, 128), { raw: { width: 8, height: 4, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const img = await loadImage(jpg);
    expect([img.width, img.height]).toEqual([4, 8]);
  });

  it('a missing file is IMAGE_UNREADABLE naming the file', async () => {
    const file = path.join(tmpdir(), 'svila-no-such-image.png');
    await expect(loadImage(file)).rejects.toMatchObject({ name: 'InputError', code: 'IMAGE_UNREADABLE', subject: file, message: expect.stringContaining(file) });
    await expect(loadImage(file)).rejects.toBeInstanceOf(InputError);
  });

  it('a file that is not an image is IMAGE_UNREADABLE naming the file', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'svila-media-')), 'notes.png');
    await writeFile(file, 'this is text, not a PNG');
    await expect(loadImage(file)).rejects.toMatchObject({ name: 'InputError', code: 'IMAGE_UNREADABLE', subject: file, message: expect.stringContaining(file) });
    await expect(loadImage(Buffer.from('nope'))).rejects.toMatchObject({ code: 'IMAGE_UNREADABLE', subject: '<buffer>' });
  });
});

describe('preprocessor_config.json', () => {
  it('parses both fixtures', async () => {
    const clip = await loadPreprocessorConfig(CLIP_DIR);
    expect(clip).toMatchObject({ processor: 'clip', resize: { kind: 'shortest_edge', shortestEdge: 28 }, centerCrop: { height: 28, width: 28 }, resample: { pil: 3, kernel: 'cubic' } });
    const siglip = await loadPreprocessorConfig(SIGLIP_DIR);
    expect(siglip).toMatchObject({ processor: 'siglip', resize: { kind: 'exact', height: 32, width: 32 }, centerCrop: null, normalize: { mean: [0.5, 0.5, 0.5] } });
  });

  it('applies transformers defaults, int sizes and do_* flags', () => {
    const clip = parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', size: 336, crop_size: 336, do_normalize: false });
    expect(clip).toMatchObject({ resize: { kind: 'shortest_edge', shortestEdge: 336 }, centerCrop: { height: 336, width: 336 }, normalize: null, rescaleFactor: 1 / 255 });
    const siglip = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: 384, do_rescale: false });
    expect(siglip).toMatchObject({ resize: { kind: 'exact', height: 384, width: 384 }, rescaleFactor: null, normalize: { std: [0.5, 0.5, 0.5] } });
    expect(parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', do_resize: false, do_center_crop: false }).resize).toBeNull();
  });

  it('do_rescale=false keeps 0..255 values before normalizing', async () => {
    const cfg = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: { height: 1, width: 2 }, do_rescale: false, image_mean: 100, image_std: 2 });
    const px = await preprocessImage({ width: 2, height: 1, data: new Uint8Array([100, 0, 0, 110, 0, 0]) }, cfg);
    expect([...px.data.slice(0, 2)]).toEqual([0, 5]);
  });

  it('unknown and unsupported image processors are ConfigErrors naming the type', () => {
    for (const type of ['MysteryImageProcessor', 'LlavaNextImageProcessor']) {
      let err: unknown;
      try {
        parsePreprocessorConfig({ image_processor_type: type });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).toMatchObject({ code: 'CONFIG_UNSUPPORTED', subject: type, message: expect.stringContaining(type) });
    }
    expect(() => parsePreprocessorConfig({ image_processor_type: 'LlavaNextImageProcessor' })).toThrow(/tiling/);
    expect(() => parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', resample: 5 })).toThrow(/resample/);
    expect(() => parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: { shortest_edge: 3 } })).toThrow(ConfigError);
  });
});
