/**
 * Video input end to end: test videos made by ffmpeg itself, frame sampling by count and by fps, decoded
 * frames against ffmpeg's own PNG export, typed errors for bad input and clean child teardown, video turns on
 * a random checkpoint (dense and sparse, per-frame keep budgets), chunked prefill against one-shot, and the
 * up-front memory refusal.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeFrames,
  decodeVideo,
  loadImage,
  parsePreprocessorConfig,
  planVideo,
  probeVideo,
  readVideo,
  sampleFrames,
  selectExpression,
} from '../src/media/index.js';
import { estimateTurnMemory, formatBytes, MIN_CHUNK_ROWS, RUNTIME_OVERHEAD, SCORE_COPIES } from '../src/runtime/memory.js';
import { REPO_ROOT, writeTinyLlava } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import type { LlavaSpec } from '../dist/src/checkpoint/spec.js';
import { encodeLlava } from '../src/families/llava/encode.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;

const dir = tempDir('video');
/** testsrc (moving colour pattern, frame counter) in H.264 / MP4: 30 frames at 10 fps, 64×48. */
const MP4 = path.join(dir, 'testsrc.mp4');
/** Lossless grey FFV1 in Matroska (no stored frame count), 30 frames at 10 fps: frame k is grey 8·k. */
const NUMBERED = path.join(dir, 'numbered.mkv');
/** MP4 with a 90° display rotation (as phones record): ffmpeg delivers its frames rotated, 48×64. */
const ROTATED = path.join(dir, 'rotated.mp4');
/** The same idea over 250 frames at 25 fps: frame k is grey k. */
const LONG = path.join(dir, 'long.mkv');
const PNG = path.join(dir, 'still.png');
const TEXT = path.join(dir, 'notes.mp4');

function ffmpeg(...args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args]);
}

/** ffmpeg's own export of frame `index` as a PNG, with the same frame selection the decoder uses. */
function exportPng(video: string, index: number): string {
  const out = path.join(dir, `${path.basename(video)}-${index}.png`);
  ffmpeg('-i', video, '-vf', `select=eq(n\\,${index})`, '-vsync', 'passthrough', '-frames:v', '1', out);
  return out;
}

/** Child processes of this test process: state and command. */
function children(): { stat: string; command: string }[] {
  return execFileSync('ps', ['-o', 'stat=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const [stat, command] = line.trim().split(/\s+/);
      return { stat: stat!, command: command! };
    });
}

/** No ffmpeg left running and no child left unreaped. */
function expectNoLeftovers(): void {
  expect(children().filter((c) => c.command === 'ffmpeg' || c.command === 'ffprobe' || c.stat.startsWith('Z'))).toEqual([]);
}

beforeAll(() => {
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=3', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', MP4);
  ffmpeg('-f', 'lavfi', '-i', "nullsrc=size=32x24:rate=10:duration=3,format=gray,geq=lum='8*N'", '-c:v', 'ffv1', NUMBERED);
  ffmpeg('-f', 'lavfi', '-i', "nullsrc=size=16x8:rate=25:duration=10,format=gray,geq=lum='N'", '-c:v', 'ffv1', LONG);
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=16x16', '-frames:v', '1', PNG);
  ffmpeg('-i', MP4, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', ROTATED);
  fs.writeFileSync(TEXT, 'not a video at all\n'.repeat(50));
});

