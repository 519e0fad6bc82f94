/**
 * Where the time went (Plotly): the stage timeline of every turn (spans on the run's clock), time per stage
 * stacked per turn, and decode latency per step (one line per turn, visual tokens attended on a second
 * axis). Each chart redraws only when the run's timeline changed, at most every `throttleMs` while events
 * stream.
 *
 * Nothing in a turn is left blank: every stage is drawn, the dense twin's `fidelity` span too (hatched: it is
 * outside the turn's own time), and each stretch between spans is a named gap saying what runs there.
 */
import { STAGES, stageTotals } from '../data/run-model.js';
import { turnLabel } from '../data/labels.js';
import { orderedTurns, turnGaps } from '../data/run-queries.js';
import { child } from './dom.js';
import { PLOT_CONFIG, RUN_COLOURS, STAGE_COLOURS, baseLayout } from './plot-theme.js';
import { throttle } from './throttle.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/run-model.js').Turn} Turn
 */

const Plotly = globalThis.Plotly;

/** The dense twin's span: drawn after the turn's stages, hatched as outside the turn's time. */
const FIDELITY = { colour: '#64748b', pattern: { shape: 'x', fillmode: 'overlay', fgcolor: '#ffffff', size: 6, solidity: 0.25 } };
const GAP = { colour: '#e2e8f0', pattern: { shape: '/', fillmode: 'overlay', fgcolor: '#94a3b8', size: 5, solidity: 0.3 } };

/**
 * What runs between two spans, by the stages either side (src/session: each step's span covers the step's own
 * function; what lies between is the step hand-off). Gaps not listed are `OTHER_GAP`.
 * @type {Record<string, string>}
 */
const GAP_WHY = {
  'encode→prune':
    'the encode step after its tower: each image’s LLM inputs gathered, salience scored and traced (a trace whose encode span stops at the tower)',
  'decode→fidelity': 'the turn’s timings and sparsity summary (decode.ts finishTurn), before the dense twin runs',
};
const OTHER_GAP = 'step hand-off: the next step starting (or the caller between steps); no model work';

/**
 * What a gap is: its explanation, by the stages either side.
 * @param {{ after: string, before: string }} g
 */
export function gapWhy(g) {
  return GAP_WHY[`${g.after}→${g.before}`] ?? OTHER_GAP;
}

/**
 * Stage spans on the run's clock (a Gantt row per turn) beside the time per stage stacked per turn.
 * @param {HTMLElement} host
 * @param {{ throttleMs?: number }} [options]
 */
