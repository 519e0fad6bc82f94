/**
 * Where the time went (Plotly): the stage timeline of every turn (spans on the run's clock), time per stage
 * stacked per turn, and decode latency per step (one line per turn, visual tokens attended on a second
 * axis). Each chart redraws only when the run's timeline changed, at most every `throttleMs` while events
 * stream.
 */
import { STAGES, stageTotals } from '../data/run-model.js';
import { turnLabel } from '../data/labels.js';
import { orderedTurns } from '../data/run-queries.js';
import { child } from './dom.js';
import { PLOT_CONFIG, RUN_COLOURS, STAGE_COLOURS, baseLayout } from './plot-theme.js';
import { throttle } from './throttle.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/run-model.js').Turn} Turn
 */

const Plotly = globalThis.Plotly;

/**
 * Stage spans on the run's clock (a Gantt row per turn) beside the time per stage stacked per turn.
 * @param {HTMLElement} host
 * @param {{ throttleMs?: number }} [options]
 */
export function createStageTimeline(host, { throttleMs = 250 } = {}) {
  host.classList.add('timeline');
  host.innerHTML = `<div class="tl-row"><div class="tl-gantt" data-chart="stages"></div><div class="tl-stack" data-chart="stage-totals"></div></div>`;
  const gantt = child(host, '.tl-gantt', HTMLElement);
  const stack = child(host, '.tl-stack', HTMLElement);
  let key = '';
  /** @param {RunModel} m */
  const redraw = (m) => {
    const turns = orderedTurns(m);
    Plotly.react(gantt, ganttTraces(turns), ganttLayout(turns), PLOT_CONFIG);
    Plotly.react(stack, stackTraces(turns), stackLayout(turns), PLOT_CONFIG);
  };
  const draw = throttle(redraw, throttleMs);
  /** @param {RunModel} m */
  function update(m) {
    const k = `${m.id}|${m.versions.timeline}|${m.versions.conversation}`;
    if (k === key) return;
    key = k;
    draw(m);
  }
  return { update, plots: () => [gantt, stack] };
}

/**
 * Decode latency per step, one line per turn, with the visual tokens each step attended on a second axis.
 * @param {HTMLElement} host
 * @param {{ throttleMs?: number }} [options]
 */
export function createDecodeSteps(host, { throttleMs = 250 } = {}) {
  host.classList.add('decode-steps');
  host.innerHTML = `<div class="tl-steps" data-chart="decode-steps"></div>`;
  const steps = child(host, '.tl-steps', HTMLElement);
  let key = '';
  /** @param {RunModel} m */
  const redraw = (m) => {
    const turns = orderedTurns(m);
    Plotly.react(steps, stepTraces(turns), stepLayout(turns), PLOT_CONFIG);
  };
  const draw = throttle(redraw, throttleMs);
  /** @param {RunModel} m */
  function update(m) {
    const k = `${m.id}|${m.versions.timeline}`;
    if (k === key) return;
    key = k;
    draw(m);
  }
  return { update, plots: () => [steps] };
}

const turnName = (/** @type {Turn} */ t) => turnLabel(t.turn);
const ms = (/** @type {number} */ x) => `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)} ms`;

/** @param {Turn[]} turns */
function ganttTraces(turns) {
  return STAGES.map((stage) => {
    const spans = turns.flatMap((t) => t.spans.filter((s) => s.stage === stage).map((s) => ({ t, s })));
    return {
      type: 'bar',
      orientation: 'h',
      name: stage,
      y: spans.map(({ t }) => turnName(t)),
      base: spans.map(({ s }) => s.start),
      x: spans.map(({ s }) => Math.max(s.duration, 0.0001)),
      marker: { color: STAGE_COLOURS[stage], line: { color: '#ffffff', width: 0.5 } },
      customdata: spans.map(({ s }) => [
        ms(s.duration),
        s.detail
          ? Object.entries(s.detail)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')
          : '',
      ]),
      hovertemplate: `<b>${stage}</b> %{customdata[0]}<br>from %{base:.2f} ms<br>%{customdata[1]}<extra>%{y}</extra>`,
    };
  });
}

