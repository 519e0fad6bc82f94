/**
 * The synthetic visual world: determinism by seed, answers checked against the rendered pixels, the grid's
 * rules, video ground truth, unambiguous questions, region-hopping conversations, disjoint splits, the
 * dataset writer and the `sparsevila dataset` command.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  BACKGROUND_RGB,
  CELLS,
  COLORS,
  COLOR_RGB,
  NOTHING,
  SHAPES,
  cellBox,
  imageQuestions,
  insideShape,
  makeConversation,
  makeConversations,
  makeScene,
  makeSplits,
  makeVideo,
  neighbours,
  objectAt,
  objectCenter,
  objectRadius,
  objectSamplePixel,
  readDatasetLines,
  readDatasetMeta,
  readRgb,
  renderScene,
  renderVideo,
  sceneHash,
  validateScene,
  validateVideo,
  videoEvents,
  videoFrame,
  videoQuestions,
  writeDataset,
  type Cell,
  type Color,
  type Question,
  type Scene,
  type SceneObject,
  type Shape,
} from '../src/world/index.js';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/engine.js';

const sha = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

function pixel(rgb: Uint8Array, size: number, x: number, y: number): [number, number, number] {
  const p = (y * size + x) * 3;
  return [rgb[p]!, rgb[p + 1]!, rgb[p + 2]!];
}

function dist(a: readonly number[], b: readonly number[]): number {
  return Math.max(Math.abs(a[0]! - b[0]!), Math.abs(a[1]! - b[1]!), Math.abs(a[2]! - b[2]!));
}

/** The object color a pixel shows, if it shows one (within 24 of a palette color); undefined for background. */
function colorOf(rgb: readonly number[]): Color | undefined {
  return COLORS.find((c) => dist(rgb, COLOR_RGB[c]) <= 24);
}

/** What the pixels of a cell show: the object color filling most of its colored pixels, or nothing. */
function cellColorFromPixels(rgb: Uint8Array, size: number, cell: Cell): Color | undefined {
  const [x0, y0, x1, y1] = cellBox(cell, size);
  const votes = new Map<Color, number>();
  for (let y = Math.ceil(y0); y < Math.floor(y1); y++) {
    for (let x = Math.ceil(x0); x < Math.floor(x1); x++) {
      const c = colorOf(pixel(rgb, size, x, y));
      if (c) votes.set(c, (votes.get(c) ?? 0) + 1);
    }
  }
  let best: Color | undefined;
  for (const [c, n] of votes) if (n >= 4 && (!best || n > votes.get(best)!)) best = c;
  return best;
}

/** Intersection over union of the object-colored pixels in its cell with the mask a shape would fill there. */
function shapeIou(rgb: Uint8Array, size: number, o: SceneObject, shape: Shape): number {
  const [cx, cy] = objectCenter(o, size);
  const r = objectRadius(o, size);
  const [x0, y0, x1, y1] = cellBox(o.cell, size);
  let inter = 0;
  let union = 0;
  for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
    for (let x = Math.floor(x0); x < Math.ceil(x1); x++) {
      const seen = dist(pixel(rgb, size, x, y), COLOR_RGB[o.color]) <= 60;
      const drawn = insideShape(shape, (x + 0.5 - cx) / r, (y + 0.5 - cy) / r);
      if (seen && drawn) inter++;
      if (seen || drawn) union++;
    }
  }
  return inter / union;
}

