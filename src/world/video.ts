/**
 * Short videos of the synthetic world: one background, a cast of 2–5 objects (each a distinct color and
 * shape, so "the red circle" names one object over the whole video), each visible for one interval of
 * frames, moving to neighbouring cells now and then. Frames are numbered from 1, as the questions are.
 */
import { hashText, makeRng, type Rng } from './random.js';
import {
  CELLS,
  COLORS,
  SHAPES,
  layoutKey,
  neighbours,
  randomBackground,
  randomObject,
  type Background,
  type Cell,
  type Color,
  type Scene,
  type SceneObject,
  type Shape,
  type Size,
} from './scene.js';
import { DEFAULT_IMAGE_SIZE, renderScene } from './render.js';

export const DEFAULT_FRAMES = 8;

export interface VideoActor {
  shape: Shape;
  color: Color;
  size: Size;
  /** Offset of the shape inside whichever cell it occupies (fractions of a cell). */
  offset: readonly [number, number];
  /** The first frame (1-based) in which it is visible. */
  firstFrame: number;
  /** The last frame (1-based) in which it is visible; it has vanished from lastFrame + 1 on. */
  lastFrame: number;
  /** Its cell in each frame (index 0 is frame 1), null where it is not visible. */
  cells: (Cell | null)[];
}

export interface Video {
  background: Background;
  /** Number of frames. */
  frames: number;
  actors: VideoActor[];
}

export type VideoEvent =
  | { frame: number; actor: number; kind: 'appear'; cell: Cell }
  | { frame: number; actor: number; kind: 'vanish'; from: Cell }
  | { frame: number; actor: number; kind: 'move'; from: Cell; to: Cell };

export interface VideoOptions {
  /** Frame count (default 8, at least 2). */
  frames?: number;
  /** Cast size range (default 2–5). */
  minObjects?: number;
  maxObjects?: number;
  /** Chance that an object visible in two consecutive frames changes cell between them (default 0.3). */
  moveProbability?: number;
  plainFraction?: number;
  jitter?: boolean;
}

/** A random video: every video has at least one move, and an object appearing after frame 1 or vanishing. */
export function randomVideo(rng: Rng, options: VideoOptions = {}): Video {
  const frames = options.frames ?? DEFAULT_FRAMES;
  if (!(Number.isInteger(frames) && frames >= 2 && frames <= 64)) throw new RangeError(`frames must be an integer in 2–64, got ${frames}`);
  const lo = options.minObjects ?? 2;
  const hi = options.maxObjects ?? 5;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && hi <= 8 && lo <= hi))
    throw new RangeError(`object count range must lie in 1–8, got ${lo}–${hi}`);
  const pMove = options.moveProbability ?? 0.3;
  const background = randomBackground(rng, options.plainFraction);
  for (;;) {
    const video = tryVideo(rng, background, frames, rng.int(lo, hi), pMove, options.jitter ?? true);
    const events = videoEvents(video);
    if (events.some((e) => e.kind === 'move') && events.some((e) => e.kind === 'vanish' || (e.kind === 'appear' && e.frame > 1))) return video;
  }
}

function tryVideo(rng: Rng, background: Background, frames: number, count: number, pMove: number, jitter: boolean): Video {
  const identities = rng.shuffle(SHAPES.flatMap((shape) => COLORS.map((color) => ({ shape, color })))).slice(0, count);
  const actors: VideoActor[] = identities.map((id, i) => {
    const o = randomObject(rng, 'center', jitter, id);
    // The first actor is there from the start, so frame 1 is never empty.
    const firstFrame = i === 0 || rng.chance(0.5) ? 1 : rng.int(2, frames);
    const lastFrame = firstFrame < frames && rng.chance(0.3) ? rng.int(firstFrame, frames - 1) : frames;
    return { shape: o.shape, color: o.color, size: o.size, offset: o.offset, firstFrame, lastFrame, cells: new Array<Cell | null>(frames).fill(null) };
  });
  for (let f = 0; f < frames; f++) {
    const claimed = new Set<Cell>();
    const continuing = actors.filter((a) => f > 0 && a.cells[f - 1] !== null && f + 1 <= a.lastFrame);
    for (const a of continuing) claimed.add(a.cells[f - 1]!);
    for (const a of continuing) {
      const from = a.cells[f - 1]!;
      a.cells[f] = from;
      if (!rng.chance(pMove)) continue;
      const free = neighbours(from).filter((c) => !claimed.has(c));
      if (free.length === 0) continue;
      const to = rng.pick(free);
      claimed.delete(from);
      claimed.add(to);
      a.cells[f] = to;
    }
    for (const a of actors) {
      if (a.firstFrame !== f + 1) continue;
      const cell = rng.pick(CELLS.filter((c) => !claimed.has(c)));
      claimed.add(cell);
      a.cells[f] = cell;
    }
  }
  return { background, frames, actors };
}

