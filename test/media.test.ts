import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { pngHeader } from './helpers/images.js';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '../src/errors.js';
import { checkMemoryLimit, estimateTurnMemory } from '../src/runtime/memory.js';
import { parseLlavaConfig } from '../src/families/llava/config.js';
import { tempDir } from './helpers/temp.js';
import {
  centerCrop,
  imagePixelCounts,
  loadImage,
  loadPreprocessorConfig,
  parsePreprocessorConfig,
  PIL_RESAMPLE,
  pilResize,
  preprocessImage,
  resizeOutputSize,
  resizeRgb,
  type ResampleFilter,
  type RgbImage,
} from '../src/media/index.js';

const FIXTURES = '/work/shared/fixtures';
const CLIP_DIR = path.join(FIXTURES, 'llava-clip-llama-tiny');
const SIGLIP_DIR = path.join(FIXTURES, 'llava-siglip-qwen2-tiny');

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

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** transformers' rescale (float64 multiply, cast to float32) then normalize ((x - mean) / std in float32). */
function expectedPixel(x: number, factor: number, mean: number, std: number): number {
  return Math.fround(Math.fround(Math.fround(x * factor) - Math.fround(mean)) / Math.fround(std));
}

/** The integer test pattern of the golden values: every pixel distinct-ish, sharp steps between neighbours. */
function pattern(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + x * y * 13) % 256;
  return { width: w, height: h, data };
}
const hex = (data: Uint8Array) => Buffer.from(data).toString('hex');

