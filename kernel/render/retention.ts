/**
 * Retention map: per image, the patch grid drawn over what the vision tower saw, with query-agnostic
 * salience as heat, the tokens pruning dropped hatched, and the tokens one layer retrieved at a turn
 * outlined (docs/design.md, "The SparseVILA path"). It draws what the profiler page draws for a turn and
 * layer (profiler-ui/web/views/retention-frame.js and legend.js): the same colours, the same √-scaled
 * salience over the run's range, the same hatching, one legend. Pure: data in, one SVG string out, plus
 * the tokens' boxes so a raster copy can carry the same hover text (render/figure.ts).
 *
 * Classes the markup carries (tests and stylesheets rely on them): `retention-image`, one group per image
 * with its grid as `data-rows` / `data-cols`; `patch kept`, `patch pruned`, `patch candidate` (pruning not
 * decided yet) — one element per LLM image token — and `retrieved`, one outline per token the layer retrieved.
 */
import { attrs, esc, heat, num, svgRoot } from './markup.js';
import type { Figure, HotSpot } from './figure.js';
import { sourceLabel } from '../../profiler-ui/web/data/labels.js';

/** An image to draw under the grid: a data: URL (or any href) and its size. */
export interface RetentionBackground {
  href: string;
  width: number;
  height: number;
}

export interface RetentionPanel {
  label?: string;
  /** The patch grid the image's tokens lie on (row-major), after `leading` non-patch tokens. */
  grid: { rows: number; cols: number };
  /** Leading tokens that are not patches (CLIP's CLS under the `full` strategy), drawn in a strip above. */
  leading: number;
  /** One salience score per LLM image token. */
  salience?: ArrayLike<number>;
  /** Kept token indices; undefined when pruning has not been decided (every token is a candidate). */
  kept?: readonly number[];
  /** The tokens of this image that the map's layer retrieved; undefined when the turn did not retrieve. */
  retrieved?: readonly number[];
  background?: RetentionBackground;
}

export interface RetentionMapData {
  title?: string;
  images: RetentionPanel[];
  /** The layer whose retrieval set `retrieved` holds (the legend names it). */
  layer?: number;
  /** The salience colour scale's domain; default the panels' own min and max (the page uses the run's). */
  salienceRange?: { min: number; max: number };
  /** What the salience scores are (a salience event's `source`), for the legend. */
  salienceSource?: string;
}

export interface RetentionRenderOptions {
  /** Width of one image panel in px, and the longer side of its picture (default 256; smaller with many images). */
  size?: number;
  /** Panels per row (default: as many as fit in `maxWidth`). */
  columns?: number;
  /** Wrap panels into rows past this width in px (default 1040). */
  maxWidth?: number;
  /** Opacity of the salience heat over the picture (default 0.55, the page's; 1 without a picture). */
  heatOpacity?: number;
}

/** The page's colours (profiler-ui/web/views/retention-frame.js, COLOURS). */
const COLOURS = { retrieved: '#00d5ff', prunedFill: '#0f172a', hatch: '#e2e8f0', grid: '#ffffff', leadingKept: '#64748b' };
const TITLE = 22;
const LABEL = 16;
const STRIP = 22;
const SUMMARY = 18;
const GAP = 16;

let uid = 0;

export function renderRetentionSvg(data: RetentionMapData, options: RetentionRenderOptions = {}): string {
  return renderRetention(data, options).svg;
}

