/**
 * The budget sweep: every run measured against a dense twin (a `fidelity` event) is a point — cost on x
 * (decode ms/token, time to first token, or end to end), quality on y (mean KL or token agreement) — with
 * the Pareto front drawn through the runs no other run beats on both. Dense runs, which have no fidelity,
 * appear as vertical reference lines at their cost. Click a point to open its run.
 */
import { paretoFront, pointLabels, runSummary } from '../data/summary.js';
import { download, plotToDataUrl } from '../export.js';
import { visibleText } from './conversation.js';
import { createPanel } from './panel.js';
import { child } from './dom.js';
import { PLOT_CONFIG, RUN_COLOURS, baseLayout } from './plot-theme.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/summary.js').RunSummary} RunSummary
 * @typedef {import('../router.js').PageState} PageState
 * @typedef {import('../router.js').ViewContext} ViewContext
 * @typedef {{ label: string, get: (s: RunSummary) => number | null }} XAxis
 * @typedef {XAxis & { better: 'min' | 'max' }} YAxis
 * @typedef {{ s: RunSummary, x: number | null, y: number | null, pareto?: boolean }} SweepPoint
 */

const d3 = globalThis.d3;
const Plotly = globalThis.Plotly;
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));

/** @type {Record<string, XAxis>} */
export const X_AXES = {
  decode: { label: 'decode latency (ms / token)', get: (s) => s.decodeMsPerToken },
  ttft: { label: 'time to first token (ms, mean over turns)', get: (s) => s.ttftMs },
  // turn.end's totalSeconds; with fidelity on, today's engine counts the dense twin's work in it.
  e2e: { label: 'end to end (ms, all turns, as turn.end reports it)', get: (s) => s.endToEndMs },
};
/** @type {Record<string, YAxis>} */
export const Y_AXES = {
  kl: { label: 'mean KL vs dense (lower is better)', get: (s) => s.meanKl, better: 'min' },
  agreement: { label: 'token agreement with dense (higher is better)', get: (s) => s.tokenAgreement, better: 'max' },
};

/**
 * The sweep's points and front from run models. Pure.
 * @param {readonly RunModel[]} models
 * @param {string} xKey
 * @param {string} yKey
 */
export function sweepPoints(models, xKey, yKey) {
  const X = X_AXES[xKey] ?? X_AXES.decode;
  const Y = Y_AXES[yKey] ?? Y_AXES.kl;
  const summaries = models.map(runSummary);
  /** @type {SweepPoint[]} */
  const points = summaries.filter((s) => s.hasFidelity).map((s) => ({ s, x: X.get(s), y: Y.get(s) }));
  const front = new Set(paretoFront(points, { xBetter: 'min', yBetter: Y.better }));
  points.forEach((p, i) => (p.pareto = front.has(i)));
  const dense = summaries.flatMap((s) => {
    const x = X.get(s);
    return s.dense && x != null ? [{ s, x }] : [];
  });
  return { points, dense, frontOrder: paretoFront(points, { xBetter: 'min', yBetter: Y.better }).map((i) => points[i]) };
}

/**
 * @param {HTMLElement} root
 * @param {ViewContext} context
 */
