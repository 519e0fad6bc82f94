/**
 * Retrieval hits of one turn as a layers × retained-visual-tokens heatmap (Plotly): which of the tokens
 * kept at prefill each LLM layer retrieved for the turn's decode. Modes: `hits` (retrieved or not),
 * `scores` (the question's attention mass, as a share of the layer's largest), `frames` (hits per frame:
 * the aggregate a long video needs; `auto` picks it past a few hundred columns). The chosen layer is boxed;
 * clicking a row picks a layer. Tick labels are thinned to those that fit side by side at the plot's width.
 */
import { imageLabel, imageName, imageTime, turnLabel } from '../data/labels.js';
import { layerCount, retrievalStatus } from '../data/run-queries.js';
import { child } from './dom.js';
import { PLOT_CONFIG, baseLayout } from './plot-theme.js';

/** @typedef {import('../data/run-model.js').RunModel} RunModel */

/**
 * The heatmap's matrix for one turn: z[layer][column] (null: the layer has no retrieval yet).
 * @typedef {object} HeatmapMatrix
 * @property {(number | null)[][]} z
 * @property {number[] | null} x  frames (mode 'frames'), else null: columns are retained tokens in cache order
 * @property {number} layers
 * @property {string} mode  'hits', 'scores' or 'frames'
 * @property {number[]} [perFrame]  retained tokens per frame (mode 'frames')
 * @property {number[]} [frames]
 * @property {{ at: number, image: number }[]} [bounds]  where each image's tokens start (token modes)
 * @property {number} [n]  retained tokens (token modes)
 * @property {string[]} ticks  the x axis' tick labels: per frame (mode 'frames') or per bound, counted from 1
 * @property {string[]} names  per frame (mode 'frames') or per bound: its full label, for hovers
 */

const Plotly = globalThis.Plotly;
/**
 * Past this many retained tokens `auto` shows hits per frame: a column is then under about 2 px on a
 * 900 px plot, and a frame's stretch of hits reads better as one count.
 */
export const MAX_TOKEN_COLUMNS = 400;
/** Width (px) of a tick label's character, 10 px font, and the room left between two labels. */
const TICK_CHAR_PX = 6.2;
const TICK_GAP_PX = 10;

/**
 * Which tick labels to show so that none overlaps its neighbour: walking left to right, a label is kept when it
 * starts past the last kept one's end. `at`: each tick's place as a share of the axis (0 to 1), ascending.
 * @param {number[]} at
 * @param {string[]} labels  (lines split by `<br>`)
 * @param {number} widthPx  the axis' length on screen
 * @returns {number[]}  indices of the kept ticks
 */
export function thinTicks(at, labels, widthPx) {
  const half = (/** @type {string} */ l) => (Math.max(...l.split('<br>').map((x) => x.length)) * TICK_CHAR_PX) / 2;
  /** @type {number[]} */
  const kept = [];
  let end = -Infinity;
  at.forEach((a, i) => {
    const x = a * widthPx;
    if (x - half(labels[i]) < end + TICK_GAP_PX) return;
    kept.push(i);
    end = x + half(labels[i]);
  });
  return kept;
}

/**
 * The heatmap's matrix for one turn: z[layer][column], columns labelled by image. Pure.
 * @param {RunModel} m
 * @param {number} turn
 * @param {string} mode
 * @returns {HeatmapMatrix | null}
 */