/** The map as SVG with its size, a one-line description, and each token's box and hover text. */
export function renderRetention(data: RetentionMapData, options: RetentionRenderOptions = {}): Figure {
  const n = data.images.length;
  const size = options.size ?? (n <= 4 ? 256 : n <= 16 ? 160 : 112);
  const maxWidth = options.maxWidth ?? 1040;
  const columns = Math.max(1, Math.min(n, options.columns ?? Math.floor((maxWidth + GAP) / (size + GAP))));
  const scale = salienceScale(data);
  // Unique per map: two maps inline in one page must not share pattern ids.
  const id = `rm${++uid}${Math.random().toString(36).slice(2, 6)}`;
  const top = data.title ? TITLE : 0;
  const spots: HotSpot[] = [];
  const panels = data.images.map((p, i) => panel(p, i, { size, scale, layer: data.layer, id: `${id}-${i}`, heatOpacity: options.heatOpacity }));
  let body = data.title ? `<text${attrs({ x: 0, y: 14, 'font-size': 13, 'font-weight': 600 })}>${esc(data.title)}</text>` : '';
  let y = top;
  for (let row = 0; row * columns < n; row++) {
    const inRow = panels.slice(row * columns, (row + 1) * columns);
    inRow.forEach((p, k) => {
      const i = row * columns + k;
      const x = k * (size + GAP);
      body += `<g${attrs({ class: 'retention-image', 'data-image': i, 'data-rows': data.images[i]!.grid.rows, 'data-cols': data.images[i]!.grid.cols, transform: `translate(${num(x)},${num(y)})` })}>${p.body}</g>`;
      for (const s of p.spots) spots.push({ ...s, x: s.x + x, y: s.y + y });
    });
    y += Math.max(0, ...inRow.map((p) => p.height)) + (row * columns + columns < n ? GAP : 0);
  }
  const anyKept = data.images.some((p) => p.kept);
  const anyRetrieved = data.images.some((p) => p.retrieved);
  const panelsWidth = Math.max(1, Math.min(n, columns)) * size + Math.max(0, Math.min(n, columns) - 1) * GAP;
  const withLegend = scale !== null || anyKept || anyRetrieved;
  const drawn = withLegend ? legend(`${id}-legend`, scale, data.salienceSource, anyKept, anyRetrieved ? (data.layer ?? 0) : undefined, panelsWidth) : null;
  if (drawn) body += `<g${attrs({ class: 'retention-legend', transform: `translate(0,${num(y + 6)})`, 'font-size': 10.5, fill: '#334155' })}>${drawn.body}</g>`;
  // Room for the title (about 7 px per character at 13 px) even over one small panel.
  const width = Math.max(panelsWidth, drawn?.width ?? 0, data.title ? data.title.length * 7 + 8 : 0);
  const height = y + (drawn ? drawn.height + 6 : 0);
  return { svg: svgRoot(width, height, body, { class: 'retention-map' }), width, height, alt: describe(data), spots };
}

/** √-scaled [0, 1] position of a score on the map's salience domain (the page's d3.scaleSequentialSqrt), or null without salience. */
type Scale = { lo: number; hi: number; at: (v: number) => number } | null;

function salienceScale(data: RetentionMapData): Scale {
  let min = data.salienceRange?.min ?? Infinity;
  let max = data.salienceRange?.max ?? -Infinity;
  const withScores = data.images.filter((p) => p.salience && p.salience.length);
  if (!withScores.length) return null;
  if (!data.salienceRange) {
    for (const p of withScores) {
      for (let t = 0; t < p.salience!.length; t++) {
        min = Math.min(min, p.salience![t]!);
        max = Math.max(max, p.salience![t]!);
      }
    }
  }
  // As retention-frame.js's salienceScale: the domain starts at 0 or above, and never collapses.
  const lo = Number.isFinite(min) ? Math.max(0, min) : 0;
  const hi = max > lo ? max : lo + 1;
  const [a, b] = [Math.sqrt(lo), Math.sqrt(hi)];
  return { lo, hi, at: (v) => (Math.sqrt(Math.max(lo, Math.min(hi, v))) - a) / (b - a) };
}

interface PanelContext {
  size: number;
  scale: Scale;
  layer: number | undefined;
  id: string;
  heatOpacity: number | undefined;
}

