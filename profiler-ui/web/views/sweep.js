/**
 * The budget sweep: every run measured against a dense twin (a `fidelity` event) is a point — cost on x
 * (decode ms/token, time to first token, or end to end), quality on y (mean KL or token agreement).
 * Points are grouped and coloured by workload (data/run-identity.js: the model and media a sweep holds
 * fixed), and each workload gets its own Pareto front — runs no run *of the same workload* beats on both —
 * since an image run is cheaper than a video run whatever the policy. Dense runs, which have no fidelity,
 * are vertical reference lines at their cost, labelled and coloured by workload. Runs arrive here as they
 * are recorded (a tuner's trials too). Click a point to open its run.
 */
import { pointLabels } from '../data/summary.js';
import { X_AXES, Y_AXES, identityOfModel, sweepWorkloads } from '../data/sweep-data.js';
import { download, plotToDataUrl } from '../export.js';
import { visibleText } from './conversation.js';
import { createPanel } from './panel.js';
import { child } from './dom.js';
import { PLOT_CONFIG, RUN_COLOURS, baseLayout, themeColours } from './plot-theme.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../router.js').PageState} PageState
 * @typedef {import('../router.js').ViewContext} ViewContext
 */

const d3 = globalThis.d3;
const Plotly = globalThis.Plotly;
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));

/** Marker shapes by method within a workload's colour, so two methods of one workload stay apart. */
const SYMBOLS = ['circle', 'diamond', 'square', 'triangle-up', 'cross', 'star'];

/**
 * @param {HTMLElement} root
 * @param {ViewContext} context
 */
export function createSweepView(root, { setState, fileName, identity }) {
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
    subtitle: 'one point per run with a dense twin · colour: workload · ringed: its Pareto front',
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
    const workloads = sweepWorkloads(models, state.sweepX, state.sweepY, (m) => identity?.(m.run) ?? identityOfModel(m));
    const points = workloads.flatMap((g) => g.points);
    const dense = workloads.flatMap((g) => g.dense);
    note.textContent = `${points.length} runs with fidelity · ${dense.length} dense · ${models.length - points.length - dense.length} others · ${workloads.length} workload${workloads.length === 1 ? '' : 's'}`;
    view.dataset.points = String(points.length);
    view.dataset.pareto = String(workloads.reduce((n, g) => n + g.front.length, 0));
    view.dataset.workloads = String(workloads.length);
    const methods = [...new Set(points.map((p) => p.s.method))];
    const theme = themeColours();
    /** @type {object[]} */
    const traces = [];
    /** @type {object[]} */
    const shapes = [];
    /** @type {object[]} */
    const annotations = [];
    // A dense line's label reads leftwards from the right half of the chart, so it stays inside the plot.
    const costs = [...points.map((p) => p.x ?? 0), ...dense.map((d) => d.x)];
    const mid = (Math.min(...costs) + Math.max(...costs)) / 2;
    workloads.forEach((g, wi) => {
      const colour = RUN_COLOURS[wi % RUN_COLOURS.length];
      const ps = g.points;
      const labels = pointLabels(ps.map((p) => p.s.label));
      traces.push({
        type: 'scatter',
        mode: 'markers+text',
        name: g.label,
        legendgroup: g.key,
        meta: { kind: 'points', workload: g.key },
        x: ps.map((p) => p.x),
        y: ps.map((p) => p.y),
        text: ps.map((p, i) => p.id.name ?? labels[i]),
        hovertext: ps.map((p) => p.id.label),
        textposition: 'top center',
        textfont: { size: 9.5, color: theme.muted },
        customdata: ps.map((p) => p.s.run),
        marker: {
          size: ps.map((p) => (p.pareto ? 13 : 9)),
          color: colour,
          symbol: ps.map((p) => SYMBOLS[methods.indexOf(p.s.method) % SYMBOLS.length]),
          line: { color: ps.map((p) => (p.pareto ? theme.ink : theme.paper)), width: ps.map((p) => (p.pareto ? 2 : 1)) },
        },
        hovertemplate: '%{hovertext}<br>x %{x:.4g}<br>y %{y:.4g}<extra>%{fullData.name}</extra>',
      });
      traces.push({
        type: 'scatter',
        mode: 'lines',
        name: `Pareto front · ${g.label}`,
        legendgroup: g.key,
        showlegend: false,
        meta: { kind: 'front', workload: g.key },
        x: g.front.map((p) => p.x),
        y: g.front.map((p) => p.y),
        line: { color: colour, width: 1.5, dash: 'dash', shape: 'hv' },
        hoverinfo: 'skip',
      });
      g.dense.forEach((d, di) => {
        shapes.push({ type: 'line', x0: d.x, x1: d.x, yref: 'paper', y0: 0, y1: 1, line: { color: colour, width: 1.2, dash: 'dot' } });
        // Stacked, so two workloads' dense lines at close costs keep readable labels.
        annotations.push({
          x: d.x,
          yref: 'paper',
          y: 1 - 0.06 * (wi + di),
          text: `dense · ${d.id.media.text}`,
          hovertext: d.id.label,
          showarrow: false,
          xanchor: d.x > mid ? 'right' : 'left',
          yanchor: 'top',
          font: { size: 10, color: colour },
          bgcolor: theme.paper,
        });
      });
    });
    Plotly.react(
      plot,
      traces,
      baseLayout({
        height: 460,
        margin: { l: 64, r: 20, t: 36, b: 48 },
        legend: { orientation: 'h', x: 0, y: -0.16, yanchor: 'top', font: { size: 10.5 } },
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
      ? `<table class="cmp sweep"><thead><tr><th>run</th><th>workload</th><th>policy</th><th>decode ms/token</th><th>TTFT ms</th><th>end to end ms</th><th>agreement</th><th>mean KL</th><th>Pareto</th></tr></thead><tbody>` +
        workloads
          .flatMap((g) => [...g.points].sort((p, q) => (p.x ?? 0) - (q.x ?? 0)))
          .map(
            (p) =>
              `<tr data-run="${p.s.run}" class="${p.pareto ? 'pareto' : ''}"><td><a href="#/run/${encodeURIComponent(p.s.run)}">${visibleText(p.id.name ?? p.s.run.slice(0, 8))}</a></td><td>${visibleText(p.id.workloadLabel)}</td><td>${visibleText(p.s.label)}</td><td>${sig(p.s.decodeMsPerToken)}</td><td>${sig(p.s.ttftMs)}</td><td>${sig(p.s.endToEndMs)}</td><td>${p.s.tokenAgreement == null ? '–' : d3.format('.0%')(p.s.tokenAgreement)}</td><td>${sig(p.s.meanKl)}</td><td>${p.pareto ? '●' : ''}</td></tr>`,
          )
          .join('') +
        '</tbody></table>'
      : '<p class="muted">No run has fidelity numbers yet: record runs with a dense twin (<code>fidelity: true</code>) at several budgets.</p>';
  }

  return { update, plot };
}
