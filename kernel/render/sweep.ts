/**
 * Budget sweep plot: one point per (keep, retrieve) budget, latency on x and fidelity to the dense model on
 * y, with the Pareto front (no other budget is both faster and more faithful) marked. Pure: data in, SVG out.
 */
import { paretoFront as pageParetoFront } from '../../profiler-ui/web/data/summary.js';
import type { Figure, HotSpot } from './figure.js';
import { attrs, esc, num, svgRoot } from './markup.js';

export interface SweepPoint {
  label: string;
  /** Lower is better (e.g. seconds to the end of the answer, fidelity twin excluded). */
  latency: number;
  /** Fidelity to dense: token agreement (higher is better) or a divergence such as mean KL (lower is better). */
  fidelity: number;
}

/** Whether larger fidelity values are better (token agreement) or smaller ones (KL divergence). */
export type FidelityDirection = 'higher-is-better' | 'lower-is-better';

/**
 * Indices of the points no other point dominates (no slower, no less faithful, and better in one of the
 * two), ordered by latency. Equal points are all kept.
 */
export function paretoFront(points: readonly Pick<SweepPoint, 'latency' | 'fidelity'>[], direction: FidelityDirection = 'higher-is-better'): number[] {
  const xy = points.map((p) => ({ x: p.latency, y: p.fidelity }));
  return pageParetoFront(xy, { xBetter: 'min', yBetter: direction === 'higher-is-better' ? 'max' : 'min' });
}

export interface SweepRenderOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Shown on the x axis: latency values are multiplied by this (default 1000: seconds → ms). */
  xScale?: number;
  /** Default higher-is-better. */
  fidelity?: FidelityDirection;
  width?: number;
  height?: number;
}

const M = { left: 52, right: 16, top: 44, bottom: 42 };

/** "Nice" ticks over [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

function padded(values: number[], floor?: number): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  const span = hi - lo || Math.abs(hi) * 0.1 || 1;
  lo -= span * 0.08;
  hi += span * 0.08;
  if (floor !== undefined) lo = Math.max(floor, lo);
  return [lo, hi];
}

export function renderSweepSvg(points: readonly SweepPoint[], options: SweepRenderOptions = {}): string {
  return renderSweep(points, options).svg;
}

/** The plot as SVG with its size, a one-line description, and each point's box and hover text. */
export function renderSweep(points: readonly SweepPoint[], options: SweepRenderOptions = {}): Figure {
  const width = options.width ?? 520;
  const height = options.height ?? 340;
  const xScale = options.xScale ?? 1000;
  const direction = options.fidelity ?? 'higher-is-better';
  const front = paretoFront(points, direction);
  const onFront = new Set(front);
  const xs = points.map((p) => p.latency * xScale);
  const [x0, x1] = points.length ? padded(xs, 0) : [0, 1];
  const [y0, y1] = points.length ? padded(points.map((p) => p.fidelity)) : [0, 1];
  const px = (v: number) => M.left + ((v - x0) / (x1 - x0)) * (width - M.left - M.right);
  const py = (v: number) => height - M.bottom - ((v - y0) / (y1 - y0)) * (height - M.top - M.bottom);
  let body = options.title ? `<text${attrs({ x: M.left, y: 16, 'font-size': 13, 'font-weight': 600 })}>${esc(options.title)}</text>` : '';

  // Axes and grid.
  body += `<g class="axes" stroke="#999" fill="#444">`;
  body += `<line${attrs({ x1: M.left, y1: height - M.bottom, x2: width - M.right, y2: height - M.bottom })} />`;
  body += `<line${attrs({ x1: M.left, y1: M.top, x2: M.left, y2: height - M.bottom })} />`;
  for (const v of ticks(x0, x1)) {
    body += `<line${attrs({ x1: px(v), y1: height - M.bottom, x2: px(v), y2: height - M.bottom + 4 })} />`;
    body += `<text${attrs({ x: px(v), y: height - M.bottom + 15, 'text-anchor': 'middle', stroke: 'none' })}>${esc(num(v))}</text>`;
  }
  for (const v of ticks(y0, y1)) {
    body += `<line${attrs({ x1: M.left - 4, y1: py(v), x2: width - M.right, y2: py(v), 'stroke-opacity': 0.25 })} />`;
    body += `<text${attrs({ x: M.left - 6, y: py(v) + 4, 'text-anchor': 'end', stroke: 'none' })}>${esc(num(v))}</text>`;
  }
  body += `</g>`;
  body += `<text${attrs({ x: (M.left + width - M.right) / 2, y: height - 8, 'text-anchor': 'middle' })}>${esc(options.xLabel ?? 'latency (ms)')}</text>`;
  body += `<text${attrs({ x: 12, y: (M.top + height - M.bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${num((M.top + height - M.bottom) / 2)})` })}>${esc(options.yLabel ?? (direction === 'higher-is-better' ? 'fidelity (higher is better)' : 'divergence from dense (lower is better)'))}</text>`;

  // The Pareto front as a staircase: from each front point, right to the next one's latency, then to its fidelity.
  if (front.length) {
    const pts: string[] = [];
    front.forEach((i, k) => {
      const p = points[i]!;
      pts.push(`${num(px(p.latency * xScale))},${num(py(p.fidelity))}`);
      const next = points[front[k + 1]!];
      if (next) pts.push(`${num(px(next.latency * xScale))},${num(py(p.fidelity))}`);
    });
    body += `<polyline${attrs({ class: 'pareto-front', points: pts.join(' '), fill: 'none', stroke: '#d81b60', 'stroke-width': 1.5, 'stroke-dasharray': '4 3' })} />`;
  }

  const spots: HotSpot[] = [];
  points.forEach((p, i) => {
    const pareto = onFront.has(i);
    const cx = px(p.latency * xScale);
    const cy = py(p.fidelity);
    const title = `${p.label}: ${num(p.latency * xScale)} ms, fidelity ${num(p.fidelity)}${pareto ? ' (Pareto)' : ''}`;
    spots.push({ x: cx - 6, y: cy - 6, w: 12, h: 12, title, data: { label: p.label, pareto: String(pareto) } });
    body +=
      `<circle${attrs({ class: pareto ? 'sweep-point pareto' : 'sweep-point', 'data-label': p.label, cx, cy, r: pareto ? 5.5 : 4, fill: pareto ? '#d81b60' : '#78909c', stroke: '#fff' })}>` +
      `<title>${esc(title)}</title></circle>`;
    // Labels right of their point, or left of it near the right edge.
    const left = cx > width - M.right - p.label.length * 5.5 - 8;
    body += `<text${attrs({ class: 'sweep-label', x: left ? cx - 7 : cx + 7, y: cy - 6, 'text-anchor': left ? 'end' : undefined, 'font-size': 9, fill: '#555' })}>${esc(p.label)}</text>`;
  });
  const legendY = M.top - 12;
  body += `<circle${attrs({ cx: M.left + 6, cy: legendY - 3, r: 4.5, fill: '#d81b60' })} /><text${attrs({ x: M.left + 14, y: legendY, fill: '#555' })}>Pareto front: ${front.length} of ${points.length} (no other is both faster and more faithful)</text>`;
  const alt = `Budget sweep: ${points.length} budgets; Pareto front ${front.map((i) => points[i]!.label).join(', ') || 'empty'}`;
  return { svg: svgRoot(width, height, body, { class: 'budget-sweep' }), width, height, alt, spots };
}
