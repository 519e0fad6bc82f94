/**
 * Scenes of the synthetic visual world: a background (plain or a low-contrast texture) and 2–5 objects,
 * each a shape of a named color and size in one cell of a 3×3 grid, at most one object per cell.
 * Everything here is plain data, generated deterministically from a seed.
 */
import { hashText, makeRng, type Rng } from './random.js';

export const SHAPES = ['circle', 'square', 'triangle', 'cross', 'ring'] as const;
export type Shape = (typeof SHAPES)[number];

export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export type Color = (typeof COLORS)[number];

/** The objects' colors in sRGB: saturated and far apart, so each reads unambiguously at 64×64. */
export const COLOR_RGB: Readonly<Record<Color, readonly [number, number, number]>> = {
  red: [220, 30, 35],
  green: [30, 175, 60],
  blue: [35, 80, 230],
  yellow: [245, 220, 30],
  purple: [150, 50, 200],
  orange: [250, 135, 20],
};

export const SIZES = ['small', 'large'] as const;
export type Size = (typeof SIZES)[number];

/** Grid cells in reading order (row-major, top row first). Also the answers to "where is …" questions. */
export const CELLS = ['top-left', 'top', 'top-right', 'left', 'center', 'right', 'bottom-left', 'bottom', 'bottom-right'] as const;
export type Cell = (typeof CELLS)[number];

/** How a cell is named inside a question ("What shape is at the top left?"). */
export const CELL_PHRASE: Readonly<Record<Cell, string>> = {
  'top-left': 'top left',
  top: 'top middle',
  'top-right': 'top right',
  left: 'middle left',
  center: 'center',
  right: 'middle right',
  'bottom-left': 'bottom left',
  bottom: 'bottom middle',
  'bottom-right': 'bottom right',
};

export function cellRow(cell: Cell): number {
  return Math.floor(CELLS.indexOf(cell) / 3);
}
export function cellCol(cell: Cell): number {
  return CELLS.indexOf(cell) % 3;
}
export function cellAt(row: number, col: number): Cell {
  return CELLS[row * 3 + col]!;
}
/** The cells sharing an edge with `cell` (2–4 of them). */
export function neighbours(cell: Cell): Cell[] {
  const r = cellRow(cell);
  const c = cellCol(cell);
  const out: Cell[] = [];
  for (const [dr, dc] of [
    [-1, 0],
    [1, 0],
    [0, -1],
    [0, 1],
  ] as const) {
    const rr = r + dr;
    const cc = c + dc;
    if (rr >= 0 && rr < 3 && cc >= 0 && cc < 3) out.push(cellAt(rr, cc));
  }
  return out;
}

export const BACKGROUND_COLORS = ['gray', 'charcoal', 'slate', 'taupe'] as const;
export type BackgroundColor = (typeof BACKGROUND_COLORS)[number];
/** Neutral, mid-to-dark background tones that every object color stands out from. */
export const BACKGROUND_RGB: Readonly<Record<BackgroundColor, readonly [number, number, number]>> = {
  gray: [118, 118, 118],
  charcoal: [46, 46, 52],
  slate: [70, 82, 98],
  taupe: [112, 100, 88],
};

export const TEXTURES = ['plain', 'stripes', 'checker', 'noise'] as const;
export type Texture = (typeof TEXTURES)[number];

export interface Background {
  color: BackgroundColor;
  texture: Texture;
  /** Stripes: 0 horizontal, 90 vertical, 45 / 135 diagonal. Unused otherwise (0). */
  angle: 0 | 45 | 90 | 135;
  /** Stripe or checker period as a fraction of the image side (size-independent). Unused otherwise (0). */
  period: number;
  /** Texture contrast: ± this much added to each channel (low: 8–16). 0 for plain. */
  amplitude: number;
  /** Seeds the noise texture. */
  seed: number;
}

export interface SceneObject {
  shape: Shape;
  color: Color;
  size: Size;
  cell: Cell;
  /** Where the shape's centre sits relative to the cell centre, in fractions of a cell side ([dx, dy]). */
  offset: readonly [number, number];
}

export interface Scene {
  background: Background;
  objects: SceneObject[];
}

export interface SceneOptions {
  /** Object count range (default 2–5; at most 9). */
  minObjects?: number;
  maxObjects?: number;
  /** Fraction of scenes on a plain background (default 0.4); the rest get a texture. */
  plainFraction?: number;
  /** Jitter the shapes inside their cells (default true). */
  jitter?: boolean;
}

