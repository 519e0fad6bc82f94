/**
 * Two runs side by side — dense against sparse, or two budgets: their answers (where they part), per-stage
 * times and ratios, kept and attended visual tokens, fidelity, decode latency, and the retention maps of the
 * first turn's images in each (each image on its own grid).
 */
import { imageLabel, turnLabel, turnTitle } from '../data/labels.js';
import { STAGES } from '../data/run-model.js';
import { imagesAtTurn, layerCount, orderedTurns } from '../data/run-queries.js';
import { ratio, runSummary } from '../data/summary.js';
import { download, plotToDataUrl } from '../export.js';
import { visibleText } from './conversation.js';
import { createPanel } from './panel.js';
import { PLOT_CONFIG, RUN_COLOURS, baseLayout } from './plot-theme.js';
import { frameData } from './retention-map.js';
import { child } from './dom.js';
import { drawFrame } from './retention-frame.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/summary.js').RunSummary} RunSummary
 * @typedef {import('../router.js').PageState} PageState
 * @typedef {import('../router.js').ViewContext} ViewContext
 * @typedef {[label: string, a: number | null, b: number | null, format: (x: number) => string, lowerIsBetter: boolean | null]} CompareRow
 */

const d3 = globalThis.d3;
const Plotly = globalThis.Plotly;
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));
const pct = (/** @type {number | null | undefined} */ x) => (x == null ? '–' : d3.format('.0%')(x));
const int = (/** @type {number | null | undefined} */ x) => (x == null ? '–' : d3.format(',')(Math.round(x)));
const ms = (/** @type {number} */ x) => `${sig(x)} ms`;
/** Images of the first turn drawn per side; a long video's other frames are in the run view. */
const SIDE_FRAMES = 4;

/**
 * Rows of the comparison table: [label, a, b, format, lowerIsBetter]. Pure.
 * @param {RunSummary} sa
 * @param {RunSummary} sb
 * @returns {CompareRow[]}
 */
export function compareRows(sa, sb) {
  return [
    ['prefill', sa.prefillMs, sb.prefillMs, ms, true],
    ['time to first token', sa.ttftMs, sb.ttftMs, ms, true],
    ['decode', sa.decodeMsPerToken, sb.decodeMsPerToken, (x) => `${sig(x)} ms/token`, true],
    ['decode tokens/s', sa.tokensPerSecond, sb.tokensPerSecond, (x) => sig(x, 4), false],
    ['end to end', sa.endToEndMs, sb.endToEndMs, ms, true],
    ...STAGES.map((s) => /** @type {CompareRow} */ ([`  ${s}`, sa.stages[s], sb.stages[s], ms, true])),
    ['visual tokens kept', sa.keptTokens, sb.keptTokens, int, null],
    ['visual attended / step', sa.meanVisualAttended, sb.meanVisualAttended, int, null],
    ['tokens attended / step', sa.meanAttended, sb.meanAttended, int, null],
    ['generated tokens', sa.generatedTokens, sb.generatedTokens, int, null],
    ['token agreement', sa.tokenAgreement, sb.tokenAgreement, pct, false],
    ['mean KL vs dense', sa.meanKl, sb.meanKl, sig, true],
    ['retrieval recall', sa.retrievalRecall, sb.retrievalRecall, pct, false],
  ];
}

/**
 * Length of the common prefix of two strings.
 * @param {string} a
 * @param {string} b
 */