/** The video a seed names. */
export function makeVideo(seed: number, options: VideoOptions = {}): Video {
  return randomVideo(makeRng(seed), options);
}

/** Whether the actor is visible in frame k (1-based). */
export function visibleIn(actor: VideoActor, frame: number): boolean {
  return actor.cells[frame - 1] != null;
}

/** Frame k (1-based) as a scene: the visible actors in their cells, in reading order. */
export function videoFrame(video: Video, frame: number): Scene {
  if (!(Number.isInteger(frame) && frame >= 1 && frame <= video.frames)) throw new RangeError(`frame must be 1–${video.frames}, got ${frame}`);
  const objects: SceneObject[] = [];
  for (const a of video.actors) {
    const cell = a.cells[frame - 1];
    if (cell) objects.push({ shape: a.shape, color: a.color, size: a.size, cell, offset: a.offset });
  }
  objects.sort((x, y) => CELLS.indexOf(x.cell) - CELLS.indexOf(y.cell));
  return { background: video.background, objects };
}

/** Every frame as a scene (index 0 is frame 1). */
export function videoFrames(video: Video): Scene[] {
  return Array.from({ length: video.frames }, (_, i) => videoFrame(video, i + 1));
}

/** What changes from frame to frame: appearances (frame 1 included), vanishings and moves, in frame order. */
export function videoEvents(video: Video): VideoEvent[] {
  const events: VideoEvent[] = [];
  for (let f = 1; f <= video.frames; f++) {
    video.actors.forEach((a, actor) => {
      const now = a.cells[f - 1] ?? null;
      const before = f > 1 ? (a.cells[f - 2] ?? null) : null;
      if (now && !before) events.push({ frame: f, actor, kind: 'appear', cell: now });
      else if (!now && before) events.push({ frame: f, actor, kind: 'vanish', from: before });
      else if (now && before && now !== before) events.push({ frame: f, actor, kind: 'move', from: before, to: now });
    });
  }
  return events;
}

/** Every frame rendered (RGB, size × size × 3 each). */
export function renderVideo(video: Video, size = DEFAULT_IMAGE_SIZE): Uint8Array[] {
  return videoFrames(video).map((scene) => renderScene(scene, size));
}

/** The frames' layouts in order, hashed: two videos with the same key show the same objects doing the same things. */
export function videoHash(video: Video): string {
  return hashText('video|' + videoFrames(video).map(layoutKey).join('/'));
}

/** Throws if the video breaks the world's rules (identities repeated, cells shared, jumps, gaps in visibility). */
export function validateVideo(video: Video): void {
  const ids = new Set(video.actors.map((a) => `${a.color} ${a.shape}`));
  if (ids.size !== video.actors.length) throw new Error('two actors share a color and shape');
  for (const a of video.actors) {
    if (a.cells.length !== video.frames) throw new Error(`actor ${a.color} ${a.shape} has ${a.cells.length} cells for ${video.frames} frames`);
    for (let f = 1; f <= video.frames; f++) {
      const visible = f >= a.firstFrame && f <= a.lastFrame;
      if (visible !== (a.cells[f - 1] != null)) throw new Error(`actor ${a.color} ${a.shape} visibility wrong in frame ${f}`);
      const prev = a.cells[f - 2];
      const cur = a.cells[f - 1];
      if (f > 1 && prev && cur && prev !== cur && !neighbours(prev).includes(cur))
        throw new Error(`actor ${a.color} ${a.shape} jumps ${prev}→${cur} in frame ${f}`);
    }
  }
  for (let f = 1; f <= video.frames; f++) {
    const cells = video.actors.map((a) => a.cells[f - 1]).filter((c) => c != null);
    if (new Set(cells).size !== cells.length) throw new Error(`two actors share a cell in frame ${f}`);
  }
}