describe('Pillow resampling port (src/media/pil-resample.ts)', () => {
  it('matches Pillow 9.4 Image.resize(BICUBIC) output, down and up', () => {
    // Printed by Pillow 9.4.0: np.asarray(Image.fromarray(src).resize((ow, oh), Image.BICUBIC)).flatten()
    const down = [
      103, 133, 148, 139, 144, 150, 140, 143, 139, 130, 123, 107, 128, 152, 120, 148, 127, 123, 137, 110, 149, 124, 121, 146, 103, 166, 152, 142, 112, 167, 137,
      125, 134, 151, 120, 139,
    ];
    expect([...pilResize(pattern(9, 7), 4, 3, 'bicubic').data]).toEqual(down);
    const up = pilResize(pattern(5, 4), 8, 6, 'bicubic').data;
    expect([...up.slice(0, 24)]).toEqual([0, 44, 97, 7, 60, 112, 32, 85, 139, 55, 106, 173, 78, 136, 202, 100, 170, 223, 136, 197, 249, 160, 211, 255]);
    expect([...up.slice(120)]).toEqual([1, 53, 124, 32, 92, 169, 89, 158, 200, 148, 226, 60, 211, 179, 13, 255, 39, 81, 139, 70, 147, 43, 116, 187]);
  });

  /**
   * Pillow 9.4.0, as hex of np.asarray(Image.fromarray(pattern).resize(size, resample)).tobytes() for
   * 9x7→4x3 (shrink), 4x3→6x5 (enlarge) and 9x4→5x7 (shrink x, enlarge y).
   */
  const GOLDEN: Record<ResampleFilter, [string, string, string]> = {
    nearest: [
      '8dc2f7f1265b558abfb9ee235d92c7f52a5f8dc2f7255a8f2d6297f92e63c5fa2f91c6fb',
      '00356a255a8f255a8f4a7fb44a7fb46fa4d900356a255a8f255a8f4a7fb44a7fb46fa4d95b90c58dc2f78dc2f7bff429bff429f1265bb6eb20f52a5ff52a5f34699e34699e73a8ddb6eb20f52a5ff52a5f34699e34699e73a8dd',
      '00356a4a7fb494c9fede1348285d9200356a4a7fb494c9fede1348285d925b90c5bff42923588d87bcf1eb20555b90c5bff42923588d87bcf1eb2055b6eb2034699eb2e71c30659aaee31811467ba9de134176abd90e4371a6db11467ba9de134176abd90e4371a6db',
    ],
    lanczos: [
      '6681938c93978d8f8c817c68849d77977f77866b977f7b9460a79a8e70a98c7a8694758c',
      '002d5a083965234e8a3364bb4e98e15fbbec1445942162b3489bba74b6819a9088a866a8588dbb6e9df197d7e0b5ff40de872ff4126599e359c99d81d3649978996c829084b26aacb1ff08f18b1fe4025c3a3b9e2d98db6dc1f2',
      '0835653c7ad8a8f3cabc4f230036902069a281929c81a5bba08863564a6d60b1ddd2aa565b449475c7bfd07a41c4b48a9e8d858b6b586799c3d1be4aca87365e6fb4beb6557c479079c87e64787199846c9c9394924a875793a11776aed09a2f786bc49f5e8b5169ae',
    ],
    bilinear: [
      '6b88938a8c958b8d89837c6e7a957c947e808974947c778f6da2968e74a3897f8696788b',
      '00356a13487d2b60954479ae5d92c76fa4d924598e3a6fa4558aaf72a7868e9092a372a75b90c574a9de95cad5b7ec4bd88d42f1265b92c762af977fbb71957c9776898b8ca574a9b6eb20d68b40d5356a545e935489be73a8dd',
      '154a7f4f84b994c9c2a95e4325487d386d9c79929981a1af9b7d6e615d6b71a6c9bda76563609184b0b2c27f4fa09e8a998e838982737d8aa7aca160be8d4a7174a0aea75e7b5c9186ba786e7c779a8a6d90898d92588d6a939b3c7194b3984d7d76aba0558a587bb0',
    ],
    bicubic: [
      '6785948b90968c8f8b827b6b809878947f7b896e957c799267a6988e70a7897d8697788b',
      '002c61083d7123588f3b6fb65796d567b1e41b4e8f2c67a84d8eb571ad83929190a56ea9588dc270a5e995cde1b7fa3fdc8a37f4185e96d75abc997ccb6597749971838c8ba972adb9ff0fe78a2de719614050993f8ece6eb7eb',
      '083d724682c99edfc9b857300a3e872a679d7a929d83a8b6a1806655536c6aacdaccaa585c50917bbdbfcf7d42b0a88a9b8d838a7968728fb4beae53cc8c3a6471adb8ae577a519083c7796578779d8968948b9394518b5f95a0256fa2c39a3c7a72b8a355894e75b5',
    ],
    box: [
      '4479ae86909a9d928774695e8d9777837f7c89689d76808b6ba095906fa48a7f74a3988d',
      '00356a255a8f255a8f4a7fb46fa4d96fa4d900356a255a8f255a8f4a7fb46fa4d96fa4d95b90c58dc2f78dc2f7bff429f1265bf1265bb6eb20f52a5ff52a5f34699e73a8dd73a8ddb6eb20f52a5ff52a5f34699e73a8dd73a8dd',
      '13487d5d92c794c9fecc8136164b8013487d5d92c794c9fecc8136164b8074a9ded88d4223588d6ea3d8d2873cd68b405489beb2e71c91467b8fc479d68b405489beb2e71c91467b8fc479376ca1cf84394176abb3689d4b80b5376ca1cf84394176abb3689d4b80b5',
    ],
    hamming: [
      '6186a19386918a928d827a64778e7f987a7e8e729b7078936ea3959672a68a8b7e9b8390',
      '00356a13487d265b90497eb35d92c76fa4d9194e832e63984378ab6a9f8e7f91a29381b65b90c574a9de8ec3f1bef32fd88d42f1265b9dd24ebb936cd456895f8e7d798a9b9684b9b6eb20d68b40ef2c613a679c5489be73a8dd',
      '11467b5287bc94c9d2c155401a4c81255a8e6a90a586b2c4b3685e40567471a6d8c8b44a4f598d7db1d0d37b41a19f8b90957a818a6b7585afb3a157cf963d5776aab2bb496e588d92c76e537188a49b4f7b8497a64b805e92aa33689bb8a4386d76abb4487d5184b9',
    ],
  };
  it.each(Object.keys(GOLDEN) as ResampleFilter[])('%s matches Pillow 9.4 on a shrink, an enlarge and a mixed resize', (filter) => {
    const [down, up, mixed] = GOLDEN[filter];
    expect(hex(pilResize(pattern(9, 7), 4, 3, filter).data)).toBe(down);
    expect(hex(pilResize(pattern(4, 3), 6, 5, filter).data)).toBe(up);
    expect(hex(pilResize(pattern(9, 4), 5, 7, filter).data)).toBe(mixed);
  });

  it('resample codes are PIL.Image.Resampling values', () => {
    // PIL: NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5.
    expect(PIL_RESAMPLE).toEqual({ 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' });
  });

  it('same size returns an unchanged copy; 1x1 and single-axis resizes work', () => {
    const img = pattern(5, 4);
    const same = pilResize(img, 5, 4, 'bicubic');
    expect(same.data).not.toBe(img.data);
    expect(same.data).toEqual(img.data);
    expect([...pilResize({ width: 1, height: 1, data: new Uint8Array([9, 99, 199]) }, 3, 2, 'lanczos').data]).toEqual([
      9, 99, 199, 9, 99, 199, 9, 99, 199, 9, 99, 199, 9, 99, 199, 9, 99, 199,
    ]);
    expect(pilResize(img, 9, 4, 'bicubic').data.length).toBe(9 * 4 * 3);
    expect(pilResize(img, 5, 9, 'bicubic').data.length).toBe(5 * 9 * 3);
    expect(() => pilResize(img, 0, 4, 'bicubic')).toThrow(RangeError);
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
    expect(resizeOutputSize(cfg.resize!, img.width, img.height)).toEqual({
      width: cfg.centerCrop?.width ?? info.width,
      height: cfg.centerCrop?.height ?? info.height,
    });

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
    expect(resizeRgb(img, 32, 32, 'bicubic')).toBe(img);
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
    // The tensor is the center crop ((44 - 28) // 2 = 8 columns off the left) of Pillow's bicubic resize.
    const resized = resizeRgb(img, 44, 28, 'bicubic');
    expect(sha256(resized.data)).toBe('9e650ef236c8d18ba3f6d27179ed90269de555e714fbbe7ca1f0a4a885b88cc2'); // Pillow 9.4
    const cropped = centerCrop(resized, 28, 28);
    expect(cropped.data[0]).toBe(resized.data[8 * 3]);
    const { mean, std } = cfg.normalize!;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 28 * 28; p++) expect(px.data[c * 784 + p]).toBe(expectedPixel(cropped.data[p * 3 + c]!, cfg.rescaleFactor!, mean[c]!, std[c]!));
  });

  it('SigLIP: resizes straight to size.height × size.width, no crop', async () => {
    const cfg = await loadPreprocessorConfig(SIGLIP_DIR);
    expect(cfg.centerCrop).toBeNull();
    const img = scene(50, 20);
    const px = await preprocessImage(img, cfg);
    expect(px.dims).toEqual([3, 32, 32]);
    const resized = resizeRgb(img, 32, 32, 'bicubic');
    expect(sha256(resized.data)).toBe('3a1c604d6fadb5b1800d73c90a412279e53fb5e5ace305d3ab4b4646b085876b'); // Pillow 9.4
    const { mean, std } = cfg.normalize!;
    expect(px.data[32 * 32 + 5]).toBe(expectedPixel(resized.data[5 * 3 + 1]!, cfg.rescaleFactor!, mean[1]!, std[1]!));
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
   * Pillow 9.4.0 on the scene() image: sha256 of np.asarray(Image.fromarray(scene).resize((w, h), resample))
   * .tobytes(), its first 12 values and mean. Sharp's cubic, used before, was off from these by 0.2–0.5 levels
   * (mean) when shrinking and by 5.3 mean / 77 max when enlarging 20x15→37x28.
   */
  it.each([
    [
      20,
      15,
      37,
      28,
      'bicubic',
      'd13923edf7482fdc8f0c9d6a14a98218bcaa78c4d6ccde3aeaf33637c9e1c97d',
      [121, 155, 85, 128, 158, 86, 141, 163, 89, 150, 161, 91],
      108.4965,
    ],
    [
      100,
      75,
      448,
      336,
      'bicubic',
      'a908a0d65dca20f8e93858a32a9e3228570713dd869aff4e27276fdbebecd708',
      [124, 155, 84, 124, 156, 85, 124, 156, 85, 124, 158, 86],
      109.4126,
    ],
    [
      640,
      427,
      335,
      224,
      'bicubic',
      'bdb1a8c0ac471e2ad47d4402ddf529f219c8f4ce4beb676fbddf65d188832cd9',
      [121, 158, 89, 119, 160, 91, 124, 159, 93, 126, 157, 91],
      109.6087,
    ],
    [
      1200,
      900,
      298,
      224,
      'bicubic',
      'c8841122b3ee81bd8ee27c68f2a7eb1bf5cc2ef14d44e9b6b09e0866c5aa836b',
      [121, 161, 90, 121, 160, 90, 124, 161, 89, 126, 160, 90],
      109.6164,
    ],
    [
      20,
      15,
      37,
      28,
      'bilinear',
      'e81ce9f37ba6cc4422a2c02e3291df674f81d9873c98034bbf3b0eec8479512b',
      [124, 156, 85, 131, 158, 87, 142, 162, 89, 151, 160, 90],
      108.4765,
    ],
    [
      640,
      427,
      335,
      224,
      'bilinear',
      '2e3fb8095d5c482d5ee7c34366f0b270c91c0b7c9444a9cca20e69d1886abd7b',
      [121, 159, 90, 120, 160, 91, 124, 159, 93, 125, 158, 91],
      109.6085,
    ],
  ] as const)('resizeRgb %ix%i → %ix%i %s is bit-identical to Pillow', (w, h, ow, oh, filter, digest, head, mean) => {
    const out = resizeRgb(scene(w, h), ow, oh, filter);
    expect([out.width, out.height]).toEqual([ow, oh]);
    expect([...out.data.slice(0, 12)]).toEqual(head);
    expect(out.data.reduce((s, v) => s + v, 0) / out.data.length).toBeCloseTo(mean, 3);
    expect(sha256(out.data)).toBe(digest);
  });
});

describe('loadImage', () => {
  it('drops alpha without compositing and replicates grey, like PIL convert("RGB")', async () => {
    const rgba = await sharp(Buffer.from([10, 20, 30, 0, 200, 100, 50, 128]), { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    expect([...(await loadImage(rgba)).data]).toEqual([10, 20, 30, 200, 100, 50]);
    const grey = await sharp(Buffer.from([7, 250]), { raw: { width: 2, height: 1, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    expect((await sharp(grey).metadata()).channels).toBe(1);
    expect([...(await loadImage(grey)).data]).toEqual([7, 7, 7, 250, 250, 250]);
  });

  it('applies EXIF orientation (transformers load_image does exif_transpose)', async () => {
    const jpg = await sharp(Buffer.alloc(8 * 4 * 3, 128), { raw: { width: 8, height: 4, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const img = await loadImage(jpg);
    expect([img.width, img.height]).toEqual([4, 8]);
  });

  it('a missing file is IMAGE_UNREADABLE naming the file', async () => {
    const file = path.join(tempDir('media'), 'no-such-image.png');
    await expect(loadImage(file)).rejects.toMatchObject({
      name: 'InputError',
      code: 'IMAGE_UNREADABLE',
      subject: file,
      message: expect.stringContaining(file),
    });
    await expect(loadImage(file)).rejects.toBeInstanceOf(InputError);
  });

  it('a file that is not an image is IMAGE_UNREADABLE naming the file', async () => {
    const file = path.join(tempDir('media'), 'notes.png');
    await writeFile(file, 'this is text, not a PNG');
    await expect(loadImage(file)).rejects.toMatchObject({
      name: 'InputError',
      code: 'IMAGE_UNREADABLE',
      subject: file,
      message: expect.stringContaining(file),
    });
    await expect(loadImage(Buffer.from('nope'))).rejects.toMatchObject({ code: 'IMAGE_UNREADABLE', subject: '<buffer>' });
  });
});

describe('preprocessor_config.json', () => {
  it('parses both fixtures', async () => {
    const clip = await loadPreprocessorConfig(CLIP_DIR);
    expect(clip).toMatchObject({
      processor: 'clip',
      resize: { kind: 'shortest_edge', shortestEdge: 28 },
      centerCrop: { height: 28, width: 28 },
      resample: { pil: 3, filter: 'bicubic' },
    });
    const siglip = await loadPreprocessorConfig(SIGLIP_DIR);
    expect(siglip).toMatchObject({
      processor: 'siglip',
      resize: { kind: 'exact', height: 32, width: 32 },
      centerCrop: null,
      normalize: { mean: [0.5, 0.5, 0.5] },
    });
  });

  it('applies transformers defaults, int sizes and do_* flags', () => {
    const clip = parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', size: 336, crop_size: 336, do_normalize: false });
    expect(clip).toMatchObject({
      resize: { kind: 'shortest_edge', shortestEdge: 336 },
      centerCrop: { height: 336, width: 336 },
      normalize: null,
      rescaleFactor: 1 / 255,
    });
    const siglip = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: 384, do_rescale: false });
    expect(siglip).toMatchObject({ resize: { kind: 'exact', height: 384, width: 384 }, rescaleFactor: null, normalize: { std: [0.5, 0.5, 0.5] } });
    expect(parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', do_resize: false, do_center_crop: false }).resize).toBeNull();
    expect(parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor' }).resample).toEqual({ pil: 3, filter: 'bicubic' });
    expect(parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', resample: 2 }).resample).toEqual({ pil: 2, filter: 'bilinear' });
    expect(parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', resample: 1 }).resample).toEqual({ pil: 1, filter: 'lanczos' });
  });

  it('do_rescale=false keeps 0..255 values before normalizing', async () => {
    const cfg = parsePreprocessorConfig({
      image_processor_type: 'SiglipImageProcessor',
      size: { height: 1, width: 2 },
      do_rescale: false,
      image_mean: 100,
      image_std: 2,
    });
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
    expect(() => parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', resample: 6 })).toThrow(/resample/);
    expect(() => parsePreprocessorConfig({ image_processor_type: 'CLIPImageProcessor', resample: 'bicubic' })).toThrow(/resample/);
    expect(() => parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: { shortest_edge: 3 } })).toThrow(ConfigError);
  });
});

describe('image size before decoding', () => {
  it("an image over the pixel limit is refused from its header, naming the file; the default is PIL's decompression-bomb bound", async () => {
    const dir = tempDir('media');
    const bomb = path.join(dir, 'bomb.png');
    await writeFile(bomb, pngHeader(16000, 16000));
    const refused = { name: 'InputError', code: 'MEMORY_LIMIT', subject: bomb, message: expect.stringContaining('16000×16000') };
    await expect(loadImage(bomb)).rejects.toMatchObject(refused);
    await expect(imagePixelCounts([bomb])).rejects.toMatchObject(refused);
    const small = path.join(dir, 'small.png');
    await sharp(Buffer.alloc(100 * 50 * 3, 9), { raw: { width: 100, height: 50, channels: 3 } })
      .png()
      .toFile(small);
    expect(await imagePixelCounts([small, small])).toEqual([5000, 5000]);
    expect((await loadImage(small, { maxPixels: 5000 })).width).toBe(100);
    await expect(loadImage(small, { maxPixels: 4999 })).rejects.toMatchObject({ code: 'MEMORY_LIMIT', subject: small });
    await expect(loadImage(small, { maxPixels: 0 })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'maxPixels' });
  });

  it("counts a vision batch's decoded pixels toward the turn's memory estimate: three 16000×16000 images do not fit in 256 MiB", async () => {
    const spec = parseLlavaConfig(JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(path.join(SIGLIP_DIR, 'config.json'), 'utf8'))), SIGLIP_DIR);
    const base = { cachedRows: 0, promptTokens: 10, maxNewTokens: 8, chunk: 512, frames: 3, visionBatch: 2, viewRows: 0, twinRows: 0 };
    const big = 16000 * 16000;
    const e = estimateTurnMemory(spec, { ...base, imagePixels: [big, big, big] });
    // Two images decoded at once (the vision batch), 6 bytes each pixel.
    expect(e.parts.imageDecode).toBe(2 * big * 6);
    expect(() => checkMemoryLimit(e, 256 * 2 ** 20, '3 image(s)')).toThrow(
      expect.objectContaining({ code: 'MEMORY_LIMIT', message: expect.stringContaining('decoded images') }),
    );
    expect(estimateTurnMemory(spec, base).parts.imageDecode).toBe(0);
  });
});