export function commonPrefix(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * @param {HTMLElement} root
 * @param {ViewContext & { runLabel: (run: string) => string }} context
 */
export function createCompareView(root, { setState, runLabel, fileName }) {
  root.innerHTML = '';
  const view = document.createElement('div');
  view.className = 'compare-view';
  root.appendChild(view);
  const bar = document.createElement('div');
  bar.className = 'toolbar';
  bar.innerHTML = `
    <label><span class="swatch" style="background:${RUN_COLOURS[0]}"></span>run A <select id="cmp-a"></select></label>
    <button id="cmp-swap" class="ghost" title="swap A and B">⇄</button>
    <label><span class="swatch" style="background:${RUN_COLOURS[1]}"></span>run B <select id="cmp-b"></select></label>
    <span class="sep"></span>
    <label class="layer">layer <input id="cmp-layer" type="range" min="0" max="0" value="0"><output id="cmp-layer-out">0</output></label>`;
  view.appendChild(bar);
  const selA = child(bar, '#cmp-a', HTMLSelectElement);
  const selB = child(bar, '#cmp-b', HTMLSelectElement);
  const layerIn = child(bar, '#cmp-layer', HTMLInputElement);
  const layerOut = child(bar, '#cmp-layer-out', HTMLOutputElement);
  selA.addEventListener('change', () => setState({ a: selA.value }));
  selB.addEventListener('change', () => setState({ b: selB.value }));
  child(bar, '#cmp-swap', HTMLButtonElement).addEventListener('click', () => setState({ a: selB.value, b: selA.value }));
  layerIn.addEventListener('input', () => setState({ cmpLayer: Number(layerIn.value) }));

  const sides = document.createElement('div');
  sides.className = 'compare-sides';
  view.appendChild(sides);
  const grid = document.createElement('div');
  grid.className = 'run-grid compare-grid';
  view.appendChild(grid);
  const tablePanel = createPanel(grid, { id: 'p-cmp-table', title: 'Differences', subtitle: 'B / A: below 1 means B is faster or smaller' });
  /** @type {{ a: RunModel | null, b: RunModel | null } | null} */
  let pair = null;
  const stagesPanel = createPanel(grid, {
    id: 'p-cmp-stages',
    title: 'Time per stage',
    subtitle: 'all turns, ms · labels: B / A',
    exportPng: async () => download(await plotToDataUrl(stagesPlot), `${fileName(pair?.a)}-vs-${fileName(pair?.b)}-stages.png`),
  });
  const stagesPlot = document.createElement('div');
  stagesPanel.body.appendChild(stagesPlot);
  const stepsPanel = createPanel(grid, {
    id: 'p-cmp-steps',
    className: 'wide',
    title: 'Decode latency and KL per step',
    subtitle: 'steps of all turns in order · KL against the dense twin where measured',
    exportPng: async () => download(await plotToDataUrl(stepsPlot), `${fileName(pair?.a)}-vs-${fileName(pair?.b)}-steps.png`),
  });
  const stepsPlot = document.createElement('div');
  stepsPanel.body.appendChild(stepsPlot);
  let key = '';

  /**
   * @param {HTMLSelectElement} sel
   * @param {readonly { run: string }[]} runs
   * @param {string | undefined} value
   */
  function options(sel, runs, value) {
    const k = runs.map((r) => `${r.run}:${runLabel(r.run)}`).join('|');
    if (sel.dataset.key !== k) {
      sel.innerHTML = runs.map((r) => `<option value="${r.run}">${visibleText(runLabel(r.run))}</option>`).join('');
      sel.dataset.key = k;
    }
    sel.value = value ?? '';
  }

  /**
   * @param {RunModel | null} a
   * @param {RunModel | null} b
   * @param {PageState} state
   * @param {readonly { run: string }[]} runs  every run the page knows, for the pickers
   */
  function update(a, b, state, runs) {
    options(selA, runs, a?.run);
    options(selB, runs, b?.run);
    pair = { a, b };
    if (!a || !b) {
      sides.innerHTML = '<p class="muted">Pick two runs (load or record at least two).</p>';
      return;
    }
    const layers = Math.max(layerCount(a), layerCount(b), 1);
    const layer = Math.min(state.cmpLayer ?? 0, layers - 1);
    layerIn.max = String(layers - 1);
    layerIn.value = String(layer);
    layerOut.textContent = `${layer} / ${layers - 1}`;
    const k = `${a.id}|${b.id}|${JSON.stringify(a.versions)}|${JSON.stringify(b.versions)}|${layer}`;
    if (k === key) return;
    key = k;
    const sa = runSummary(a);
    const sb = runSummary(b);
    sides.innerHTML = '';
    [a, b].forEach((m, i) => sides.appendChild(side(m, i === 0 ? sa : sb, i, layer, i === 0 ? b : a)));
    drawTable(sa, sb);
    drawStages(sa, sb);
    drawSteps(a, b);
    view.dataset.a = a.run;
    view.dataset.b = b.run;
  }

  /**
   * @param {RunModel} m
   * @param {RunSummary} s
   * @param {number} i  0 for A, 1 for B
   * @param {number} layer
   * @param {RunModel} other
   */
  function side(m, s, i, layer, other) {
    const el = document.createElement('section');
    el.className = 'panel side';
    el.dataset.run = m.run;
    el.dataset.side = i === 0 ? 'a' : 'b';
    const otherTurns = other ? orderedTurns(other) : [];
    el.innerHTML =
      `<header class="panel-head"><h2><span class="swatch" style="background:${RUN_COLOURS[i]}"></span>${i === 0 ? 'A' : 'B'} · ${visibleText(s.label)}</h2>` +
      `<span class="sub">${visibleText(m.start?.model?.dir ?? '')} · ${m.run.slice(0, 8)}</span>` +
      `<span class="tools"><a class="ghost button" href="#/run/${encodeURIComponent(m.run)}">open</a></span></header>` +
      `<div class="panel-body side-body"><div class="side-frame"></div><div class="side-answers"></div></div>`;
    const images = imagesAtTurn(m, 0);
    const frameHost = child(el, '.side-frame', HTMLElement);
    if (images.length) {
      // Each image of the first turn on its own grid (native-resolution towers give each its own shape).
      for (const img of images.slice(0, SIDE_FRAMES)) frameHost.appendChild(sideFrame(m, img, layer));
      if (images.length > SIDE_FRAMES)
        frameHost.insertAdjacentHTML('beforeend', `<div class="caption">+ ${images.length - SIDE_FRAMES} more in the run view</div>`);
    } else frameHost.innerHTML = '<p class="muted">no image</p>';
    child(el, '.side-answers', HTMLElement).innerHTML = orderedTurns(m)
      .map((t) => {
        const ti = t.turn;
        const ans = t.answer ?? t.tokens.join('');
        const o = otherTurns.find((x) => x.turn === ti);
        const oa = o ? (o.answer ?? o.tokens.join('')) : null;
        const same = oa == null ? ans.length : commonPrefix(ans, oa);
        const diff =
          oa == null
            ? ''
            : same === ans.length && same === oa.length
              ? '<span class="chip ok">same answer</span>'
              : `<span class="chip warn">differs from char ${same}</span>`;
        return (
          `<div class="turn compact"><header><b>${turnTitle(ti)}</b>${diff}</header><div class="msg user"><p>${visibleText(t.text ?? '')}</p></div>` +
          `<div class="msg assistant"><p class="answer"><span class="common">${visibleText(ans.slice(0, same))}</span><mark>${visibleText(ans.slice(same))}</mark></p></div></div>`
        );
      })
      .join('');
    return el;
  }

  /**
   * One image's retention map at the first turn (index 0) and the layer, with its counts.
   * @param {RunModel} m
   * @param {number} img
   * @param {number} layer
   */
  function sideFrame(m, img, layer) {
    const fig = document.createElement('figure');
    fig.className = 'side-image';
    fig.dataset.image = String(img);
    const d = frameData(m, img, 0, layer);
    drawFrame(fig, d);
    const kept = d.state.reduce((x, y) => x + y, 0);
    const ret = d.retrieved.reduce((x, y) => x + y, 0);
    const retrieval = m.turns.get(0)?.retrieval[layer];
    fig.insertAdjacentHTML(
      'beforeend',
      `<figcaption class="caption">${imageLabel(m, img)} · ${d.rows}×${d.cols} · kept ${kept}/${d.total} · ` +
        (retrieval ? `retrieved ${ret} at layer ${layer}, ${turnLabel(0)}` : 'no retrieval: decode attends every kept token') +
        '</figcaption>',
    );
    return fig;
  }

  /**
   * @param {RunSummary} sa
   * @param {RunSummary} sb
   */
  function drawTable(sa, sb) {
    const rows = compareRows(sa, sb);
    tablePanel.body.innerHTML =
      `<table class="cmp"><thead><tr><th></th><th><span class="swatch" style="background:${RUN_COLOURS[0]}"></span>A</th><th><span class="swatch" style="background:${RUN_COLOURS[1]}"></span>B</th><th>B / A</th></tr></thead><tbody>` +
      rows
        .map(([label, x, y, f, lower]) => {
          const r = ratio(x, y);
          const good = r == null || lower == null || Math.abs(r - 1) < 0.02 ? '' : r < 1 === lower ? 'better' : 'worse';
          return `<tr data-metric="${label.trim()}"><th>${label.replace(/^ +/, '&emsp;')}</th><td>${x == null ? '–' : f(x)}</td><td>${y == null ? '–' : f(y)}</td><td class="${good}">${r == null ? '–' : `${sig(r)}×`}</td></tr>`;
        })
        .join('') +
      '</tbody></table>';
  }

  /**
   * @param {RunSummary} sa
   * @param {RunSummary} sb
   */
  function drawStages(sa, sb) {
    const stages = STAGES.filter((s) => sa.stages[s] > 0 || sb.stages[s] > 0);
    const trace = (/** @type {RunSummary} */ s, /** @type {number} */ i) => ({
      type: 'bar',
      orientation: 'h',
      name: i === 0 ? 'A' : 'B',
      y: stages,
      x: stages.map((st) => s.stages[st]),
      marker: { color: RUN_COLOURS[i] },
      text: i === 1 ? stages.map((st) => (ratio(sa.stages[st], sb.stages[st]) == null ? '' : `${sig(ratio(sa.stages[st], sb.stages[st]), 2)}×`)) : undefined,
      textposition: 'outside',
      cliponaxis: false,
      hovertemplate: `${i === 0 ? 'A' : 'B'} %{y}: %{x:.2f} ms<extra></extra>`,
    });
    Plotly.react(
      stagesPlot,
      [trace(sa, 0), trace(sb, 1)],
      baseLayout({
        height: 300,
        barmode: 'group',
        margin: { l: 64, r: 40, t: 24, b: 36 },
        xaxis: { title: { text: 'ms' }, rangemode: 'tozero' },
        yaxis: { autorange: 'reversed', ticks: '' },
        legend: { orientation: 'h', x: 0, y: 1.0, yanchor: 'bottom' },
      }),
      PLOT_CONFIG,
    );
    stagesPlot.dataset.stages = stages.join(',');
  }

  /**
   * @param {RunModel} a
   * @param {RunModel} b
   */
  function drawSteps(a, b) {
    /** @type {object[]} */
    const traces = [];
    [a, b].forEach((m, i) => {
      const steps = orderedTurns(m).flatMap((t) => t.steps);
      traces.push({
        type: 'scatter',
        mode: 'lines',
        name: `${i === 0 ? 'A' : 'B'} ms/step`,
        y: steps.map((s) => s.ms),
        line: { color: RUN_COLOURS[i], width: 1.5 },
        hovertemplate: `${i === 0 ? 'A' : 'B'} step %{x}: %{y:.3f} ms<extra></extra>`,
      });
      const kl = orderedTurns(m).flatMap((t) => t.fidelity?.klPerStep ?? []);
      if (kl.length) {
        traces.push({
          type: 'scatter',
          mode: 'lines',
          name: `${i === 0 ? 'A' : 'B'} KL`,
          y: kl,
          yaxis: 'y2',
          line: { color: RUN_COLOURS[i], width: 1.2, dash: 'dot' },
          hovertemplate: `${i === 0 ? 'A' : 'B'} step %{x}: KL %{y:.3g}<extra></extra>`,
        });
      }
    });
    Plotly.react(
      stepsPlot,
      traces,
      baseLayout({
        height: 240,
        margin: { l: 52, r: 60, t: 26, b: 36 },
        xaxis: { title: { text: 'decode step (all turns)', standoff: 4 } },
        yaxis: { title: { text: 'ms / step' }, rangemode: 'tozero' },
        yaxis2: { title: { text: 'KL vs dense' }, overlaying: 'y', side: 'right', rangemode: 'tozero', showgrid: false, exponentformat: 'e' },
      }),
      PLOT_CONFIG,
    );
  }

  return { update };
}