describe('probing and sampling', () => {
  it('probes size, frame rate, frame count and duration (counting packets when the container stores no count)', async () => {
    expect(await probeVideo(MP4)).toMatchObject({ width: 64, height: 48, fps: 10, frameCount: 30, durationSeconds: 3, codec: 'h264' });
    expect(await probeVideo(NUMBERED)).toMatchObject({ width: 32, height: 24, fps: 10, frameCount: 30, codec: 'ffv1' });
  });

  it("samples frames as transformers' default_sample_indices_fn: by count ⌊k·total/N⌋, by fps N = ⌊total/fps·F⌋", () => {
    const info = { file: 'v', frameCount: 30, fps: 10, durationSeconds: 3 };
    expect(sampleFrames(info, { frames: 8 }).indices).toEqual([0, 3, 7, 11, 15, 18, 22, 26]);
    expect(sampleFrames(info, { frames: 30 }).indices).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const byFps = sampleFrames(info, { fps: 2 });
    expect(byFps.indices).toEqual([0, 5, 10, 15, 20, 25]);
    expect(byFps.timestamps).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    // np.arange(0, 7, 7 / 3).astype(int) = [0, 2, 4]
    expect(sampleFrames({ ...info, frameCount: 7 }, { frames: 3 }).indices).toEqual([0, 2, 4]);
  });

  it('decodes exactly the sampled frames: frame k of the numbered video is grey 8·k', async () => {
    for (const sampling of [{ frames: 8 }, { fps: 2 }, { frames: 1 }]) {
      const { plan, frames } = await readVideo({ path: NUMBERED, ...sampling });
      expect(frames.map((f) => f.index)).toEqual(plan.indices);
      expect(frames.map((f) => f.timestamp)).toEqual(plan.timestamps);
      for (const f of frames) {
        expect(f.width * f.height * 3).toBe(f.data.length);
        expect(new Set(f.data)).toEqual(new Set([8 * f.index]));
      }
    }
  });

  it('builds the select expression from runs of frame numbers, summed as a balanced tree', () => {
    expect(selectExpression([0, 3, 4, 5, 9])).toBe('(eq(n\\,0)+(between(n\\,3\\,5)+eq(n\\,9)))');
    expect(selectExpression([7])).toBe('eq(n\\,7)');
  });

  it('decodes more frames than ffmpeg takes terms in a flat sum: 120 of 250, frame k being grey k', async () => {
    const { plan, frames } = await readVideo({ path: LONG, frames: 120 });
    expect(plan.info.frameCount).toBe(250);
    expect(frames.map((f) => f.index)).toEqual(plan.indices);
    expect(frames.every((f) => f.data.every((v) => v === f.index))).toBe(true);
  });
});

describe('decoded frames against ffmpeg', () => {
  it("equal ffmpeg's own PNG export of the same frames, pixel for pixel", async () => {
    const { plan, frames } = await readVideo({ path: MP4, frames: 5 });
    expect(plan.indices).toEqual([0, 6, 12, 18, 24]);
    for (const frame of frames) {
      const png = await loadImage(exportPng(MP4, frame.index));
      expect([frame.width, frame.height]).toEqual([png.width, png.height]);
      expect(Buffer.compare(Buffer.from(frame.data), Buffer.from(png.data))).toBe(0);
    }
    // Different frames do differ (the pattern moves), so the comparison can fail.
    expect(Buffer.compare(Buffer.from(frames[0]!.data), Buffer.from(frames[1]!.data))).not.toBe(0);
  });

  it('come rotated as ffmpeg shows them when the video carries a display rotation', async () => {
    const { plan, frames } = await readVideo({ path: ROTATED, frames: 2 });
    expect(plan.info).toMatchObject({ width: 48, height: 64, rotation: 90 });
    const png = await loadImage(exportPng(ROTATED, frames[1]!.index));
    expect([png.width, png.height]).toEqual([48, 64]);
    expect(Buffer.compare(Buffer.from(frames[1]!.data), Buffer.from(png.data))).toBe(0);
  });
});

