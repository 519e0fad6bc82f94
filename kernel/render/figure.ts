/**
 * A figure for a notebook: the SVG a renderer drew, and the HTML that shows it as a PNG.
 *
 * Why a PNG inside `text/html` and not the SVG: nbconvert's HTML export (6.5, as Debian ships it) passes
 * `image/svg+xml` and `text/html` outputs through lxml's `clean_html` (templates/lab/base.html.j2, blocks
 * `data_svg` and `data_html`; exporters/templateexporter.py), which drops every SVG element but
 * keeps their text — an exported map became an empty box followed by each patch's hover text. It keeps
 * `<img src="data:image/png;base64,…">`, `<map>` and `<area title>` (not `data:image/svg+xml`, which it
 * blanks). tslab's documented display sends one MIME type per output (`display.html`, `display.svg`, …),
 * so there is no SVG + PNG bundle to offer; and as Jupyter (Lab and Notebook) and nbconvert all rank
 * `text/html` first, the same output shows the same picture live and exported. The image map keeps the
 * SVG's per-token hover text. The SVG itself is the `*Svg` functions' result, for saving.
 */
import { attrs, num } from './markup.js';

/** A box of the figure (in its CSS pixels) with the text shown on hover and data attributes for readers. */
export interface HotSpot {
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
  data?: Record<string, string | number>;
}

export interface Figure {
  svg: string;
  /** Size in CSS pixels. */
  width: number;
  height: number;
  /** One line saying what it shows (the image's alt text). */
  alt: string;
  spots: HotSpot[];
}

/** Past this many hover boxes the image map is left out (a 64-frame map has 4 096 tokens: ~0.4 MB of markup). */
export const MAX_HOT_SPOTS = 1024;

let uid = 0;

/** The HTML showing `png` (the figure rasterised at any density) at the figure's CSS size, with its hover boxes. */
export function figureHtml(figure: Figure, png: Uint8Array, className: string): string {
  const name = `sv-map-${++uid}-${Math.random().toString(36).slice(2, 8)}`;
  const spots = figure.spots.length <= MAX_HOT_SPOTS ? figure.spots : [];
  const src = `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
  let html = `<figure${attrs({ class: className, style: 'margin: 0' })}>`;
  html += `<img${attrs({ src, width: Math.round(figure.width), height: Math.round(figure.height), alt: figure.alt, usemap: spots.length ? `#${name}` : undefined })}>`;
  if (spots.length) {
    html += `<map${attrs({ name })}>`;
    for (const s of spots) {
      const coords = [s.x, s.y, s.x + s.w, s.y + s.h].map((v) => num(Math.round(v * 10) / 10)).join(',');
      const data = Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [`data-${k}`, v]));
      html += `<area${attrs({ shape: 'rect', coords, title: s.title, alt: s.title, ...data })}>`;
    }
    html += '</map>';
  }
  return html + `</figure>`;
}