describe('world: scenes and rendering', () => {
  it('is deterministic by seed: same seed, same scene, pixels and questions; different seeds differ', () => {
    for (const seed of [0, 1, 42, 0xffffffff]) {
      const a = makeScene(seed);
      const b = makeScene(seed);
      expect(b).toEqual(a);
      expect(sha(renderScene(b))).toBe(sha(renderScene(a)));
      expect(imageQuestions(b)).toEqual(imageQuestions(a));
    }
    const scenes = Array.from({ length: 50 }, (_, s) => makeScene(s));
    expect(new Set(scenes.map((s) => JSON.stringify(s))).size).toBe(50);
    expect(new Set(scenes.map((s) => sha(renderScene(s)))).size).toBe(50);
    // Pinned: a change to the generator or the rasteriser changes existing datasets, and should be deliberate.
    expect(makeScene(7).objects.map((o) => `${o.cell} ${o.size} ${o.color} ${o.shape}`)).toEqual([
      'top-left large purple circle',
      'top small yellow square',
      'left small green ring',
      'right small purple triangle',
      'bottom large purple cross',
    ]);
    expect(sceneHash(makeScene(7))).toBe('e9f072c6548aca02');
    expect(sha(renderScene(makeScene(7)))).toBe('2dbaba2f092464785b9fa297fd9cd08f82124b5959dea0a6ea7ff2f5b430eb67');
    expect(makeConversations(3, 20)).toEqual(makeConversations(3, 20));
    expect(makeConversations(3, 20)).not.toEqual(makeConversations(4, 20));
    // A longer run extends a shorter one.
    expect(makeConversations(3, 30).slice(0, 20)).toEqual(makeConversations(3, 20));
  });

  it('keeps the grid rules: 2–5 objects, at most one per cell, shapes inside their cells', () => {
    const counts = new Set<number>();
    for (let s = 0; s < 1000; s++) {
      const scene = makeScene(s);
      validateScene(scene);
      counts.add(scene.objects.length);
      expect(new Set(scene.objects.map((o) => o.cell)).size).toBe(scene.objects.length);
      for (const o of scene.objects) {
        const [cx, cy] = objectCenter(o, 64);
        const r = objectRadius(o, 64);
        const [x0, y0, x1, y1] = cellBox(o.cell, 64);
        expect(cx - r).toBeGreaterThanOrEqual(x0);
        expect(cx + r).toBeLessThanOrEqual(x1);
        expect(cy - r).toBeGreaterThanOrEqual(y0);
        expect(cy + r).toBeLessThanOrEqual(y1);
        // Large ≈ 60–90% of the cell, small ≈ 35–50%.
        const fill = (2 * r) / (x1 - x0);
        expect(fill).toBeGreaterThanOrEqual(o.size === 'large' ? 0.6 : 0.35);
        expect(fill).toBeLessThanOrEqual(o.size === 'large' ? 0.9 : 0.5);
      }
    }
    expect([...counts].sort()).toEqual([2, 3, 4, 5]);
  });

  it('draws each object in its color and shape: the pixel at its sample point is its color; its mask matches its shape best', () => {
    for (let s = 0; s < 300; s++) {
      const scene = makeScene(s);
      for (const size of [64, 128]) {
        const rgb = renderScene(scene, size);
        expect(rgb.length).toBe(size * size * 3);
        for (const o of scene.objects) {
          const [x, y] = objectSamplePixel(o, size);
          expect(pixel(rgb, size, x, y)).toEqual([...COLOR_RGB[o.color]]);
          // Shapes tell apart by their masks (large ones at 64 px, all at 128 px).
          if (size === 128 || o.size === 'large') {
            const own = shapeIou(rgb, size, o, o.shape);
            expect(own).toBeGreaterThan(0.75);
            for (const other of SHAPES) if (other !== o.shape) expect(shapeIou(rgb, size, o, other)).toBeLessThan(own);
          }
        }
        // Empty cells show only background: no pixel of any object color.
        for (const cell of CELLS) {
          if (!objectAt(scene, cell)) expect(cellColorFromPixels(rgb, size, cell)).toBeUndefined();
        }
      }
    }
  });

  it('backgrounds are low contrast: every background pixel stays within 16 of its base tone', () => {
    let textured = 0;
    for (let s = 0; s < 200; s++) {
      const scene: Scene = { ...makeScene(s), objects: [] };
      if (scene.background.texture !== 'plain') textured++;
      const rgb = renderScene(scene);
      const base = BACKGROUND_RGB[scene.background.color];
      let worst = 0;
      for (let i = 0; i < 64 * 64; i++) worst = Math.max(worst, dist([rgb[3 * i]!, rgb[3 * i + 1]!, rgb[3 * i + 2]!], base));
      expect(worst).toBeLessThanOrEqual(16);
    }
    expect(textured).toBeGreaterThan(80);
  });
});