describe('bad video input', () => {
  it('refuses a missing file, a non-video, a still image and bad frame counts with typed errors naming them', async () => {
    await expect(planVideo('/nonexistent/clip.mp4')).rejects.toMatchObject({
      code: 'VIDEO_UNREADABLE',
      subject: '/nonexistent/clip.mp4',
      message: expect.stringContaining('no such file'),
    });
    await expect(planVideo(TEXT)).rejects.toMatchObject({ code: 'VIDEO_UNREADABLE', subject: TEXT, message: expect.stringContaining('not a readable video') });
    await expect(planVideo(PNG)).rejects.toMatchObject({ code: 'VIDEO_UNREADABLE', subject: PNG, message: expect.stringContaining('still image') });
    for (const frames of [0, -3, 2.5]) await expect(planVideo({ path: MP4, frames })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'frames' });
    await expect(planVideo({ path: MP4, fps: 0 })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'fps' });
    await expect(planVideo({ path: MP4, frames: 4, fps: 1 })).rejects.toMatchObject({ code: 'OPTION_INVALID' });
    await expect(planVideo({ path: MP4, frames: 31 })).rejects.toMatchObject({ code: 'OPTION_INVALID', message: expect.stringContaining('only 30') });
    await expect(planVideo({ path: MP4, fps: 0.1 })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'fps' });
  });

  it('hands ffmpeg file names as plain files: a leading - is no option, a name: prefix no protocol', async () => {
    // Relative names are what reach ffmpeg unresolved (an absolute path starts with "/"), so run from the folder.
    const names = ['-report', 'concat:numbered.mkv|long.mkv', 'meeting:notes.mp4'];
    for (const name of names) fs.copyFileSync(NUMBERED, path.join(dir, name));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      for (const name of names) {
        const { plan, frames } = await readVideo({ path: name, frames: 3 });
        expect(plan.info.frameCount, name).toBe(30);
        expect(
          frames.map((f) => f.data[0]),
          name,
        ).toEqual([0, 80, 160]);
      }
      expect(fs.readdirSync(dir).filter((f) => /^ff(probe|mpeg)-.*\.log$/.test(f))).toEqual([]);
    } finally {
      process.chdir(cwd);
    }
  });

  it('says how to install ffmpeg when it is missing', async () => {
    await expect(planVideo({ path: MP4, tools: { ffprobe: '/nonexistent/ffprobe' } })).rejects.toMatchObject({
      code: 'DEPENDENCY_MISSING',
      message: expect.stringMatching(/apt-get install ffmpeg/),
    });
    const plan = await planVideo(MP4);
    await expect(readVideo({ path: MP4, tools: { ffmpeg: '/nonexistent/ffmpeg' } })).rejects.toMatchObject({
      code: 'DEPENDENCY_MISSING',
      message: expect.stringContaining(MP4),
    });
    expect(plan.indices.length).toBe(8);
  });

  it('a timeout stops ffmpeg with a typed error and leaves no process behind', async () => {
    const info = await probeVideo(MP4);
    await expect(decodeFrames(info, [0, 29], { timeoutMs: 1 }).next()).rejects.toMatchObject({
      code: 'VIDEO_TIMEOUT',
      subject: MP4,
      message: expect.stringContaining('Raise timeoutMs'),
    });
    expectNoLeftovers();
  });

  it('stopping early (a consumer that breaks) kills and reaps ffmpeg', async () => {
    const info = await probeVideo(MP4);
    // All 30 frames (270 KiB) overflow the pipe: ffmpeg would block on it forever if it were not killed.
    for await (const frame of decodeFrames(
      info,
      Array.from({ length: 30 }, (_, i) => i),
    )) {
      expect(frame.index).toBe(0);
      break;
    }
    expectNoLeftovers();
  });

  it('an error downstream of the decoder (a preprocessor of the wrong size) stops ffmpeg too', async () => {
    const plan = await planVideo({ path: MP4, frames: 30 });
    const config = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: { height: 32, width: 32 } });
    // Llava's encode step checks each frame's size before it runs a graph: the runner is never reached.
    const spec = { vision: { imageSize: 64 } } as LlavaSpec;
    const runner = { runGraph: () => Promise.reject(new Error('no graph runs')) };
    const consume = () => encodeLlava(spec, runner, { frames: decodeVideo(plan), processor: config, batch: 4, dir: '/ckpt' });
    await expect(consume()).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('takes 64×64') });
    expectNoLeftovers();
  });
});