function panel(p: RetentionPanel, image: number, c: PanelContext): { body: string; height: number; spots: HotSpot[] } {
  const { rows, cols } = p.grid;
  // The picture keeps its aspect ratio inside a size × size box (a native-resolution image is rows × cols of
  // its own shape); the patches divide its width and height, so they lie on what the tower saw.
  const aspect = p.background && p.background.width > 0 && p.background.height > 0 ? p.background.width / p.background.height : cols / rows;
  const gridWidth = aspect >= 1 ? c.size : c.size * aspect;
  const gridHeight = aspect >= 1 ? c.size / aspect : c.size;
  const cellW = gridWidth / cols;
  const cellH = gridHeight / rows;
  const total = p.leading + rows * cols;
  const strip = p.leading > 0 ? STRIP : 0;
  const gridTop = LABEL + strip;
  const kept = p.kept ? new Set(p.kept) : null;
  const retrieved = new Set(p.retrieved ?? []);
  const heatOpacity = c.heatOpacity ?? (p.background ? 0.55 : 1);
  // Hatch spacing follows the patch size (about three stripes a patch), as the page's.
  const step = Math.max(0.5, Math.min(cellW, cellH) / 3);
  let body =
    `<defs><pattern${attrs({ id: `${c.id}-hatch`, patternUnits: 'userSpaceOnUse', width: step, height: step, patternTransform: 'rotate(45)' })}>` +
    `<rect${attrs({ width: step, height: step, fill: COLOURS.prunedFill, 'fill-opacity': 0.62 })} />` +
    `<line${attrs({ x1: 0, y1: 0, x2: 0, y2: step, stroke: COLOURS.hatch, 'stroke-opacity': 0.45, 'stroke-width': step * 0.3 })} /></pattern></defs>`;
  if (p.label) body += `<text${attrs({ x: 0, y: 12, 'font-weight': 600 })}>${esc(p.label)}</text>`;
  body += p.background
    ? `<image${attrs({ class: 'tower-input', x: 0, y: gridTop, width: gridWidth, height: gridHeight, href: p.background.href, 'xlink:href': p.background.href, preserveAspectRatio: 'none' })} />`
    : `<rect${attrs({ x: 0, y: gridTop, width: gridWidth, height: gridHeight, fill: '#d9d9d9' })} />`;

  // Where token t sits: leading tokens in the strip, patches on the grid.
  const box = (t: number) => {
    if (t < p.leading) {
      const w = Math.min(cellW, cellH, STRIP - 4);
      return { x: t * (w + 4), y: LABEL + 2, w, h: w };
    }
    const q = t - p.leading;
    return { x: (q % cols) * cellW, y: gridTop + Math.floor(q / cols) * cellH, w: cellW, h: cellH };
  };

  const spots: HotSpot[] = [];
  let heatLayer = '';
  let cells = '';
  let outlines = '';
  for (let t = 0; t < total; t++) {
    const b = box(t);
    const state = kept ? (kept.has(t) ? 'kept' : 'pruned') : 'candidate';
    const score = p.salience?.[t];
    if (c.scale && score !== undefined) heatLayer += `<rect${attrs({ x: b.x, y: b.y, width: b.w, height: b.h, fill: heat(c.scale.at(score)) })} />`;
    const fill = state === 'pruned' ? `url(#${c.id}-hatch)` : t < p.leading && state === 'kept' ? COLOURS.leadingKept : 'none';
    const where = t < p.leading ? `leading token ${t}` : `token ${t} (row ${Math.floor((t - p.leading) / cols)}, col ${(t - p.leading) % cols})`;
    const title = `${where}${score === undefined ? '' : ` salience ${score.toPrecision(3)}`} — ${state}${retrieved.has(t) ? `, retrieved at layer ${c.layer ?? 0}` : ''}`;
    cells +=
      `<rect${attrs({ class: `patch ${state}`, 'data-token': t, x: b.x, y: b.y, width: b.w, height: b.h, fill, stroke: COLOURS.grid, 'stroke-opacity': state === 'pruned' ? 0.08 : 0.28, 'stroke-width': 0.5 })}>` +
      `<title>${esc(title)}</title></rect>`;
    spots.push({ ...b, title, data: { image, token: t, state: retrieved.has(t) ? `${state} retrieved` : state } });
    if (retrieved.has(t)) {
      const inset = 0.9;
      outlines += `<rect${attrs({
        class: 'retrieved',
        'data-token': t,
        x: b.x + inset,
        y: b.y + inset,
        width: Math.max(0, b.w - 2 * inset),
        height: Math.max(0, b.h - 2 * inset),
        fill: COLOURS.retrieved,
        'fill-opacity': 0.14,
        stroke: COLOURS.retrieved,
        'stroke-width': 1.8,
      })} />`;
    }
  }
  body += `<g${attrs({ class: 'heat', opacity: heatOpacity })}>${heatLayer}</g><g class="cells">${cells}</g><g class="outlines">${outlines}</g>`;
  const y = gridTop + gridHeight;
  // One line (about 6 px a character at 11 px), or two where the panel is narrower (a video's frames).
  const line = summary(p, c.layer);
  const lines = line.length * 6 <= c.size ? [line] : line.split(' · ');
  lines.forEach((text, i) => (body += `<text${attrs({ class: 'retention-summary', x: 0, y: y + 13 + i * 13 })}>${esc(text)}</text>`));
  return { body, height: y + SUMMARY + (lines.length - 1) * 13, spots };
}

function summary(p: RetentionPanel, layer: number | undefined): string {
  const total = p.leading + p.grid.rows * p.grid.cols;
  const keptText = p.kept ? `kept ${p.kept.length}/${total}` : `${total} tokens (not pruned yet)`;
  return keptText + (p.retrieved ? ` · layer ${layer ?? 0} retrieved ${p.retrieved.length}` : '');
}

