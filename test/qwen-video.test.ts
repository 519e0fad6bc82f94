/**
 * A video on Qwen2-VL / Qwen2.5-VL is one media of video tokens: its frames in temporal slices of
 * `temporal_patch_size` (an odd count padded with the last frame, as the processor pads), one tower call per
 * slice, `<|video_pad|>` × (slices · rows · cols) in the prompt, and M-RoPE time positions that count slices
 * (Qwen2-VL) or seconds (Qwen2.5-VL: int(slice · second_per_grid_t · tokens_per_second)), as transformers'
 * get_rope_index places them.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { writeTinyQwenVL } from '../dist/src/testing.js';
import { readVideo } from '../dist/src/media/video.js';
import { qwenFrameCount, qwenPixelValues, qwenResize, loadQwenProcessorConfig } from '../dist/src/families/qwen2-vl/processor.js';
import { qwenVisionFeeds } from '../dist/src/families/qwen2-vl/vision-order.js';
import type { QwenVLSpec } from '../dist/src/families/qwen2-vl/config.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;

const dir = tempDir('qwen-video');
/** testsrc at 112×56, 10 fps, 1 s: 10 frames; 5 sampled (indices 0, 2, 4, 6, 8: 5 frames a second). */
const VIDEO = path.join(dir, 'clip.mp4');

beforeAll(() => {
  execFileSync('ffmpeg', [
    '-nostdin',
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=112x56:rate=10:duration=1',
    '-pix_fmt',
    'yuv420p',
    '-c:v',
    'libx264',
    VIDEO,
  ]);
});

describe("Qwen's frame rule, for a video that names no frame count", () => {
  const sampling = { fps: 2, minFrames: 4, maxFrames: 768 };
  it('samples fps frames a second within [min_frames, max_frames], floored to whole temporal patches, as sample_frames does', () => {
    // 10 s at 30 fps: 20 frames at fps 2; 5 at fps 0.5 → min_frames 4; 1 s: 2 → 4 (min); 2 frames in all → 2.
    expect(qwenFrameCount(sampling, 2, 300, 30)).toBe(20);
    expect(qwenFrameCount(sampling, 2, 300, 30, 0.5)).toBe(4);
    expect(qwenFrameCount(sampling, 2, 30, 30)).toBe(4);
    expect(qwenFrameCount(sampling, 2, 3, 30)).toBe(2);
    expect(qwenFrameCount(sampling, 2, 1, 30)).toBe(1);
    // 7 frames a second asked of a 3 s clip at 10 fps: 21 → floored to 20; max_frames 9 → 8.
    expect(qwenFrameCount(sampling, 2, 30, 10, 7)).toBe(20);
    expect(qwenFrameCount({ ...sampling, maxFrames: 9 }, 2, 30, 10, 7)).toBe(8);
  });
});

describe.each(['2.5' as const, '2' as const])('Qwen%s: a video turn', (version) => {
  let model: Model;
  let ckpt: string;
  beforeAll(async () => {
    ckpt = tempDir(`qwen-video-${version}`);
    writeTinyQwenVL(ckpt, { version, seed: 11, std: 0.2, maxPixels: 112 * 112 });
    model = await engine.loadModel(ckpt, { cacheDir: tempDir('qwen-video-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('is one media of slices × rows × cols video tokens, 5 frames padded to 3 slices', async () => {
    const encoded = await model.chat().encodeVideo({ path: VIDEO, frames: 5 });
    expect(encoded.images).toBe(1);
    expect(encoded.layouts[0]).toMatchObject({ tokens: 24, grid: { t: 3, rows: 2, cols: 4 } });
    const pre = await (await encoded.prune()).prefill('What moves?');
    const spec = model.spec as QwenVLSpec;
    const ids = pre.promptTokenIds;
    const start = ids.indexOf(spec.videoTokenId);
    expect(ids.filter((id) => id === spec.videoTokenId)).toHaveLength(24);
    expect(ids[start - 1]).toBe(spec.visionStartTokenId);
    expect(ids[start + 24]).toBe(spec.visionEndTokenId);
    expect(ids).not.toContain(spec.imageTokenId);
    // get_rope_index: the video's tokens at start + (time, row, col); the text after at start + max + 1.
    const s = pre.positionRows![0][start]!;
    const time = (slice: number) => (version === '2' ? slice : Math.trunc(slice * (2 / 5) * spec.vision.tokensPerSecond));
    for (let k = 0; k < 24; k++) {
      const slice = Math.floor(k / 8);
      expect([0, 1, 2].map((r) => pre.positionRows![r]![start + k])).toEqual([s + time(slice), s + (Math.floor(k / 4) % 2), s + (k % 4)]);
    }
    const extent = Math.max(time(2), 1, 3);
    expect([0, 1, 2].map((r) => pre.positionRows![r]![start + 24])).toEqual([s + extent + 1, s + extent + 1, s + extent + 1]);
  });

  it("one tower call per slice equals one call over all slices (the tower's attention never crosses slices)", async () => {
    const encoded = await model.chat().encodeVideo({ path: VIDEO, frames: 5 });
    const { frames } = await readVideo({ path: VIDEO, frames: 5 });
    const processor = await loadQwenProcessorConfig(ckpt);
    const pixels = qwenPixelValues(
      frames.map((f) => qwenResize(f, processor)),
      processor,
    );
    expect(pixels.grid).toEqual([3, 4, 8]);
    const { feeds } = qwenVisionFeeds(pixels, (model.spec as QwenVLSpec).vision);
    const out = await model.runtime.runGraph('vision', feeds);
    expect(maxAbsDiff(out.image_embeds!.data as Float32Array, encoded.embeds)).toBeLessThan(1e-5);
  });

  it("traces the video as one media: a strip of its slices' first frames, under a slices·rows × cols salience grid", async () => {
    const sink = new engine.MemorySink();
    const chat = model.chat({ tracer: new engine.Tracer([sink]) });
    const encoded = await chat.encodeVideo({ path: VIDEO, frames: 5 });
    const image = sink.events.filter((e) => e.type === 'image');
    // The one media shows every frame: its event carries every frame's time in the video.
    expect((image[0] as { timestamps?: number[] }).timestamps).toEqual(encoded.video!.frames.map((f) => f.timestamp));
    const salience = sink.events.filter((e) => e.type === 'salience');
    expect(image).toHaveLength(1);
    expect(salience).toHaveLength(1);
    expect(salience[0]).toMatchObject({ grid: { rows: 6, cols: 4 }, leading: 0 });
    // Three 112×56 slices stacked: 112 × 168, scaled to at most 256 px a slice.
    const { width, height } = image[0] as { width: number; height: number };
    expect(height / width).toBeCloseTo(168 / 112, 1);
  });

  it("samples a video that names no frame count by the checkpoint's rule: 2 frames a second, at least 4", async () => {
    // The 1 s clip at 10 fps: 2 frames a second → 2, raised to min_frames 4 → 2 slices.
    const encoded = await model.chat().encodeVideo(VIDEO);
    expect(encoded.video!.frames.map((f) => f.index)).toEqual([0, 2, 5, 7]);
    expect(encoded.layouts[0]!.grid.t).toBe(2);
  });

  it('answers, and a text turn after it continues from the video', async () => {
    const chat = model.chat({ maxNewTokens: 3 });
    const first = await chat.ask({ video: { path: VIDEO, frames: 4 }, text: 'Describe.' });
    expect(first.tokenIds).toHaveLength(3);
    const second = await chat.ask({ text: 'And then?' });
    expect(second.timings.cachedTokens).toBeGreaterThan(first.promptTokenIds.length);
  });
});