/** The demo model's chat template (tools/train-demo-vlm/bpe.py): several images are labelled "Frame k: ". */
const FRAME_TEMPLATE =
  "{% for message in messages %}<|im_start|>{{ message['role'] }}\n" +
  "{% if message['content'] is string %}{{ message['content'] }}{% else %}" +
  "{% set images = message['content'] | selectattr('type', 'equalto', 'image') | list %}" +
  '{% set ns = namespace(frame=0) %}' +
  "{% for c in message['content'] %}{% if c['type'] == 'image' %}{% set ns.frame = ns.frame + 1 %}" +
  '{% if images | length > 1 %}Frame {{ ns.frame }}: {% endif %}<image>\n' +
  "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n" +
  '{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

describe('video turns on a random SigLIP / Qwen2 checkpoint', () => {
  const ckpt = tempDir('video-ckpt');
  let model: Model;
  beforeAll(async () => {
    writeTinyLlava(ckpt, { vision: 'siglip', seed: 11 });
    const file = path.join(ckpt, 'tokenizer_config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), chat_template: FRAME_TEMPLATE }));
    model = await engine.loadModel(ckpt, { cacheDir: tempDir('video-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('puts the frames in the prompt as consecutive images, labelled by the chat template, exactly as the same frames given as PNGs', async () => {
    const tokens = (model.spec as LlavaSpec).imageTokenCount;
    const video = await model.chat({ maxNewTokens: 4 }).ask({ video: { path: MP4, frames: 4 }, text: 'What happens?' });
    // fps: the sampled frames' rate, one over their mean spacing (2.2 s for 3 gaps).
    expect(video.video).toEqual({ file: MP4, frames: [0, 7, 15, 22].map((index) => ({ index, timestamp: index / 10 })), fps: 3 / 2.2 });
    expect(video.promptTokenIds.filter((id) => id === model.spec.imageTokenId)).toHaveLength(4 * tokens);
    const prompt = model.text.decode(video.promptTokenIds.filter((id) => id !== model.spec.imageTokenId));
    expect(prompt).toContain('Frame 1: \nFrame 2: \nFrame 3: \nFrame 4: \nWhat happens?');
    expect(video.sparsity).toMatchObject({ turnImageTokens: 4 * tokens, turnKeptTokens: 4 * tokens, turnKeptPerImage: [tokens, tokens, tokens, tokens] });

    const pngs = video.video!.frames.map((f) => exportPng(MP4, f.index));
    const images = await model.chat({ maxNewTokens: 4 }).ask({ images: pngs, text: 'What happens?' });
    expect(images.promptTokenIds).toEqual(video.promptTokenIds);
    expect(maxAbsDiff(images.lastPromptLogits, video.lastPromptLogits)).toBe(0);
    expect(images.tokenIds).toEqual(video.tokenIds);
  });

  it('runs with SparseVILA: a global keep budget spread over frames by salience, every frame above its floor, counts per frame in the answer and the trace', async () => {
    const policy = (minPerImage: number) =>
      ({ method: 'sparsevila', keep: { budget: { count: 20 }, scope: 'global', minPerImage }, retrieve: { budget: { ratio: 0.25 }, minPerImage: 1 } }) as never;
    // Without a floor the global top-k starves some frames on this video (the test of the floor can fail).
    const unfloored = await model.chat({ maxNewTokens: 2, policy: policy(0) }).ask({ video: { path: NUMBERED, fps: 2 }, text: 'Which frame is brightest?' });
    expect(Math.min(...unfloored.sparsity.turnKeptPerImage)).toBeLessThan(3);

    const sink = new engine.MemorySink();
    const chat = model.chat({ maxNewTokens: 4, tracer: new engine.Tracer([sink]), policy: policy(3) });
    const first = await chat.ask({ video: { path: NUMBERED, fps: 2 }, text: 'Which frame is brightest?' });
    const kept = sink.of('kept');
    expect(kept.map((k) => k.image)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(kept.map((k) => k.kept.length)).toEqual(first.sparsity.turnKeptPerImage);
    expect(first.sparsity.turnKeptTokens).toBe(20);
    expect(Math.min(...first.sparsity.turnKeptPerImage)).toBe(3);
    // The rest of the budget still follows salience: frames differ in what they keep.
    expect(Math.max(...first.sparsity.turnKeptPerImage)).toBeGreaterThan(3);
    expect(sink.of('image')).toHaveLength(6);
    // Each frame's image event carries its time in the video, for the profiler's "frame 1 · 0 s" labels.
    expect(sink.of('image').map((e) => e.timestamps)).toEqual(first.video!.frames.map((f) => [f.timestamp]));
    expect(sink.of('retrieval')).toHaveLength(model.spec.text.numLayers);
    expect(first.sparsity.attendedVisualPerLayer.every((n) => n >= 6 && n < 20)).toBe(true);
    // The conversation goes on over the retained frames.
    const second = await chat.ask({ text: 'And the darkest?' });
    expect(second.timings.cachedTokens).toBeGreaterThan(first.promptTokenIds.length);
    expect(second.sparsity.visualTokens).toBe(20);
  });

  it('a per-frame keep budget keeps the same count of every frame', async () => {
    const chat = model.chat({
      maxNewTokens: 2,
      policy: { method: 'sparsevila', keep: { budget: { ratio: 0.25 } }, retrieve: { budget: { ratio: 0.5 } } } as never,
    });
    const answer = await chat.ask({ video: { path: MP4, frames: 3 }, text: 'hi' });
    expect(answer.sparsity.turnKeptPerImage).toEqual([4, 4, 4]);
  });

  it('chunked prefill gives the same logits as one-shot prefill, dense and sparse (within 1e-4)', async () => {
    const sparse = { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.5 } } } as never;
    for (const policy of [undefined, sparse]) {
      const run = (prefillChunk: number) =>
        model.chat({ maxNewTokens: 3, prefillChunk, policy, visionBatch: 3 }).ask({ video: { path: MP4, frames: 8 }, text: 'Describe the video.' });
      const whole = await run(4096);
      expect(whole.promptTokenIds.length).toBeGreaterThan(7 * 7);
      for (const chunk of [7, 64]) {
        const chunked = await run(chunk);
        expect(chunked.promptTokenIds).toEqual(whole.promptTokenIds);
        expect(maxAbsDiff(chunked.lastPromptLogits, whole.lastPromptLogits), `chunk ${chunk}`).toBeLessThan(1e-4);
      }
    }
  });

  it('refuses a turn over the memory limit before any work, with the estimate, the limit and what to change', async () => {
    const sink = new engine.MemorySink();
    // Room for a short text turn beyond the fixed overhead, not for 30 frames (480 visual tokens).
    const limit = RUNTIME_OVERHEAD + 4 * 1024 * 1024;
    const chat = model.chat({ maxNewTokens: 4, memoryLimit: limit, tracer: new engine.Tracer([sink]) });
    // A missing ffmpeg proves no frame is decoded: decoding would fail with DEPENDENCY_MISSING instead.
    const err = await chat.ask({ video: { path: MP4, frames: 30, tools: { ffmpeg: '/nonexistent/ffmpeg' } }, text: 'hi' }).catch((e) => e);
    expect(err).toMatchObject({ code: 'MEMORY_LIMIT', subject: 'memoryLimit' });
    const estimate = Number(/needs an estimated [\d.]+ \w+ \((\d+) bytes/.exec(err.message)?.[1]);
    expect(estimate).toBeGreaterThan(limit);
    expect(err.message).toContain(`limit of ${formatBytes(limit)} (${limit} bytes)`);
    expect(err.message).toMatch(/30 frame\(s\) of .*testsrc\.mp4/);
    for (const fix of ['fewer frames', 'keep budget', 'smaller chunks', 'raise the limit']) expect(err.message).toContain(fix);
    // No work: nothing encoded, traced or cached, and the chat still takes a turn that fits.
    expect(sink.events.map((e) => e.type)).toEqual(['run.start']);
    const next = await chat.ask({ text: 'hi' });
    expect(next.tokenIds.length).toBeGreaterThan(0);
    expect(next.timings.cachedTokens).toBe(0);
  });

  it('estimates the KV cache as layers × 2 × kvHeads × headDim × tokens × 4 bytes, and more for longer videos', async () => {
    const t = model.spec.text;
    const base = { cachedRows: 0, promptTokens: 1000, maxNewTokens: 24, chunk: 512, frames: 0, visionBatch: 8, viewRows: 0, twinRows: 0 };
    const e = estimateTurnMemory(model.spec, base);
    expect(e.parts.kvCache).toBe(t.numLayers * 2 * t.numKvHeads * t.headDim * 1024 * 4);
    expect(estimateTurnMemory(model.spec, { ...base, kvType: 'float16' }).parts.kvCache).toBe(e.parts.kvCache / 2);
    expect(e.total).toBe(Object.values(e.parts).reduce((a, b) => a + b, 0));
    expect(estimateTurnMemory(model.spec, { ...base, chunk: 64 }).parts.prefillScores).toBe(e.parts.prefillScores / 8);
    // A score limit bounds the largest chunk's scores, whatever the context; a limit above them changes nothing.
    const scores = (rows: number) => t.numHeads * rows * 1000 * 4;
    const limited = (chunkScoreBytes: number) => estimateTurnMemory(model.spec, { ...base, chunkScoreBytes }).parts.prefillScores;
    expect(limited(scores(512))).toBe(e.parts.prefillScores);
    expect(limited(scores(100))).toBe(scores(100) * SCORE_COPIES);
    expect(limited(1)).toBe(scores(MIN_CHUNK_ROWS) * SCORE_COPIES);
    expect(estimateTurnMemory(model.spec, { ...base, frames: 64 }).total).toBeGreaterThan(e.total);
  });

  it('refuses bad video turns with typed errors', async () => {
    const chat = model.chat({ maxNewTokens: 2 });
    await expect(chat.ask({ video: { path: MP4, frames: 0 }, text: 'hi' })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'frames' });
    await expect(chat.ask({ video: '/nonexistent/clip.mp4', text: 'hi' })).rejects.toMatchObject({
      code: 'VIDEO_UNREADABLE',
      subject: '/nonexistent/clip.mp4',
    });
    await expect(chat.ask({ video: MP4, images: [PNG], text: 'hi' })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'video' });
    expect((await chat.ask({ video: MP4, text: 'ok' })).video?.frames).toHaveLength(8);
    expect(() => model.chat({ visionBatch: 0 })).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'visionBatch' }));
    expect(() => model.chat({ memoryLimit: -1 })).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'memoryLimit' }));
    for (const prefillScoreBytes of [0, Number.NaN]) {
      expect(() => model.chat({ prefillScoreBytes })).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'prefillScoreBytes' }));
    }
  });

  it('sparsevila ask --video samples by --frames or --fps, and refuses over --memory-limit', () => {
    const cacheDir = tempDir('video-cli');
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [
          path.join(REPO_ROOT, 'dist/src/cli/main.js'),
          'ask',
          '--model',
          ckpt,
          '--cache-dir',
          cacheDir,
          '--threads',
          '1',
          '--prompt',
          'hi',
          '--max-new-tokens',
          '2',
          ...args,
        ],
        {
          encoding: 'utf8',
        },
      );
    const byFps = cli('--video', NUMBERED, '--fps', '2', '--json');
    expect(byFps.status, byFps.stderr).toBe(0);
    expect(JSON.parse(byFps.stdout).video.frames.map((f: { index: number }) => f.index)).toEqual([0, 5, 10, 15, 20, 25]);
    const byCount = cli(
      '--video',
      MP4,
      '--frames',
      '3',
      '--policy',
      'sparsevila',
      '--keep',
      '6',
      '--keep-scope',
      'global',
      '--keep-min-per-frame',
      '1',
      '--json',
    );
    expect(byCount.status, byCount.stderr).toBe(0);
    const answer = JSON.parse(byCount.stdout);
    expect(answer.video.frames).toHaveLength(3);
    expect(answer.sparsity.turnKeptTokens).toBe(6);
    const refused = cli('--video', MP4, '--frames', '30', '--memory-limit', '1M');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/MEMORY_LIMIT.*1\.0 MiB \(1048576 bytes\)/);
    const bad = cli('--video', MP4, '--frames', '0');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--frames must be ≥ 1');
  });
});