/** @param {Turn[]} turns */
function ganttLayout(turns) {
  return baseLayout({
    height: Math.max(170, 96 + turns.length * 30),
    barmode: 'overlay',
    bargap: 0.3,
    margin: { l: 52, r: 14, t: 26, b: 46 },
    xaxis: { title: { text: 'ms since the run started', standoff: 8 } },
    yaxis: { autorange: 'reversed', type: 'category', ticks: '' },
    legend: { orientation: 'h', x: 0, y: 1.0, yanchor: 'bottom', traceorder: 'normal' },
  });
}

/** @param {number} bytes */
function kib(bytes) {
  return `${globalThis.d3.format(',.1f')(bytes / 1024)} KiB`;
}

/** @param {Turn[]} turns */
function stepTraces(turns) {
  /** @type {object[]} */
  const out = [];
  turns.forEach((t, i) => {
    const colour = RUN_COLOURS[i % RUN_COLOURS.length];
    out.push({
      type: 'scatter',
      mode: t.steps.length > 80 ? 'lines' : 'lines+markers',
      name: `${turnName(t)} ms/step`,
      x: t.steps.map((s) => s.step),
      y: t.steps.map((s) => s.ms),
      // On a GPU provider each step also says what it moved between host and device.
      customdata: t.steps.map((s) =>
        s.hostToDeviceBytes === undefined ? '' : ` · ${kib(s.hostToDeviceBytes)} to device, ${kib(s.deviceToHostBytes ?? 0)} back`,
      ),
      line: { color: colour, width: 1.6 },
      marker: { size: 4 },
      hovertemplate: `${turnName(t)} step %{x}: %{y:.3f} ms%{customdata}<extra></extra>`,
    });
    out.push({
      type: 'scatter',
      mode: 'lines',
      name: `${turnName(t)} visual attended`,
      x: t.steps.map((s) => s.step),
      y: t.steps.map((s) => s.visualAttended),
      yaxis: 'y2',
      line: { color: colour, width: 1, dash: 'dot' },
      hovertemplate: `${turnName(t)} step %{x}: %{y} visual tokens attended<extra></extra>`,
    });
  });
  return out;
}

/** @param {Turn[]} turns */
function stepLayout(turns) {
  const most = Math.max(1, ...turns.flatMap((t) => t.steps.map((s) => s.visualAttended)));
  const dtick = Math.max(1, globalThis.d3.tickStep(0, most, 4));
  return baseLayout({
    height: 250,
    margin: { l: 48, r: 52, t: 10 + 18 * Math.ceil(turns.length / 2), b: 40 },
    xaxis: { title: { text: 'decode step', standoff: 6 } },
    yaxis: { title: { text: 'ms / step' }, rangemode: 'tozero' },
    yaxis2: {
      title: { text: 'visual tokens attended' },
      overlaying: 'y',
      side: 'right',
      rangemode: 'tozero',
      showgrid: false,
      ticks: 'outside',
      ticklen: 3,
      tickformat: ',d',
      dtick,
    },
    showlegend: true,
  });
}

/** @param {Turn[]} turns */
function stackTraces(turns) {
  const totals = turns.map((t) => stageTotals(t));
  return STAGES.map((stage) => ({
    type: 'bar',
    name: stage,
    x: turns.map(turnName),
    y: totals.map((s) => s[stage]),
    marker: { color: STAGE_COLOURS[stage] },
    hovertemplate: `${stage}: %{y:.2f} ms<extra>%{x}</extra>`,
  }));
}

/** @param {Turn[]} turns */
function stackLayout(turns) {
  return baseLayout({
    height: Math.max(170, 96 + turns.length * 30),
    barmode: 'stack',
    margin: { l: 52, r: 14, t: 26, b: 46 },
    yaxis: { title: { text: 'ms' } },
    xaxis: { type: 'category' },
    showlegend: false,
  });
}
