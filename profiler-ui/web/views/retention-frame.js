/**
 * One image's retention map as an SVG (D3): the picture the vision tower saw, the salience heat on its
 * patch grid, pruned patches dimmed and hatched, and the chosen layer's retrieval set outlined. Leading
 * non-patch tokens (CLIP's CLS under the `full` strategy) sit in a strip under the picture.
 *
 * Every patch cell carries `data-state="kept|pruned"` and `data-token`, every outline `data-state="retrieved"`:
 * the counts in the page and in the tests are counts of these elements. Styling is by attributes (not CSS
 * classes) so a serialised SVG exports to PNG as it looks.
 *
 * Cells are reachable by keyboard, as a roving tab stop (WAI-ARIA's grid pattern): one cell per frame is in the
 * tab order, arrows move it (retention-map.js), and each cell's `aria-label` says its frame, row, column and state.
 * Marks (`drawMarks`) ring tokens over all that: the token the panel inspects, a comparison's differences.
 */
import { context2d } from './dom.js';

/** @typedef {import('../data/run-model.js').Salience} Salience */

/**
 * What `drawFrame` draws: one image's tokens at a turn and layer (retention-map.js's `frameData`).
 * @typedef {object} FrameData
 * @property {number} image
 * @property {string | null} jpeg  base64
 * @property {number} width
 * @property {number} height
 * @property {number} rows
 * @property {number} cols
 * @property {number} leading
 * @property {number} total
 * @property {Uint8Array} state  1 kept, 0 pruned, per token
 * @property {Uint8Array} retrieved  1 retrieved, per token
 * @property {Salience | null} salience
 * @property {D3SequentialScale} scale
 * @property {boolean} heat
 * @property {number} [heatOpacity]
 * @property {string} [label]  the frame's name for its cells' aria-labels ("frame 1 · 0 s")
 */

/** @typedef {ReturnType<typeof geometry>} Geometry */

const d3 = globalThis.d3;

export const COLOURS = {
  retrieved: '#00d5ff',
  prunedFill: '#0f172a',
  hatch: '#e2e8f0',
  grid: '#ffffff',
};

let uid = 0;

/**
 * The salience colour scale shared by the frames and the legend: √-scaled inferno over the run's [min, max]
 * (CLS attention is heavy-tailed; a few tokens take most of it).
 */
/**
 * @param {number} min
 * @param {number} max
 */
export function salienceScale(min, max) {
  const lo = Number.isFinite(min) ? Math.max(0, min) : 0;
  const hi = max > lo ? max : lo + 1;
  return d3.scaleSequentialSqrt(d3.interpolateInferno).domain([lo, hi]);
}

/** @type {WeakMap<Float32Array, { key: string, url: string }>} */
const heatCache = new WeakMap();

/**
 * The salience heat as a rows×cols PNG data URL (one pixel per patch, scaled up pixelated). Cached per scores array and scale.
 * @param {Salience} sal
 * @param {D3SequentialScale} scale
 */
function heatImage(sal, scale) {
  const key = scale.domain().join();
  const hit = heatCache.get(sal.scores);
  if (hit && hit.key === key) return hit.url;
  const canvas = document.createElement('canvas');
  canvas.width = sal.cols;
  canvas.height = sal.rows;
  const ctx = context2d(canvas);
  const img = ctx.createImageData(sal.cols, sal.rows);
  for (let p = 0; p < sal.rows * sal.cols; p++) {
    const c = d3.rgb(scale(sal.scores[sal.leading + p] || 0));
    img.data.set([c.r, c.g, c.b, 255], p * 4);
  }
  ctx.putImageData(img, 0, 0);
  const url = canvas.toDataURL('image/png');
  heatCache.set(sal.scores, { key, url });
  return url;
}

/**
 * Geometry of a frame: the picture's size in SVG units, patch size, and the strip for leading tokens. Patches
 * divide the picture's own width and height (a native-resolution image's grid is rows × cols of its aspect), so
 * the cells lie on the picture whatever its shape.
 * @param {FrameData} d
 */
function geometry(d) {
  const w = d.width || d.cols * 14;
  const h = d.height || d.rows * 14;
  const pw = w / d.cols;
  const ph = h / d.rows;
  const strip = d.leading > 0 ? Math.max(ph * 0.8, 10) : 0;
  return { w, h, pw, ph, strip, H: h + (strip ? strip + 2 : 0) };
}

/**
 * Where token t is drawn: a patch cell, or a cell in the leading strip.
 * @param {number} t
 * @param {FrameData} d
 * @param {Geometry} g
 */
function cellOf(t, d, g) {
  if (t < d.leading) return { x: t * g.pw, y: g.h + 2, w: g.pw, h: g.strip };
  const p = t - d.leading;
  return { x: (p % d.cols) * g.pw, y: Math.floor(p / d.cols) * g.ph, w: g.pw, h: g.ph };
}

/**
 * Create (or refresh) a frame's SVG inside `host`.
 * @param {Element} host
 * @param {FrameData} d
 */
