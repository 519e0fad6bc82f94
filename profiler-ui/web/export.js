/**
 * PNG export of any chart — Plotly charts through Plotly.toImage, D3 (SVG) views by serialising the SVG,
 * drawing it on a canvas and encoding the canvas — and trace downloads. The SVG views style themselves
 * with attributes, so a serialised SVG looks as it does on the page.
 *
 * Every PNG is saved with a title block on top — the run, its policy, workload, question and turn, as the
 * page's caption provider says (app.js) — so a figure pasted into a report still says what it shows. The
 * retention strip of a long video is laid out and scaled to stay under MAX_EXPORT_PIXELS.
 */
import { context2d } from './views/dom.js';
import { themeColours } from './views/plot-theme.js';

const Plotly = globalThis.Plotly;

/** Most pixels of a multi-frame export: 64 frames at 2× would be ~12 MP and a ~10 MB PNG of photos; 3 MP leaves a frame ~190 px, about the trace's own thumbnails. */
export const MAX_EXPORT_PIXELS = 3_000_000;

const TITLE_FONT = '600 13px Inter, "Segoe UI", system-ui, sans-serif';
const CAPTION_FONT = '12px Inter, "Segoe UI", system-ui, sans-serif';

/** @type {() => string[]} */
let caption = () => [];

/** The pixel density each export below drew its PNG at, so its title is written at the same one. */
const densities = new Map();

/**
 * @param {string} url  a PNG data URL this module made
 * @param {number} scale  device pixels per CSS pixel
 */
function drawnAt(url, scale) {
  densities.set(url, scale);
  return url;
}

/**
 * What every exported PNG is titled with: lines of text, the first in bold (empty lines are left out).
 * @param {() => string[]} provider
 */
export function setExportCaption(provider) {
  caption = provider;
}

/**
 * @param {string} href
 * @param {string} name
 */
export async function download(href, name) {
  const a = document.createElement('a');
  a.href = href.startsWith('data:image/png') ? await titled(href, caption().filter(Boolean)) : href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/**
 * A PNG with a title block above it: the lines, cut to the image's width, at the image's pixel density.
 * @param {string} png  data URL
 * @param {string[]} lines
 */
export async function titled(png, lines) {
  if (!lines.length) return png;
  const img = await loadImage(png);
  const scale = densities.get(png) ?? 2;
  densities.delete(png);
  const width = img.width / scale;
  const pad = 12;
  const lineH = 18;
  const head = pad + lines.length * lineH;
  const canvas = canvasOf(width, head + img.height / scale, scale);
  const ctx = context2d(canvas);
  lines.forEach((line, i) => {
    ctx.font = i === 0 ? TITLE_FONT : CAPTION_FONT;
    ctx.fillStyle = i === 0 ? themeColours().ink : themeColours().muted;
    ctx.fillText(fitText(ctx, line, width - 2 * pad), pad, pad + 10 + i * lineH);
  });
  ctx.drawImage(img, 0, head, width, img.height / scale);
  return canvas.toDataURL('image/png');
}

/**
 * Text cut with an ellipsis to fit `max` pixels in the context's font.
 * @param {CanvasRenderingContext2D} ctx
 * @param {string} text
 * @param {number} max
 */
function fitText(ctx, text, max) {
  if (ctx.measureText(text).width <= max) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(`${text.slice(0, mid)}…`).width <= max) lo = mid;
    else hi = mid - 1;
  }
  return `${text.slice(0, lo)}…`;
}

/**
 * @param {string} text
 * @param {string} name
 */
export function downloadText(text, name, type = 'application/x-ndjson') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  download(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * A Plotly chart as a PNG data URL (2× for print).
 * @param {HTMLElement} gd
 */
export async function plotToDataUrl(gd, scale = 2) {
  return drawnAt(await Plotly.toImage(gd, { format: 'png', width: gd.clientWidth || 800, height: gd.clientHeight || 400, scale }), scale);
}

/**
 * Several Plotly charts as one PNG data URL, laid out as they are on the page.
 * @param {readonly (PlotlyElement | HTMLElement | null)[]} gds
 */
export async function plotsToDataUrl(gds, scale = 2) {
  const shown = gds.filter((g) => g && 'data' in g && g.data && g.clientWidth).map((g) => /** @type {PlotlyElement} */ (g));
  const boxes = shown.map((g) => g.getBoundingClientRect());
  const left = Math.min(...boxes.map((b) => b.left));
  const top = Math.min(...boxes.map((b) => b.top));
  const width = Math.max(...boxes.map((b) => b.right)) - left;
  const height = Math.max(...boxes.map((b) => b.bottom)) - top;
  const canvas = canvasOf(width, height, scale);
  const ctx = context2d(canvas);
  for (let i = 0; i < shown.length; i++) {
    const b = boxes[i];
    const part = await plotToDataUrl(shown[i], scale);
    densities.delete(part); // a part, never downloaded itself
    const img = await loadImage(part);
    ctx.drawImage(img, b.left - left, b.top - top, b.width, b.height);
  }
  return drawnAt(canvas.toDataURL('image/png'), scale);
}

/**
 * @param {string} text
 * @param {string} font
 */
function measureText(text, font) {
  const ctx = context2d(document.createElement('canvas'));
  ctx.font = font;
  return ctx.measureText(text).width;
}

/**
 * @param {string} src
 * @returns {Promise<HTMLImageElement>}
 */
function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('could not render the image for export'));
    img.src = src;
  });
}