export function retrievalMatrix(m, turn, mode) {
  const t = m.turns.get(turn);
  const layers = layerCount(m);
  const rets = t ? t.retrieval : [];
  const cand = t?.candidates;
  if (!cand || !rets.some(Boolean)) return null;
  const n = cand.image.length;
  if (mode === 'frames') {
    const frames = [...new Set(cand.image)].sort((a, b) => a - b);
    const col = new Map(frames.map((f, i) => [f, i]));
    const colOf = (/** @type {number} */ i) => /** @type {number} */ (col.get(cand.image[i]));
    const perFrame = new Array(frames.length).fill(0);
    for (let i = 0; i < n; i++) perFrame[colOf(i)]++;
    const z = [];
    for (let l = 0; l < layers; l++) {
      const r = rets[l];
      const row = new Array(frames.length).fill(r ? 0 : null);
      if (r) for (const i of r.retrieved) row[colOf(i)]++;
      z.push(row);
    }
    return { z, x: frames, layers, mode, perFrame, frames, ticks: tickLabels(m, frames), names: frames.map((f) => imageLabel(m, f)) };
  }
  const z = [];
  for (let l = 0; l < layers; l++) {
    const r = rets[l];
    const row = new Array(n).fill(r ? 0 : null);
    if (r) {
      if (mode === 'scores') {
        let max = 0;
        for (const v of r.scores) if (v > max) max = v;
        for (let i = 0; i < n; i++) row[i] = max > 0 ? r.scores[i] / max : 0;
      } else {
        for (const i of r.retrieved) row[i] = 1;
      }
    }
    z.push(row);
  }
  // Image boundaries along the candidates (cache order).
  /** @type {{ at: number, image: number }[]} */
  const bounds = [];
  for (let i = 0; i < n; i++) if (i === 0 || cand.image[i] !== cand.image[i - 1]) bounds.push({ at: i, image: cand.image[i] });
  const images = bounds.map((b) => b.image);
  return { z, x: null, layers, mode, bounds, n, ticks: tickLabels(m, images), names: images.map((f) => imageLabel(m, f)) };
}

/**
 * Tick labels for images along the x axis, counted from 1 as the prompt counts them: "frame 1" with its time
 * under it, or only the number where there are too many to name.
 * @param {RunModel} m
 * @param {number[]} images
 */
export function tickLabels(m, images) {
  if (images.length > 12) return images.map((i) => String(i + 1));
  return images.map((i) => {
    const t = imageTime(m, i);
    return t ? `${imageName(m, i)}<br>${t}` : imageName(m, i);
  });
}

/**
 * @param {HTMLElement} host
 * @param {{ onPickLayer?: (layer: number) => void }} [options]
 */