export function drawFrame(host, d) {
  const g = geometry(d);
  let svg = d3.select(host).select('svg.frame-svg');
  if (svg.empty()) {
    const id = `f${++uid}`;
    svg = d3.select(host).append('svg').attr('class', 'frame-svg').attr('data-uid', id);
    const pat = svg.append('defs').append('pattern').attr('id', `${id}-hatch`).attr('patternUnits', 'userSpaceOnUse').attr('patternTransform', 'rotate(45)');
    pat.append('rect').attr('fill', COLOURS.prunedFill).attr('fill-opacity', 0.62);
    pat.append('line').attr('x1', 0).attr('y1', 0).attr('x2', 0).attr('stroke', COLOURS.hatch).attr('stroke-opacity', 0.45);
    svg.append('image').attr('class', 'picture').attr('preserveAspectRatio', 'none');
    svg.append('image').attr('class', 'heat').attr('preserveAspectRatio', 'none').attr('style', 'image-rendering: pixelated; image-rendering: crisp-edges');
    // Cells take the pointer over their whole area (kept ones are unfilled): a click focuses the patch it is on.
    svg.append('g').attr('class', 'cells').attr('pointer-events', 'all');
    svg.append('g').attr('class', 'outlines');
  }
  const id = svg.attr('data-uid');
  svg.attr('viewBox', `0 0 ${g.w} ${g.H}`).attr('data-image', d.image);
  // Hatch spacing follows the patch size (about three stripes a patch), whatever the picture's resolution.
  const step = Math.max(0.5, Math.min(g.pw, g.ph) / 3);
  const pat = svg.select('pattern');
  pat.attr('width', step).attr('height', step);
  pat.select('rect').attr('width', step).attr('height', step);
  pat
    .select('line')
    .attr('y2', step)
    .attr('stroke-width', step * 0.3);
  svg
    .select('image.picture')
    .attr('width', g.w)
    .attr('height', g.h)
    .attr('href', d.jpeg ? `data:image/jpeg;base64,${d.jpeg}` : null);
  const heat = d.heat ? d.salience : null;
  svg
    .select('image.heat')
    .attr('width', g.w)
    .attr('height', g.h)
    .attr('opacity', heat ? (d.jpeg ? (d.heatOpacity ?? 0.55) : 1) : 0)
    .attr('href', heat ? heatImage(heat, d.scale) : null);

  const tokens = d3.range(d.total);
  svg
    .select('g.cells')
    .selectAll('rect')
    .data(tokens)
    .join('rect')
    .each(function (t) {
      const c = cellOf(t, d, g);
      const kept = d.state[t] === 1;
      const el = this;
      el.setAttribute('x', String(c.x));
      el.setAttribute('y', String(c.y));
      el.setAttribute('width', String(c.w));
      el.setAttribute('height', String(c.h));
      el.setAttribute('data-token', String(t));
      el.setAttribute('data-state', kept ? 'kept' : 'pruned');
      el.setAttribute('fill', kept ? (t < d.leading ? '#64748b' : 'none') : `url(#${id}-hatch)`);
      el.setAttribute('stroke', COLOURS.grid);
      el.setAttribute('stroke-opacity', String(kept ? 0.28 : 0.08));
      el.setAttribute('stroke-width', String(0.5));
      el.setAttribute('vector-effect', 'non-scaling-stroke');
      el.setAttribute('role', 'button');
      el.setAttribute('tabindex', t === 0 ? '0' : '-1');
    });
  drawOutlines(svg, d, g);
  return svg.node();
}

/**
 * What a screen reader says of token t: the frame, where the token sits (rows and columns counted from 1, as the
 * page counts frames), and its state.
 * @param {FrameData} d
 * @param {number} t
 */
export function cellLabel(d, t) {
  const p = t - d.leading;
  const where = t < d.leading ? `leading token ${t + 1}` : `row ${Math.floor(p / d.cols) + 1}, col ${(p % d.cols) + 1}`;
  const state = d.state[t] === 1 ? 'kept' : 'pruned';
  return `${d.label ?? `image ${d.image + 1}`}, ${where}, ${state}${d.retrieved[t] ? ', retrieved' : ''}`;
}

/**
 * The token `dr` (rows) and `dc` (columns) away from t on the frame's grid, staying on it; leading tokens sit in a
 * row of their own under the picture.
 * @param {FrameData} d
 * @param {number} t
 * @param {number} dr
 * @param {number} dc
 */
export function neighbour(d, t, dr, dc) {
  const row = t < d.leading ? d.rows : Math.floor((t - d.leading) / d.cols);
  const col = t < d.leading ? t : (t - d.leading) % d.cols;
  const r = Math.max(0, Math.min(d.leading > 0 ? d.rows : d.rows - 1, row + dr));
  if (r === d.rows) return Math.max(0, Math.min(d.leading - 1, col + dc));
  return d.leading + r * d.cols + Math.max(0, Math.min(d.cols - 1, col + dc));
}