/**
 * @param {number} width
 * @param {number} height
 * @param {number} scale
 */
function canvasOf(width, height, scale) {
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(width * scale);
  canvas.height = Math.ceil(height * scale);
  const ctx = context2d(canvas);
  ctx.scale(scale, scale);
  ctx.fillStyle = themeColours().paper;
  ctx.fillRect(0, 0, width, height);
  return canvas;
}

/**
 * An SVG element as an <img>, at the given CSS size.
 * @param {SVGSVGElement} svg
 * @param {number} width
 * @param {number} height
 */
export async function svgImage(svg, width, height) {
  const clone = /** @type {SVGSVGElement} */ (svg.cloneNode(true));
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  clone.setAttribute('width', String(width));
  clone.setAttribute('height', String(height));
  const text = new XMLSerializer().serializeToString(clone);
  return loadImage(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`);
}

/**
 * One SVG as a PNG data URL, at its on-screen size.
 * @param {SVGSVGElement} svg
 */
export async function svgToDataUrl(svg, scale = 2) {
  const box = svg.getBoundingClientRect();
  const w = box.width || Number(svg.getAttribute('width')) || 400;
  const h = box.height || Number(svg.getAttribute('height')) || 300;
  const canvas = canvasOf(w, h, scale);
  context2d(canvas).drawImage(await svgImage(svg, w, h), 0, 0, w, h);
  return drawnAt(canvas.toDataURL('image/png'), scale);
}

/**
 * The retention strip as one PNG: a title line, the legend, the per-frame bars, then the frames in a grid
 * with their labels. `parts` comes from the retention map's exportNodes().
 * @param {{ frames: { svg: SVGSVGElement, label: string }[], legend: SVGSVGElement | null, bars: SVGSVGElement | null, title?: string }} parts
 * @param {{ columns?: number, cell?: number, scale?: number }} [layout]
 */
export async function retentionToDataUrl(parts, { columns, cell = 260, scale = 2 } = {}) {
  const frames = parts.frames;
  // Up to 4 frames in a row; 6 for up to 24 frames; beyond, 8 smaller ones (a 64-frame strip is 8 × 8).
  const cols = columns ?? Math.min(frames.length, frames.length <= 4 ? frames.length : frames.length <= 24 ? 6 : 8);
  const pad = 12;
  const label = 18;
  const size = frames.length > 24 ? 150 : frames.length > 8 ? 180 : cell;
  const aspect = (/** @type {SVGSVGElement} */ svg) => {
    const vb = svg.viewBox.baseVal;
    return vb && vb.width ? vb.height / vb.width : 1;
  };
  const rows = Math.ceil(frames.length / cols);
  const frameH = size * Math.max(1, ...frames.map((f) => aspect(f.svg)));
  const legendH = parts.legend ? 50 : 0;
  const barsH = parts.bars ? 96 : 0;
  const width = Math.max(cols * (size + pad) + pad, 540, measureText(parts.title ?? '', '600 13px Inter, "Segoe UI", system-ui, sans-serif') + 2 * pad);
  const height = 28 + legendH + barsH + rows * (frameH + label + pad) + pad;
  const density = Math.min(scale, Math.sqrt(MAX_EXPORT_PIXELS / (width * height)));
  const canvas = canvasOf(width, height, density);
  const ctx = context2d(canvas);
  ctx.fillStyle = themeColours().ink;
  ctx.font = '600 13px Inter, "Segoe UI", system-ui, sans-serif';
  ctx.fillText(parts.title ?? '', pad, 19);
  let y = 28;
  if (parts.legend) {
    ctx.drawImage(await svgImage(parts.legend, 520, 46), pad, y, 520, 46);
    y += legendH;
  }
  if (parts.bars) {
    const bw = Math.min(width - 2 * pad, Number(parts.bars.getAttribute('width')) || width);
    ctx.drawImage(await svgImage(parts.bars, bw, 92), pad, y, bw, 92);
    y += barsH;
  }
  for (let i = 0; i < frames.length; i++) {
    const x = pad + (i % cols) * (size + pad);
    const fy = y + Math.floor(i / cols) * (frameH + label + pad);
    ctx.fillStyle = themeColours().ink2;
    ctx.font = '600 11px Inter, system-ui, sans-serif';
    ctx.fillText(frames[i].label, x, fy + 12);
    const h = size * aspect(frames[i].svg);
    ctx.drawImage(await svgImage(frames[i].svg, size, h), x, fy + label, size, h);
  }
  return drawnAt(canvas.toDataURL('image/png'), density);
}