/** Checks a question's answer against the pixels of the scene (not the ground-truth objects). */
function checkAgainstPixels(q: Question, rgb: Uint8Array, size: number, scene: Scene): void {
  const seen = (cell: Cell) => cellColorFromPixels(rgb, size, cell);
  switch (q.kind) {
    case 'shape-color':
    case 'cell-color':
    case 'frame-shape-color':
      expect(q.cells).toHaveLength(1);
      expect(seen(q.cells[0]!), q.question).toBe(q.answer);
      break;
    case 'cell-shape':
    case 'frame-cell-shape':
      if (q.answer === NOTHING) expect(seen(q.cells[0]!), q.question).toBeUndefined();
      else {
        const o = objectAt(scene, q.cells[0]!)!;
        expect(o.shape).toBe(q.answer);
        expect(seen(q.cells[0]!)).toBe(o.color);
      }
      break;
    case 'count-color': {
      const color = q.question.split(' ')[2] as Color;
      const cells = CELLS.filter((c) => seen(c) === color);
      expect(String(cells.length), q.question).toBe(q.answer);
      expect(q.cells).toEqual(cells);
      break;
    }
    case 'exists':
      expect(q.answer).toBe(q.cells.length > 0 ? 'yes' : 'no');
      for (const c of q.cells) expect(q.question).toContain(` ${seen(c)} `);
      break;
    case 'frame-count':
      expect(String(CELLS.filter((c) => seen(c) !== undefined).length), q.question).toBe(q.answer);
      break;
    case 'frame-where':
      expect(q.cells).toEqual([q.answer]);
      expect(q.question).toContain(`the ${seen(q.answer as Cell)} `);
      break;
    default:
      break;
  }
}

describe('world: questions', () => {
  it('answers match what the pixels show', () => {
    for (let s = 0; s < 200; s++) {
      const scene = makeScene(s);
      const rgb = renderScene(scene);
      for (const q of imageQuestions(scene)) checkAgainstPixels(q, rgb, 64, scene);
    }
  });

  it('answers are short, lower-case and unambiguous: one answer per question text, "the <shape>" only for a unique shape', () => {
    for (let s = 0; s < 300; s++) {
      const scene = makeScene(s);
      const qs = imageQuestions(scene);
      const byText = new Map<string, string>();
      for (const q of qs) {
        expect(q.answer).toMatch(/^[a-z0-9-]+$/);
        expect(byText.has(q.question), q.question).toBe(false);
        byText.set(q.question, q.answer);
        expect(q.scope === 'region' ? q.cells.length : 1).toBe(1);
        if (q.kind === 'shape-color' || q.kind === 'shape-size') {
          const shape = /the (\w+)/.exec(q.question)![1];
          const matches = scene.objects.filter((o) => o.shape === shape);
          expect(matches).toHaveLength(1);
          expect(q.cells).toEqual([matches[0]!.cell]);
          expect(q.answer).toBe(q.kind === 'shape-color' ? matches[0]!.color : matches[0]!.size);
        }
      }
      // Never "the circle" when there are two circles.
      for (const shape of SHAPES) {
        const n = scene.objects.filter((o) => o.shape === shape).length;
        expect(byText.has(`What color is the ${shape}?`)).toBe(n === 1);
      }
    }
  });
});

