/**
 * Rasterising scenes to RGB pixels, in pure TypeScript (no canvas): the background texture, then each shape
 * with 4×4 supersampled anti-aliasing. Geometry is in fractions of the image, so a scene looks the same at
 * any size; 64×64 is the world's default.
 */
import { BACKGROUND_RGB, COLOR_RGB, SIZE_EXTENT, cellCol, cellRow, type Background, type Cell, type Scene, type SceneObject, type Shape } from './scene.js';
import { mix32 } from './random.js';

export const DEFAULT_IMAGE_SIZE = 64;

/** An RGB raster: `pixels` holds height × width × 3 bytes, row-major. */
export interface RgbRaster {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/**
 * Whether the point (u, v) lies inside a shape drawn in the square [-1, 1]², v pointing down. The shapes
 * are sized to read as similar in area: the circle and ring fill the square's disc, the square ±0.82, the
 * triangle points up, the cross is a plus sign with arms 0.6 wide.
 */
export function insideShape(shape: Shape, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 0.82 && Math.abs(v) <= 0.82;
    case 'triangle':
      return v <= 0.85 && v >= -1 && Math.abs(u) <= (v + 1) / 1.85;
    case 'cross':
      return (Math.abs(u) <= 0.3 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.3 && Math.abs(u) <= 1);
    case 'ring': {
      const d = u * u + v * v;
      return d <= 1 && d >= 0.5 * 0.5;
    }
  }
}

/** A point well inside each shape (in the [-1, 1]² frame): where a pixel shows the shape's own color. */
export const SHAPE_SAMPLE_POINT: Readonly<Record<Shape, readonly [number, number]>> = {
  circle: [0, 0],
  square: [0, 0],
  triangle: [0, 0.3],
  cross: [0, 0],
  ring: [0.75, 0],
};

/** A cell's box in pixels: [x0, y0, x1, y1) as floats. */
export function cellBox(cell: Cell, size = DEFAULT_IMAGE_SIZE): [number, number, number, number] {
  const c = size / 3;
  const x0 = cellCol(cell) * c;
  const y0 = cellRow(cell) * c;
  return [x0, y0, x0 + c, y0 + c];
}

/** The object's centre in pixel coordinates (continuous; pixel (x, y) covers [x, x+1) × [y, y+1)). */
export function objectCenter(o: SceneObject, size = DEFAULT_IMAGE_SIZE): [number, number] {
  const c = size / 3;
  return [(cellCol(o.cell) + 0.5 + o.offset[0]) * c, (cellRow(o.cell) + 0.5 + o.offset[1]) * c];
}

/** Half the object's width in pixels. */
export function objectRadius(o: SceneObject, size = DEFAULT_IMAGE_SIZE): number {
  return (SIZE_EXTENT[o.size] * size) / 6;
}

/** The pixel (integer x, y) at the object's sample point: it shows the object's color. */
export function objectSamplePixel(o: SceneObject, size = DEFAULT_IMAGE_SIZE): [number, number] {
  const [cx, cy] = objectCenter(o, size);
  const r = objectRadius(o, size);
  const [su, sv] = SHAPE_SAMPLE_POINT[o.shape];
  return [Math.min(size - 1, Math.floor(cx + su * r)), Math.min(size - 1, Math.floor(cy + sv * r))];
}

/** The background alone. */
export function renderBackground(bg: Background, size = DEFAULT_IMAGE_SIZE, out = new Uint8Array(size * size * 3)): Uint8Array {
  const [r0, g0, b0] = BACKGROUND_RGB[bg.color];
  const a = bg.amplitude;
  const noiseCells = 32;
  for (let y = 0; y < size; y++) {
    const fy = (y + 0.5) / size;
    for (let x = 0; x < size; x++) {
      const fx = (x + 0.5) / size;
      let d = 0;
      if (bg.texture === 'stripes') {
        const t = bg.angle === 0 ? fy : bg.angle === 90 ? fx : bg.angle === 45 ? (fx + fy) / Math.SQRT2 : (fx - fy + 1) / Math.SQRT2;
        d = Math.floor(t / bg.period) % 2 === 0 ? a : -a;
      } else if (bg.texture === 'checker') {
        d = (Math.floor(fx / bg.period) + Math.floor(fy / bg.period)) % 2 === 0 ? a : -a;
      } else if (bg.texture === 'noise') {
        const i = Math.floor(fx * noiseCells);
        const j = Math.floor(fy * noiseCells);
        d = Math.round((mix32(bg.seed, i, j) / 0xffffffff) * 2 * a - a);
      }
      const p = (y * size + x) * 3;
      out[p] = clamp(r0 + d);
      out[p + 1] = clamp(g0 + d);
      out[p + 2] = clamp(b0 + d);
    }
  }
  return out;
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

const SUB = 4;

/** Draws one object over `pixels` (size × size × 3), blending edge pixels by coverage. */
export function drawObject(pixels: Uint8Array, o: SceneObject, size = DEFAULT_IMAGE_SIZE): void {
  const [cx, cy] = objectCenter(o, size);
  const r = objectRadius(o, size);
  const [cr, cg, cb] = COLOR_RGB[o.color];
  const x0 = Math.max(0, Math.floor(cx - r));
  const x1 = Math.min(size - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r));
  const y1 = Math.min(size - 1, Math.ceil(cy + r));
  const total = SUB * SUB;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let hits = 0;
      for (let sy = 0; sy < SUB; sy++) {
        const v = (y + (sy + 0.5) / SUB - cy) / r;
        for (let sx = 0; sx < SUB; sx++) {
          if (insideShape(o.shape, (x + (sx + 0.5) / SUB - cx) / r, v)) hits++;
        }
      }
      if (hits === 0) continue;
      const p = (y * size + x) * 3;
      if (hits === total) {
        pixels[p] = cr;
        pixels[p + 1] = cg;
        pixels[p + 2] = cb;
      } else {
        const t = hits / total;
        pixels[p] = Math.round(pixels[p]! * (1 - t) + cr * t);
        pixels[p + 1] = Math.round(pixels[p + 1]! * (1 - t) + cg * t);
        pixels[p + 2] = Math.round(pixels[p + 2]! * (1 - t) + cb * t);
      }
    }
  }
}

/** The scene as RGB bytes, size × size × 3 (default 64 × 64). */
export function renderScene(scene: Scene, size = DEFAULT_IMAGE_SIZE): Uint8Array {
  if (!(Number.isInteger(size) && size >= 3)) throw new RangeError(`image size must be an integer ≥ 3, got ${size}`);
  const pixels = renderBackground(scene.background, size);
  for (const o of scene.objects) drawObject(pixels, o, size);
  return pixels;
}

/** The scene as an `RgbRaster`. */
export function renderRaster(scene: Scene, size = DEFAULT_IMAGE_SIZE): RgbRaster {
  return { width: size, height: size, pixels: renderScene(scene, size) };
}
