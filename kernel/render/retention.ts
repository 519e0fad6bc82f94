/**
 * Retention map: per image, the patch grid drawn over what the vision tower saw, with query-agnostic
 * salience as heat, the tokens pruning dropped darkened, and the tokens a turn retrieved outlined
 * (docs/design.md, "The SparseVILA path"). Pure: data in, one SVG string out.
 *
 * Classes the markup carries (tests and stylesheets rely on them): `retention-image`, one group per image
 * with its grid as `data-rows` / `data-cols`; `patch kept`, `patch pruned`, `patch candidate` (pruning not
 * decided yet) — one element per LLM image token — and `retrieved`, one outline per retrieved token.
 */
import { attrs, esc, heat, normalise, num, svgRoot } from './markup.js';

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
  /** Retrieved tokens with the share of layers that retrieved them (1 when one layer is shown). */
  retrieved?: readonly { token: number; share: number }[];
  /** How many layers' retrieval sets `retrieved` merges (default 1). */
  retrievalLayers?: number;
  background?: RetentionBackground;
}

export interface RetentionMapData {
  title?: string;
  images: RetentionPanel[];
}

export interface RetentionRenderOptions {
  /** Width of one image panel in px, and the longer side of its picture (default 256). */
  size?: number;
  /** Opacity of the salience heat over kept tokens (default 0.45). */
  heatOpacity?: number;
}

const TITLE = 20;
const LABEL = 16;
const STRIP = 22;
const FOOTER = 30;
const GAP = 16;

export function renderRetentionSvg(data: RetentionMapData, options: RetentionRenderOptions = {}): string {
  const size = options.size ?? 256;
  const heatOpacity = options.heatOpacity ?? 0.45;
  const top = data.title ? TITLE : 0;
  const panels = data.images.map((p) => panel(p, size, heatOpacity));
  const panelsWidth = Math.max(1, data.images.length) * size + Math.max(0, data.images.length - 1) * GAP;
  // Room for the title (about 7 px per character at 13 px) even over one small panel.
  const width = Math.max(panelsWidth, data.title ? data.title.length * 7 + 8 : 0);
  const height = top + Math.max(0, ...panels.map((p) => p.height));
  let body = data.title ? `<text${attrs({ x: 0, y: 14, 'font-size': 13, 'font-weight': 600 })}>${esc(data.title)}</text>` : '';
  panels.forEach((p, i) => {
    body += `<g${attrs({ class: 'retention-image', 'data-image': i, 'data-rows': data.images[i]!.grid.rows, 'data-cols': data.images[i]!.grid.cols, transform: `translate(${num(i * (size + GAP))},${top})` })}>${p.body}</g>`;
  });
  return svgRoot(width, height, body, { class: 'retention-map' });
}