describe('world: videos', () => {
  it('keeps consistent ground truth: one visibility interval, moves to neighbours, one object per cell, events that add up', () => {
    for (let s = 0; s < 300; s++) {
      const video = makeVideo(s, { frames: s % 3 === 0 ? 4 : 8 });
      validateVideo(video);
      expect(makeVideo(s, { frames: video.frames })).toEqual(video);
      const events = videoEvents(video);
      expect(events.some((e) => e.kind === 'move')).toBe(true);
      expect(events.some((e) => e.kind === 'vanish' || (e.kind === 'appear' && e.frame > 1))).toBe(true);
      video.actors.forEach((a, i) => {
        const mine = events.filter((e) => e.actor === i);
        expect(mine.filter((e) => e.kind === 'appear').map((e) => e.frame)).toEqual([a.firstFrame]);
        expect(mine.filter((e) => e.kind === 'vanish').map((e) => e.frame)).toEqual(a.lastFrame < video.frames ? [a.lastFrame + 1] : []);
        for (const e of mine) if (e.kind === 'move') expect(neighbours(e.from)).toContain(e.to);
      });
      expect(videoFrame(video, 1).objects.length).toBeGreaterThan(0);
      // Replaying the events from nothing gives every frame's layout.
      const where = new Map<number, Cell>();
      for (let f = 1; f <= video.frames; f++) {
        for (const e of events.filter((x) => x.frame === f)) {
          if (e.kind === 'vanish') where.delete(e.actor);
          else where.set(e.actor, e.kind === 'appear' ? e.cell : e.to);
        }
        const frame = videoFrame(video, f);
        expect(new Set(frame.objects.map((o) => o.cell)).size).toBe(frame.objects.length);
        expect(frame.objects.map((o) => o.cell).sort()).toEqual([...where.values()].sort());
      }
    }
  });

  it("renders each frame from its ground truth, and video answers match the frames' pixels", () => {
    for (let s = 0; s < 60; s++) {
      const video = makeVideo(1000 + s);
      const frames = renderVideo(video);
      expect(frames).toHaveLength(8);
      for (let f = 1; f <= 8; f++) {
        for (const a of video.actors) {
          const cell = a.cells[f - 1];
          if (cell) {
            const o = videoFrame(video, f).objects.find((x) => x.cell === cell)!;
            const [x, y] = objectSamplePixel(o);
            expect(pixel(frames[f - 1]!, 64, x, y)).toEqual([...COLOR_RGB[a.color]]);
          }
        }
      }
      const byText = new Set<string>();
      for (const q of videoQuestions(video)) {
        expect(byText.has(q.question), q.question).toBe(false);
        byText.add(q.question);
        expect(q.frame).toBeGreaterThanOrEqual(1);
        expect(q.frame).toBeLessThanOrEqual(8);
        if (q.kind === 'first-appear') {
          const [, color, shape] = /the (\w+) (\w+) first/.exec(q.question)!;
          const k = Number(q.answer);
          expect(k).toBe(q.frame);
          // Absent (by pixels) in every earlier frame; present in frame k.
          for (let f = 1; f < k; f++) expect(videoFrame(video, f).objects.some((o) => o.color === color && o.shape === shape)).toBe(false);
          expect(cellColorFromPixels(frames[k - 1]!, 64, q.cells[0]!)).toBe(color);
        } else {
          checkAgainstPixels(q, frames[q.frame! - 1]!, 64, videoFrame(video, q.frame!));
        }
        if (q.kind === 'frame-shape-color') {
          const shape = /the (\w+) in/.exec(q.question)![1];
          expect(videoFrame(video, q.frame!).objects.filter((o) => o.shape === shape)).toHaveLength(1);
        }
      }
    }
  });
});