export function createRetrievalHeatmap(host, { onPickLayer } = {}) {
  host.classList.add('retrieval-heatmap');
  host.innerHTML = `<div class="plot"></div><div class="hm-empty muted" hidden></div>`;
  const plot = /** @type {PlotlyElement} */ (child(host, '.plot', HTMLElement));
  const empty = child(host, '.hm-empty', HTMLElement);
  let key = '';
  let layerShown = -1;
  /** @type {HeatmapMatrix | null} */
  let drawn = null;

  /**
   * @param {number} layer
   * @param {number} layers
   */
  function layerBox(layer, layers) {
    if (layer < 0 || layer >= layers) return [];
    return [
      {
        type: 'rect',
        xref: 'paper',
        x0: 0,
        x1: 1,
        yref: 'y',
        y0: layer - 0.5,
        y1: layer + 0.5,
        line: { color: '#0f172a', width: 2 },
        fillcolor: 'rgba(0,0,0,0)',
      },
    ];
  }

  /**
   * @param {RunModel} m
   * @param {{ turn: number, layer: number, mode?: string }} at
   */
  function update(m, { turn, layer, mode = 'auto' }) {
    const t = m.turns.get(turn);
    const n = t?.candidates?.image.length ?? 0;
    const chosen = mode === 'auto' ? (n > MAX_TOKEN_COLUMNS ? 'frames' : 'hits') : mode;
    // The width too: tick labels are thinned to what fits.
    const k = `${m.id}|${turn}|${chosen}|${m.versions.retrieval}|${m.versions.meta}|${m.versions.images}|${Math.round(host.clientWidth / 40)}`;
    if (k !== key) {
      key = k;
      const mat = retrievalMatrix(m, turn, chosen);
      drawn = mat;
      empty.hidden = !!mat;
      plot.hidden = !mat;
      if (!mat) {
        const pending = retrievalStatus(m, turn) === 'pending';
        empty.textContent = `No retrieval at ${turnLabel(turn)}: ${pending ? 'waiting for the turn’s prefill' : 'this policy’s decode attends every retained visual token'}.`;
        Plotly.purge(plot);
        layerShown = -1;
        return;
      }
      Plotly.react(plot, traces(mat), layout(mat, layer), PLOT_CONFIG);
      layerShown = layer;
      if (!plot.dataset.bound) {
        plot.dataset.bound = '1';
        plot.on('plotly_click', (ev) => {
          const y = ev.points?.[0]?.y;
          if (typeof y === 'number' && Number.isInteger(y)) onPickLayer?.(y);
        });
      }
    } else if (drawn && layer !== layerShown) {
      Plotly.relayout(plot, { shapes: [...boundaryLines(drawn), ...layerBox(layer, drawn.layers)] });
      layerShown = layer;
    }
    host.dataset.layer = String(layer);
    host.dataset.mode = chosen;
  }

  /** @param {HeatmapMatrix} mat */
  function boundaryLines(mat) {
    if (!mat.bounds) return [];
    return mat.bounds
      .slice(1)
      .map((b) => ({ type: 'line', x0: b.at - 0.5, x1: b.at - 0.5, yref: 'paper', y0: 0, y1: 1, line: { color: '#475569', width: 1, dash: 'dot' } }));
  }

  /** @param {HeatmapMatrix} mat */
  function traces(mat) {
    const common = { type: 'heatmap', z: mat.z, xgap: mat.mode === 'frames' || (mat.n ?? 0) <= 120 ? 1 : 0, ygap: 1, hoverongaps: false };
    if (mat.mode === 'frames') {
      return [
        {
          ...common,
          x: mat.x,
          customdata: mat.z.map(() => mat.names),
          colorscale: [
            [0, '#f8fafc'],
            [0.0001, '#cffafe'],
            [1, '#0e7490'],
          ],
          colorbar: { title: { text: 'retrieved<br>tokens', side: 'top' }, thickness: 10, len: 0.9 },
          hovertemplate: 'layer %{y} · %{customdata}<br>%{z} retrieved<extra></extra>',
        },
      ];
    }
    if (mat.mode === 'scores') {
      return [
        {
          ...common,
          colorscale: 'Viridis',
          zmin: 0,
          zmax: 1,
          colorbar: { title: { text: 'mass /<br>layer max', side: 'top' }, thickness: 10, len: 0.9 },
          hovertemplate: 'layer %{y} · retained token %{x}<br>%{z:.3f} of the layer’s max<extra></extra>',
        },
      ];
    }
    return [
      {
        ...common,
        colorscale: [
          [0, '#e2e8f0'],
          [1, '#0891b2'],
        ],
        zmin: 0,
        zmax: 1,
        showscale: false,
        hovertemplate: 'layer %{y} · retained token %{x}<br>%{z:d} = retrieved<extra></extra>',
      },
    ];
  }

  /**
   * @param {HeatmapMatrix} mat
   * @param {number} layer
   */
  function layout(mat, layer) {
    const bounds = mat.bounds ?? [];
    const frames = mat.x ?? [];
    const margin = { l: 52, r: mat.mode === 'hits' ? 14 : 70 };
    const axisPx = Math.max(200, (host.clientWidth || 900) - margin.l - margin.r - (mat.mode === 'hits' ? 0 : 40));
    // Where each tick sits along the axis (a share of it): a frame's column centre, or where an image's tokens start.
    const at = mat.mode === 'frames' ? frames.map((_, i) => (i + 0.5) / frames.length) : bounds.map((b) => (b.at + 0.5) / Math.max(1, mat.n ?? 1));
    const shown = thinTicks(at, mat.ticks, axisPx);
    const xaxis =
      mat.mode === 'frames'
        ? {
            title: { text: 'frame' },
            type: 'category',
            tickmode: 'array',
            tickvals: shown.map((i) => frames[i]),
            ticktext: shown.map((i) => mat.ticks[i]),
            tickangle: 0,
            tickfont: { size: 10 },
          }
        : {
            title: { text: 'retained visual tokens (cache order)' },
            tickvals: shown.map((i) => bounds[i].at),
            ticktext: shown.map((i) => mat.ticks[i]),
            tickangle: 0,
            tickfont: { size: 10 },
            range: [-0.5, (mat.n ?? 0) - 0.5],
            showgrid: false,
          };
    return baseLayout({
      height: Math.max(170, Math.min(420, 46 + mat.layers * 22 + 40)),
      margin: { ...margin, t: 8, b: mat.ticks.some((t) => t.includes('<br>')) ? 54 : 40 },
      xaxis,
      yaxis: { title: { text: 'layer' }, autorange: 'reversed', dtick: mat.layers > 16 ? 4 : 1, showgrid: false, zeroline: false },
      shapes: [...boundaryLines(mat), ...layerBox(layer, mat.layers)],
    });
  }

  return { update, plot };
}