function panel(p: RetentionPanel, size: number, heatOpacity: number): { body: string; height: number } {
  const { rows, cols } = p.grid;
  // The picture keeps its aspect ratio inside a size × size box (a native-resolution image is rows × cols of
  // its own shape); the patches divide its width and height, so they lie on what the tower saw.
  const aspect = p.background && p.background.width > 0 && p.background.height > 0 ? p.background.width / p.background.height : cols / rows;
  const gridWidth = aspect >= 1 ? size : size * aspect;
  const gridHeight = aspect >= 1 ? size / aspect : size;
  const cellW = gridWidth / cols;
  const cellH = gridHeight / rows;
  const total = p.leading + rows * cols;
  const strip = p.leading > 0 ? STRIP : 0;
  const gridTop = LABEL + strip;
  const kept = p.kept ? new Set(p.kept) : null;
  const level = p.salience ? normalise(p.salience) : null;
  const score = (t: number) => (p.salience ? ` salience ${p.salience[t]!.toPrecision(3)}` : '');
  let body = p.label ? `<text${attrs({ x: 0, y: 12, 'font-weight': 600 })}>${esc(p.label)}</text>` : '';

  if (p.background) {
    body +=
      `<image${attrs({ class: 'tower-input', x: 0, y: gridTop, width: gridWidth, height: gridHeight, href: p.background.href, 'xlink:href': p.background.href, preserveAspectRatio: 'none' })}` +
      ` style="image-rendering: pixelated" />`;
  } else {
    body += `<rect${attrs({ x: 0, y: gridTop, width: gridWidth, height: gridHeight, fill: '#d9d9d9' })} />`;
  }

  // Where token t sits: leading tokens in the strip, patches on the grid.
  const box = (t: number) => {
    if (t < p.leading) {
      const w = Math.min(cellW, cellH, STRIP - 4);
      return { x: t * (w + 4), y: LABEL + 2, w, h: w };
    }
    const q = t - p.leading;
    return { x: (q % cols) * cellW, y: gridTop + Math.floor(q / cols) * cellH, w: cellW, h: cellH };
  };

  for (let t = 0; t < total; t++) {
    const b = box(t);
    const state = kept ? (kept.has(t) ? 'kept' : 'pruned') : 'candidate';
    const where = t < p.leading ? `leading token ${t}` : `token ${t} (row ${Math.floor((t - p.leading) / cols)}, col ${(t - p.leading) % cols})`;
    const fill = state === 'pruned' ? '#111' : level ? heat(level[t]!) : 'none';
    const opacity = state === 'pruned' ? 0.78 : heatOpacity;
    body +=
      `<rect${attrs({ class: `patch ${state}`, 'data-token': t, x: b.x, y: b.y, width: b.w, height: b.h, fill, 'fill-opacity': opacity, stroke: '#fff', 'stroke-opacity': 0.35, 'stroke-width': 0.5 })}>` +
      `<title>${esc(`${where}${score(t)} — ${state}`)}</title></rect>`;
  }

  for (const r of p.retrieved ?? []) {
    if (r.token < 0 || r.token >= total) continue;
    const b = box(r.token);
    const inset = 1.5;
    body += `<rect${attrs({
      class: 'retrieved',
      'data-token': r.token,
      x: b.x + inset,
      y: b.y + inset,
      width: Math.max(0, b.w - 2 * inset),
      height: Math.max(0, b.h - 2 * inset),
      fill: 'none',
      stroke: '#00e5ff',
      'stroke-width': 2.5,
      'stroke-opacity': Math.max(0.25, Math.min(1, r.share)),
    })} />`;
  }

  const keptText = kept ? `kept ${kept.size}/${total}` : `${total} tokens (not pruned yet)`;
  const layers = p.retrievalLayers ?? 1;
  const retrievedText = p.retrieved ? ` · retrieved ${p.retrieved.length}${layers > 1 ? ` (union of ${layers} layers)` : ''}` : '';
  const y = gridTop + gridHeight;
  body += `<text${attrs({ class: 'retention-summary', x: 0, y: y + 14 })}>${esc(keptText + retrievedText)}</text>`;
  body += legend(y + 20, !!level, !!kept, !!p.retrieved);
  return { body, height: y + FOOTER };
}

function legend(y: number, withHeat: boolean, withKept: boolean, withRetrieved: boolean): string {
  let x = 0;
  let out = '';
  const label = (text: string) => {
    out += `<text${attrs({ x, y: y + 8, 'font-size': 9, fill: '#555' })}>${esc(text)}</text>`;
    x += text.length * 5 + 12;
  };
  if (withHeat) {
    for (let i = 0; i < 5; i++) out += `<rect${attrs({ x: x + i * 6, y, width: 6, height: 8, fill: heat(i / 4) })} />`;
    x += 34;
    label('salience low → high');
  }
  if (withKept) {
    out += `<rect${attrs({ x, y, width: 8, height: 8, fill: '#111', 'fill-opacity': 0.78 })} />`;
    x += 12;
    label('pruned');
  }
  if (withRetrieved) {
    out += `<rect${attrs({ x, y, width: 8, height: 8, fill: 'none', stroke: '#00e5ff', 'stroke-width': 2 })} />`;
    x += 12;
    label('retrieved');
  }
  return out;
}