describe('world: conversations', () => {
  it('turns ask about different regions: region turns never reuse a cell; at most one global turn; 1–5 turns', () => {
    const convs = makeConversations(11, 400, { videoFraction: 0.3 });
    const lengths = new Set<number>();
    for (const c of convs) {
      lengths.add(c.turns.length);
      expect(c.turns.length).toBeGreaterThanOrEqual(1);
      expect(c.turns.length).toBeLessThanOrEqual(5);
      const regionCells = c.turns.filter((t) => t.scope === 'region').flatMap((t) => t.cells);
      expect(new Set(regionCells).size).toBe(regionCells.length);
      expect(c.turns.filter((t) => t.scope === 'global').length).toBeLessThanOrEqual(1);
      expect(new Set(c.turns.map((t) => t.question)).size).toBe(c.turns.length);
      // Each turn is one of the media's questions, with its answer.
      const all = c.media.kind === 'image' ? imageQuestions(c.media.scene) : videoQuestions(c.media.video);
      for (const t of c.turns) expect(all).toContainEqual(t);
      if (c.media.kind === 'video') for (const t of c.turns) expect(t.frame).toBeDefined();
      // Regenerated from its own seed.
      expect(makeConversation(c.seed, { videoFraction: 0.3 }, c.id, c.split)).toEqual(c);
    }
    expect([...lengths].sort()).toEqual([1, 2, 3, 4, 5]);
    const kinds = new Set(convs.flatMap((c) => c.turns.map((t) => t.kind)));
    expect(kinds.size).toBe(11);
    expect(convs.filter((c) => c.media.kind === 'video').length).toBeGreaterThan(80);
    // Consecutive region turns tend to be far apart (not neighbouring cells).
    let pairs = 0;
    let far = 0;
    for (const c of convs) {
      const cells = c.turns.filter((t) => t.scope === 'region').map((t) => t.cells[0]!);
      for (let i = 1; i < cells.length; i++) {
        pairs++;
        if (!neighbours(cells[i - 1]!).includes(cells[i]!)) far++;
      }
    }
    expect(far / pairs).toBeGreaterThan(0.9);
  });

  it('train and held-out splits never share a scene, even when layouts are few', () => {
    const { train, heldOut } = makeSplits(5, { train: 400, heldOut: 200 }, { videoFraction: 0.3 });
    const trainHashes = new Set(train.map((c) => c.hash));
    expect(heldOut.every((c) => !trainHashes.has(c.hash))).toBe(true);
    expect(heldOut.every((c) => c.split === 'heldout' && c.id.startsWith('heldout-'))).toBe(true);
    // One object per scene: 540 layouts, so the held-out split must skip many train layouts.
    const few = makeSplits(5, { train: 300, heldOut: 100 }, { scene: { minObjects: 1, maxObjects: 1 } });
    const fewTrain = new Set(few.train.map((c) => c.hash));
    expect(fewTrain.size).toBeGreaterThan(200);
    expect(few.heldOut.filter((c) => fewTrain.has(c.hash))).toEqual([]);
    // And it fails loudly when no unseen layout is left.
    expect(() => makeSplits(1, { train: 50, heldOut: 10 }, { scene: { minObjects: 0, maxObjects: 0 } })).toThrow(/too few distinct scenes/);
  });
});