export function createSweepView(root, { setState, fileName }) {
  root.innerHTML = '';
  const view = document.createElement('div');
  view.className = 'sweep-view';
  root.appendChild(view);
  const bar = document.createElement('div');
  bar.className = 'toolbar';
  bar.innerHTML = `
    <label>x <select id="sweep-x">${Object.entries(X_AXES)
      .map(([k, v]) => `<option value="${k}">${v.label}</option>`)
      .join('')}</select></label>
    <label>y <select id="sweep-y">${Object.entries(Y_AXES)
      .map(([k, v]) => `<option value="${k}">${v.label}</option>`)
      .join('')}</select></label>
    <span class="muted" id="sweep-note"></span>`;
  view.appendChild(bar);
  const xs = child(bar, '#sweep-x', HTMLSelectElement);
  const ys = child(bar, '#sweep-y', HTMLSelectElement);
  const note = child(bar, '#sweep-note', HTMLElement);
  xs.addEventListener('change', () => setState({ sweepX: xs.value }));
  ys.addEventListener('change', () => setState({ sweepY: ys.value }));
  const panel = createPanel(view, {
    id: 'p-sweep',
    title: 'Budget sweep',
    subtitle: 'one point per run with a dense twin · ringed: Pareto front',
    exportPng: async () => download(await plotToDataUrl(plot), `${fileName(null)}-sweep.png`),
  });
  const plot = /** @type {PlotlyElement} */ (/** @type {HTMLElement} */ (document.createElement('div')));
  plot.className = 'sweep-plot';
  panel.body.appendChild(plot);
  const table = document.createElement('div');
  panel.body.appendChild(table);
  let key = '';
  let bound = false;

  /**
   * @param {RunModel[]} models
   * @param {PageState} state
   */
  function update(models, state) {
    xs.value = state.sweepX;
    ys.value = state.sweepY;
    const k = `${state.sweepX}|${state.sweepY}|${models.map((m) => `${m.id}:${m.versions.fidelity}:${m.versions.timeline}:${m.versions.meta}`).join(',')}`;
    if (k === key) return;
    key = k;
    const { points, dense, frontOrder } = sweepPoints(models, state.sweepX, state.sweepY);
    note.textContent = `${points.length} runs with fidelity · ${dense.length} dense · ${models.length - points.length - dense.length} others`;
    view.dataset.points = String(points.length);
    view.dataset.pareto = String(frontOrder.length);
    const methods = [...new Set(points.map((p) => p.s.method))];
    /** @type {object[]} */
    const traces = methods.map((method, i) => {
      const ps = points.filter((p) => p.s.method === method);
      return {
        type: 'scatter',
        mode: 'markers+text',
        name: method,
        x: ps.map((p) => p.x),
        y: ps.map((p) => p.y),
        text: pointLabels(ps.map((p) => p.s.label)),
        textposition: 'top center',
        textfont: { size: 9.5, color: '#475569' },
        customdata: ps.map((p) => p.s.run),
        marker: {
          size: ps.map((p) => (p.pareto ? 13 : 9)),
          color: RUN_COLOURS[(i + 2) % RUN_COLOURS.length],
          line: { color: ps.map((p) => (p.pareto ? '#0f172a' : '#ffffff')), width: ps.map((p) => (p.pareto ? 2 : 1)) },
        },
        hovertemplate: '%{text}<br>x %{x:.4g}<br>y %{y:.4g}<br>%{customdata}<extra>%{fullData.name}</extra>',
      };
    });
    traces.unshift({
      type: 'scatter',
      mode: 'lines',
      name: 'Pareto front',
      x: frontOrder.map((p) => p.x),
      y: frontOrder.map((p) => p.y),
      line: { color: '#0f172a', width: 1.5, dash: 'dash', shape: 'hv' },
      hoverinfo: 'skip',
    });
    const shapes = dense.map((d) => ({ type: 'line', x0: d.x, x1: d.x, yref: 'paper', y0: 0, y1: 1, line: { color: '#64748b', width: 1.2, dash: 'dot' } }));
    const annotations = dense.map((d) => ({
      x: d.x,
      yref: 'paper',
      y: 1,
      text: 'dense',
      showarrow: false,
      yanchor: 'bottom',
      font: { size: 10, color: '#475569' },
    }));
    Plotly.react(
      plot,
      traces,
      baseLayout({
        height: 440,
        margin: { l: 64, r: 20, t: 36, b: 48 },
        xaxis: { title: { text: (X_AXES[state.sweepX] ?? X_AXES.decode).label } },
        yaxis: { title: { text: (Y_AXES[state.sweepY] ?? Y_AXES.kl).label }, exponentformat: 'e', rangemode: 'tozero' },
        shapes,
        annotations,
      }),
      PLOT_CONFIG,
    );
    if (!bound) {
      bound = true;
      plot.on('plotly_click', (ev) => {
        const run = ev.points?.[0]?.customdata;
        if (typeof run === 'string' && run) setState({ route: 'run', run });
      });
    }
    table.innerHTML = points.length
      ? `<table class="cmp sweep"><thead><tr><th>run</th><th>policy</th><th>decode ms/token</th><th>TTFT ms</th><th>end to end ms</th><th>agreement</th><th>mean KL</th><th>Pareto</th></tr></thead><tbody>` +
        points
          .sort((p, q) => (p.x ?? 0) - (q.x ?? 0))
          .map(
            (p) =>
              `<tr data-run="${p.s.run}" class="${p.pareto ? 'pareto' : ''}"><td><a href="#/run/${encodeURIComponent(p.s.run)}">${p.s.run.slice(0, 8)}</a></td><td>${visibleText(p.s.label)}</td><td>${sig(p.s.decodeMsPerToken)}</td><td>${sig(p.s.ttftMs)}</td><td>${sig(p.s.endToEndMs)}</td><td>${p.s.tokenAgreement == null ? '–' : d3.format('.0%')(p.s.tokenAgreement)}</td><td>${sig(p.s.meanKl)}</td><td>${p.pareto ? '●' : ''}</td></tr>`,
          )
          .join('') +
        '</tbody></table>'
      : '<p class="muted">No run has fidelity numbers yet: record runs with a dense twin (<code>fidelity: true</code>) at several budgets.</p>';
  }

  return { update, plot };
}