/** The map in one line: what a screen reader, or an exported report's alt text, says. */
function describe(data: RetentionMapData): string {
  const panels = data.images.map((p, i) => `${p.label ?? `image ${i + 1}`}: ${summary(p, data.layer)}`);
  const shown = panels.length > 4 ? [...panels.slice(0, 3), `… ${panels.length - 3} more`] : panels;
  return `Retention map${data.title ? ` — ${data.title}` : ''}. ${shown.join('; ')}`;
}

/**
 * One legend under the panels, as the page's: the salience ramp with its range, then kept, pruned and
 * retrieved swatches — beside the ramp, or under it when the panels are narrower than both.
 */
function legend(
  id: string,
  scale: Scale,
  source: string | undefined,
  withKept: boolean,
  layer: number | undefined,
  room: number,
): { body: string; width: number; height: number } {
  let out = '';
  const RAMP = { w: 200, h: 10, y: 16 };
  const rampWidth = scale ? RAMP.w + 28 : 0;
  const labels = [...(withKept ? ['kept', 'pruned'] : []), ...(layer === undefined ? [] : [`retrieved at layer ${layer}`])];
  const swatchesWidth = labels.reduce((w, l) => w + 20 + l.length * 6.2 + 14, 0);
  const below = scale !== null && rampWidth + swatchesWidth > room;
  if (scale) {
    let stops = '';
    for (let i = 0; i <= 16; i++) stops += `<stop${attrs({ offset: `${(i / 16) * 100}%`, 'stop-color': heat(i / 16) })} />`;
    out += `<defs><linearGradient${attrs({ id: `${id}-ramp` })}>${stops}</linearGradient></defs>`;
    out += `<text${attrs({ x: 0, y: 10, 'font-weight': 600 })}>${esc(`salience (${sourceLabel(source)}, √ scale)`)}</text>`;
    out += `<rect${attrs({ x: 0, y: RAMP.y, width: RAMP.w, height: RAMP.h, fill: `url(#${id}-ramp)`, stroke: '#94a3b8', 'stroke-width': 0.5 })} />`;
    out += `<text${attrs({ x: 0, y: RAMP.y + RAMP.h + 12 })}>${esc(scale.lo.toPrecision(3))}</text>`;
    out += `<text${attrs({ x: RAMP.w, y: RAMP.y + RAMP.h + 12, 'text-anchor': 'end' })}>${esc(scale.hi.toPrecision(3))}</text>`;
  }
  let x = below ? 0 : rampWidth;
  const y = below ? 44 : 14;
  const swatch = (label: string, shape: string) => {
    out += `<g${attrs({ transform: `translate(${num(x)},${y})` })}>${shape}</g><text${attrs({ x: x + 20, y: y + 11 })}>${esc(label)}</text>`;
    x += 20 + label.length * 6.2 + 14;
  };
  if (withKept) {
    swatch('kept', `<rect${attrs({ width: 14, height: 14, fill: '#f8fafc', stroke: '#64748b', 'stroke-width': 0.8 })} />`);
    out +=
      `<defs><pattern${attrs({ id: `${id}-hatch`, patternUnits: 'userSpaceOnUse', width: 4, height: 4, patternTransform: 'rotate(45)' })}>` +
      `<rect${attrs({ width: 4, height: 4, fill: COLOURS.prunedFill, 'fill-opacity': 0.75 })} />` +
      `<line${attrs({ x1: 0, y1: 0, x2: 0, y2: 4, stroke: COLOURS.hatch, 'stroke-opacity': 0.6, 'stroke-width': 1.2 })} /></pattern></defs>`;
    swatch('pruned', `<rect${attrs({ width: 14, height: 14, fill: `url(#${id}-hatch)` })} />`);
  }
  if (layer !== undefined) {
    swatch(
      `retrieved at layer ${layer}`,
      `<rect${attrs({ x: 1, y: 1, width: 12, height: 12, fill: COLOURS.retrieved, 'fill-opacity': 0.14, stroke: COLOURS.retrieved, 'stroke-width': 2 })} />`,
    );
  }
  // The ramp's range labels end at 38; swatches are 14 high from `y`.
  return { body: out, width: Math.max(scale ? RAMP.w + 40 : 0, x), height: Math.max(scale ? 42 : 0, y + 18) };
}