/** A shape's width (and height) as a fraction of its cell's side: large 76%, small 42%. */
export const SIZE_EXTENT: Readonly<Record<Size, number>> = { large: 0.76, small: 0.42 };

/** Largest centre offset (fraction of the cell) that keeps a shape of this size inside its cell with a margin. */
export function maxOffset(size: Size): number {
  return Math.max(0, (1 - SIZE_EXTENT[size]) / 2 - 0.05);
}

export function randomBackground(rng: Rng, plainFraction = 0.4): Background {
  const color = rng.pick(BACKGROUND_COLORS);
  if (rng.chance(plainFraction)) return { color, texture: 'plain', angle: 0, period: 0, amplitude: 0, seed: 0 };
  const texture = rng.pick(['stripes', 'checker', 'noise'] as const);
  const amplitude = rng.int(8, 16);
  const seed = rng.int(0, 0x7fffffff);
  if (texture === 'noise') return { color, texture, angle: 0, period: 0, amplitude, seed };
  const angle = texture === 'stripes' ? rng.pick([0, 45, 90, 135] as const) : 0;
  const period = rng.pick([1 / 16, 1 / 12, 1 / 8]);
  return { color, texture, angle, period, amplitude, seed };
}

export function randomObject(rng: Rng, cell: Cell, jitter = true, fixed: Partial<Pick<SceneObject, 'shape' | 'color' | 'size'>> = {}): SceneObject {
  const shape = fixed.shape ?? rng.pick(SHAPES);
  const color = fixed.color ?? rng.pick(COLORS);
  const size = fixed.size ?? rng.pick(SIZES);
  const m = jitter ? maxOffset(size) : 0;
  const offset = [round3((rng.next() * 2 - 1) * m), round3((rng.next() * 2 - 1) * m)] as const;
  return { shape, color, size, cell, offset };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A random scene. Objects come in reading order of their cells. */
export function randomScene(rng: Rng, options: SceneOptions = {}): Scene {
  const lo = options.minObjects ?? 2;
  const hi = options.maxObjects ?? 5;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi <= 9 && lo <= hi)) {
    throw new RangeError(`object count range must lie in 0–9, got ${lo}–${hi}`);
  }
  const background = randomBackground(rng, options.plainFraction);
  const count = rng.int(lo, hi);
  const cells = rng
    .shuffle(CELLS)
    .slice(0, count)
    .sort((a, b) => CELLS.indexOf(a) - CELLS.indexOf(b));
  const objects = cells.map((cell) => randomObject(rng, cell, options.jitter ?? true));
  return { background, objects };
}

/** The scene a seed names. */
export function makeScene(seed: number, options: SceneOptions = {}): Scene {
  return randomScene(makeRng(seed), options);
}

/** The object in a cell, if any. */
export function objectAt(scene: Scene, cell: Cell): SceneObject | undefined {
  return scene.objects.find((o) => o.cell === cell);
}

/**
 * The scene's layout — which shape, color and size sits in which cell — as a canonical string. Two scenes
 * with the same layout differ only in background and jitter: the same scene for a held-out split.
 */
export function layoutKey(scene: Scene): string {
  return scene.objects
    .slice()
    .sort((a, b) => CELLS.indexOf(a.cell) - CELLS.indexOf(b.cell))
    .map((o) => `${o.cell}:${o.size} ${o.color} ${o.shape}`)
    .join(',');
}

/** A short hash of the layout (see `layoutKey`). */
export function sceneHash(scene: Scene): string {
  return hashText('scene|' + layoutKey(scene));
}

/** Throws if the scene breaks the world's rules (unknown values, two objects in a cell, shapes leaving their cell). */
export function validateScene(scene: Scene): void {
  const seen = new Set<Cell>();
  for (const o of scene.objects) {
    if (!SHAPES.includes(o.shape)) throw new Error(`unknown shape '${o.shape}'`);
    if (!COLORS.includes(o.color)) throw new Error(`unknown color '${o.color}'`);
    if (!SIZES.includes(o.size)) throw new Error(`unknown size '${o.size}'`);
    if (!CELLS.includes(o.cell)) throw new Error(`unknown cell '${o.cell}'`);
    if (seen.has(o.cell)) throw new Error(`two objects in cell ${o.cell}`);
    seen.add(o.cell);
    const m = maxOffset(o.size) + 1e-9;
    if (Math.abs(o.offset[0]) > m || Math.abs(o.offset[1]) > m) throw new Error(`object in ${o.cell} offset beyond its cell`);
  }
}