describe('world: dataset', () => {
  it('writes readable PNGs of the right size, JSONL that points at them, and meta; the same seed writes the same bytes', async () => {
    const dir = tempDir('world-ds');
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    const options = { seed: 9, count: 24, heldOut: 8, videoFraction: 0.4, frames: 4, imageSize: 48 };
    const summary = await writeDataset(a, options);
    await writeDataset(b, options);
    const lines = readDatasetLines(a);
    const meta = readDatasetMeta(a);
    expect(summary.meta).toEqual(meta);
    expect(lines).toHaveLength(32);
    expect(lines.filter((l) => l.split === 'train')).toHaveLength(24);
    expect(meta.counts).toMatchObject({ train: 24, heldout: 8, conversations: 32, turns: lines.reduce((n, l) => n + l.turns.length, 0) });
    expect(meta.counts.images + meta.counts.videos).toBe(32);
    expect(meta.counts.frameFiles).toBe(4 * meta.counts.videos);
    expect(meta.counts.videos).toBeGreaterThan(0);
    expect(meta.imageSize).toBe(48);
    const answers = new Set(meta.vocabulary.answers);
    for (const l of lines) for (const t of l.turns) expect(answers.has(t.answer), t.answer).toBe(true);

    for (const l of lines) {
      if (l.media.kind === 'image') expect(l.media.paths).toEqual([`images/${l.id}.png`]);
      else expect(l.media.paths).toEqual([1, 2, 3, 4].map((k) => `frames/${l.id}_${k}.png`));
      const scenes =
        'scene' in l.truth ? [l.truth.scene] : [1, 2, 3, 4].map((k) => videoFrame((l.truth as { video: Parameters<typeof videoFrame>[0] }).video, k));
      for (let i = 0; i < l.media.paths.length; i++) {
        const png = await readRgb(path.join(a, l.media.paths[i]!));
        expect([png.width, png.height]).toEqual([48, 48]);
        // Lossless: the file holds exactly the rendered pixels.
        expect(sha(png.pixels)).toBe(sha(renderScene(scenes[i]!, 48)));
      }
    }
    const trainHashes = new Set(lines.filter((l) => l.split === 'train').map((l) => l.hash));
    expect(lines.filter((l) => l.split === 'heldout' && trainHashes.has(l.hash))).toEqual([]);

    const files = (d: string) => fs.readdirSync(d, { recursive: true }).map(String).sort();
    expect(files(b)).toEqual(files(a));
    for (const f of files(a)) {
      if (fs.statSync(path.join(a, f)).isFile()) expect(sha(fs.readFileSync(path.join(b, f))), f).toBe(sha(fs.readFileSync(path.join(a, f))));
    }
    // The lines are the generator's conversations.
    const again = makeSplits(9, { train: 24, heldOut: 8 }, { videoFraction: 0.4, frames: 4 });
    expect(lines.map((l) => l.turns)).toEqual([...again.train, ...again.heldOut].map((c) => c.turns));

    await expect(writeDataset(a, options)).rejects.toThrow(/already holds a dataset/);
    const replaced = await writeDataset(a, { ...options, count: 3, heldOut: 0, overwrite: true });
    expect(replaced.meta.counts.conversations).toBe(3);
    expect(fs.readdirSync(path.join(a, 'images')).length + fs.readdirSync(path.join(a, 'frames')).length / 4).toBe(3);
  });

  it('`sparsevila dataset` writes a small dataset, documents itself, and rejects bad options', async () => {
    const bin = path.join(REPO_ROOT, 'bin', 'sparsevila.js');
    const run = async (args: string[]) => {
      try {
        const { stdout, stderr } = await promisify(execFile)('node', [bin, ...args]);
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const out = path.join(tempDir('world-cli'), 'ds');
    const r = await run(['dataset', '--out', out, '--seed', '3', '--count', '6', '--heldout', '2', '--videos', '0.5', '--frames', '3', '--image-size', '32']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote 8 conversations \(6 train, 2 held-out/);
    const meta = readDatasetMeta(out);
    expect(meta).toMatchObject({ seed: 3, imageSize: 32, frames: 3, videoFraction: 0.5, counts: { train: 6, heldout: 2 } });
    const lines = readDatasetLines(out);
    expect(lines).toHaveLength(8);
    for (const l of lines) {
      for (const p of l.media.paths) {
        const png = await readRgb(path.join(out, p));
        expect([png.width, png.height]).toEqual([32, 32]);
      }
    }
    expect((await run(['dataset', '--out', out, '--count', '1'])).code).toBe(2);
    expect((await run(['dataset', '--out', out, '--count', '1', '--force'])).code).toBe(0);
    const help = await run(['dataset', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('conversations.jsonl');
    expect((await run(['--help'])).stdout).toMatch(/dataset/);
    const bad = await run(['dataset', '--out', out, '--count', '2', '--videos', '1.5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--videos');
    expect((await run(['dataset', '--count', '2'])).stderr).toContain('--out');
  });
});