/**
 * Rings over tokens, a colour per kind: the token the panel inspects, or what one run kept or retrieved and the
 * other did not. Each ring carries `data-mark` (its kind) and `data-token`.
 * @param {Element} svgNode
 * @param {FrameData} d
 * @param {{ token: number, kind: string }[]} marks
 * @param {Record<string, string>} colours  by kind
 */
export function drawMarks(svgNode, d, marks, colours) {
  const g = geometry(d);
  const svg = d3.select(svgNode);
  let layer = svg.select('g.marks');
  if (layer.empty()) layer = svg.append('g').attr('class', 'marks').attr('pointer-events', 'none');
  layer
    .selectAll('rect')
    .data(marks.filter((k) => k.token >= 0 && k.token < d.total))
    .join('rect')
    .each(function (k) {
      const c = cellOf(k.token, d, g);
      const el = this;
      const colour = colours[k.kind] ?? '#facc15';
      el.setAttribute('x', String(c.x + 0.4));
      el.setAttribute('y', String(c.y + 0.4));
      el.setAttribute('width', String(Math.max(0, c.w - 0.8)));
      el.setAttribute('height', String(Math.max(0, c.h - 0.8)));
      el.setAttribute('data-token', String(k.token));
      el.setAttribute('data-mark', k.kind);
      el.setAttribute('fill', colour);
      el.setAttribute('fill-opacity', String(k.kind === 'selected' ? 0 : 0.35));
      el.setAttribute('stroke', colour);
      el.setAttribute('stroke-width', String(k.kind === 'selected' ? 3 : 1.6));
      el.setAttribute('vector-effect', 'non-scaling-stroke');
    });
}

/**
 * Only the retrieval outlines: what a layer or turn change redraws.
 * @param {D3Selection | Element} svgSel
 * @param {FrameData} d
 * @param {Geometry} [g]
 */
export function drawOutlines(svgSel, d, g = geometry(d)) {
  const svg = svgSel instanceof Element ? d3.select(svgSel) : svgSel;
  /** @type {number[]} */
  const picked = [];
  for (let t = 0; t < d.total; t++) if (d.retrieved[t]) picked.push(t);
  svg
    .select('g.outlines')
    .selectAll('rect')
    .data(picked)
    .join('rect')
    .each(function (t) {
      const c = cellOf(t, d, g);
      const el = this;
      el.setAttribute('x', String(c.x + 0.9));
      el.setAttribute('y', String(c.y + 0.9));
      el.setAttribute('width', String(Math.max(0, c.w - 1.8)));
      el.setAttribute('height', String(Math.max(0, c.h - 1.8)));
      el.setAttribute('data-token', String(t));
      el.setAttribute('data-state', 'retrieved');
      el.setAttribute('fill', COLOURS.retrieved);
      el.setAttribute('fill-opacity', String(0.14));
      el.setAttribute('stroke', COLOURS.retrieved);
      el.setAttribute('stroke-width', String(1.8));
      el.setAttribute('vector-effect', 'non-scaling-stroke');
      el.setAttribute('pointer-events', 'none');
    });
  // Labels change only where the retrieval set did: a layer switch over a long video relabels a few cells a frame.
  const node = svg.node();
  const before = node ? labelled.get(node) : undefined;
  svg
    .select('g.cells')
    .selectAll('rect')
    .each(function (t) {
      const i = /** @type {number} */ (t);
      if (!before || before.state !== d.state || before.retrieved[i] !== d.retrieved[i]) this.setAttribute('aria-label', cellLabel(d, i));
    });
  if (node) labelled.set(node, { state: d.state, retrieved: d.retrieved.slice() });
}

/** What each frame's cell labels were written from. @type {WeakMap<Element, { state: Uint8Array, retrieved: Uint8Array }>} */
const labelled = new WeakMap();

/**
 * Token under a pointer position (client coordinates), or -1.
 * @param {Element} svgNode
 * @param {FrameData} d
 * @param {number} clientX
 * @param {number} clientY
 */
export function tokenAt(svgNode, d, clientX, clientY) {
  const g = geometry(d);
  // Through the SVG's own transform: a frame capped in height is letterboxed inside its box (viewBox, meet).
  const ctm = svgNode instanceof SVGGraphicsElement ? svgNode.getScreenCTM() : null;
  let x;
  let y;
  if (ctm) ({ x, y } = new DOMPoint(clientX, clientY).matrixTransform(ctm.inverse()));
  else {
    const box = svgNode.getBoundingClientRect();
    x = ((clientX - box.left) / box.width) * g.w;
    y = ((clientY - box.top) / box.height) * g.H;
  }
  if (x < 0 || x >= g.w || y < 0) return -1;
  if (y < g.h) {
    const p = Math.floor(y / g.ph) * d.cols + Math.floor(x / g.pw);
    return d.leading + p;
  }
  if (d.leading > 0 && y >= g.h + 2) {
    const t = Math.floor(x / g.pw);
    return t < d.leading ? t : -1;
  }
  return -1;
}