export function createStageTimeline(host, { throttleMs = 250 } = {}) {
  host.classList.add('timeline');
  host.innerHTML = `<div class="tl-row"><div class="tl-gantt" data-chart="stages"></div><div class="tl-stack" data-chart="stage-totals"></div></div><ul class="tl-gaps"></ul>`;
  const gantt = child(host, '.tl-gantt', HTMLElement);
  const stack = child(host, '.tl-stack', HTMLElement);
  const gapList = child(host, '.tl-gaps', HTMLElement);
  let key = '';
  /** @param {RunModel} m */
  const redraw = (m) => {
    const turns = orderedTurns(m);
    Plotly.react(gantt, ganttTraces(turns), ganttLayout(turns), PLOT_CONFIG);
    Plotly.react(stack, stackTraces(turns), stackLayout(turns), PLOT_CONFIG);
    gapList.innerHTML = gapItems(turns);
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

/** Gaps listed under the chart: those of at least a millisecond (all are in the chart's hovers). */
const LISTED_GAP_MS = 1;

/**
 * The turns' gaps of a millisecond or more, as list items naming what runs in each.
 * @param {Turn[]} turns
 */
function gapItems(turns) {
  return turns
    .flatMap((t) =>
      turnGaps(t, LISTED_GAP_MS).map(
        (g) =>
          `<li data-turn="${t.turn}" data-after="${g.after}" data-before="${g.before}" data-ms="${g.duration.toFixed(3)}">` +
          `<b>${turnName(t)}</b>, ${g.after} → ${g.before}: ${ms(g.duration)} — ${gapWhy(g)}</li>`,
      ),
    )
    .join('');
}

/** @param {Record<string, number> | null} detail */
function detailText(detail) {
  if (!detail) return '';
  return Object.entries(detail)
    .map(([k, v]) => (k.endsWith('Ms') ? `${k.slice(0, -2)} ${ms(v)}` : `${k} ${globalThis.d3.format(',.4~g')(v)}`))
    .join(', ');
}

/** @param {Turn[]} turns */
function ganttTraces(turns) {
  /** @type {object[]} */
  const out = [...STAGES, /** @type {const} */ ('fidelity')].map((stage) => {
    const spans = turns.flatMap((t) => t.spans.filter((s) => s.stage === stage).map((s) => ({ t, s })));
    const fidelity = stage === 'fidelity';
    return {
      type: 'bar',
      orientation: 'h',
      name: fidelity ? 'fidelity (dense twin)' : stage,
      y: spans.map(({ t }) => turnName(t)),
      base: spans.map(({ s }) => s.start),
      x: spans.map(({ s }) => Math.max(s.duration, 0.0001)),
      marker: fidelity
        ? { color: FIDELITY.colour, pattern: FIDELITY.pattern, line: { color: '#ffffff', width: 0.5 } }
        : { color: STAGE_COLOURS[stage], line: { color: '#ffffff', width: 0.5 } },
      customdata: spans.map(({ s }) => [ms(s.duration), detailText(s.detail)]),
      hovertemplate:
        `<b>${stage}</b> %{customdata[0]}<br>from %{base:.2f} ms<br>%{customdata[1]}` +
        (fidelity ? '<br>the dense twin’s run of the turn: outside the turn’s time' : '') +
        '<extra>%{y}</extra>',
    };
  });
  const gaps = turns.flatMap((t) => turnGaps(t).map((g) => ({ t, g })));
  out.push({
    type: 'bar',
    orientation: 'h',
    name: 'between steps',
    y: gaps.map(({ t }) => turnName(t)),
    base: gaps.map(({ g }) => g.start),
    x: gaps.map(({ g }) => g.duration),
    marker: { color: GAP.colour, pattern: GAP.pattern, line: { color: '#94a3b8', width: 0.5 } },
    customdata: gaps.map(({ g }) => [ms(g.duration), `${g.after} → ${g.before}`, gapWhy(g)]),
    hovertemplate: '<b>gap</b> %{customdata[0]}, %{customdata[1]}<br>%{customdata[2]}<extra>%{y}</extra>',
  });
  return out;
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
      // One legend entry a turn (its two lines toggle together); the axis titles say which line is which.
      name: turnName(t),
      legendgroup: turnName(t),
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
      legendgroup: turnName(t),
      showlegend: false,
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
  // Steps are whole numbers: ticks at least one apart (a short answer's axis would otherwise show 1.5).
  const lastStep = Math.max(1, ...turns.flatMap((t) => t.steps.map((s) => s.step)));
  const stepTick = Math.max(1, globalThis.d3.tickStep(0, lastStep, 8));
  // The legend's rows (about eight short turn names a row) sit above the plot: the plot keeps its height.
  const legendRows = Math.ceil(turns.length / 8);
  return baseLayout({
    height: 230 + 18 * legendRows,
    margin: { l: 48, r: 52, t: 8 + 18 * legendRows, b: 40 },
    xaxis: { title: { text: 'decode step', standoff: 6 }, tickformat: ',d', dtick: stepTick },
    yaxis: { title: { text: 'ms / step (solid)' }, rangemode: 'tozero' },
    yaxis2: {
      title: { text: 'visual tokens attended (dotted)' },
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
  const gaps = turns.map((t) => turnGaps(t).reduce((a, g) => a + g.duration, 0));
  return [
    ...STAGES.map((stage) => ({
      type: 'bar',
      name: stage,
      x: turns.map(turnName),
      y: totals.map((s) => s[stage]),
      marker: { color: STAGE_COLOURS[stage] },
      hovertemplate: `${stage}: %{y:.2f} ms<extra>%{x}</extra>`,
    })),
    {
      type: 'bar',
      name: 'between steps',
      x: turns.map(turnName),
      y: gaps,
      marker: { color: GAP.colour, pattern: GAP.pattern },
      hovertemplate: 'between steps: %{y:.2f} ms<extra>%{x}</extra>',
    },
    {
      type: 'bar',
      name: 'fidelity (dense twin)',
      x: turns.map(turnName),
      y: totals.map((s) => s.fidelity),
      marker: { color: FIDELITY.colour, pattern: FIDELITY.pattern },
      hovertemplate: 'fidelity (dense twin, outside the turn): %{y:.2f} ms<extra>%{x}</extra>',
    },
  ];
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
