/**
 * Two runs side by side — dense against sparse, or two budgets: their answers (where they part), per-stage
 * times and ratios, kept and attended visual tokens, fidelity, decode latency, and the retention maps at a
 * turn and frame picked in the toolbar (by default where the answers part), with what only one run kept or
 * retrieved ringed and a difference map (compare-frames.js).
 */
import { imageLabel, turnTitle } from '../data/labels.js';
import { STAGES } from '../data/run-model.js';
import { layerCount, orderedTurns } from '../data/run-queries.js';
import { ratio, runSummary } from '../data/summary.js';
import { download, plotToDataUrl } from '../export.js';
import { visibleText } from './conversation.js';
import { createPanel } from './panel.js';
import { PLOT_CONFIG, RUN_COLOURS, baseLayout } from './plot-theme.js';
import { child } from './dom.js';
import { compareTurns, differenceFigure, frameDifference, framesToCompare, sideFrame } from './compare-frames.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/summary.js').RunSummary} RunSummary
 * @typedef {import('../router.js').PageState} PageState
 * @typedef {import('../router.js').ViewContext} ViewContext
 * @typedef {import('./overlays.js').Tooltip} Tooltip
 * @typedef {import('./compare-frames.js').DiffKind} DiffKind
 * @typedef {[label: string, a: number | null, b: number | null, format: (x: number) => string, lowerIsBetter: boolean | null]} CompareRow
 */

const d3 = globalThis.d3;
const Plotly = globalThis.Plotly;
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));
const pct = (/** @type {number | null | undefined} */ x) => (x == null ? '–' : d3.format('.0%')(x));
const int = (/** @type {number | null | undefined} */ x) => (x == null ? '–' : d3.format(',')(Math.round(x)));
const ms = (/** @type {number} */ x) => `${sig(x)} ms`;
/** Images drawn per side: all of a turn's up to this many, else the picked frame alone. */
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
 * @param {ViewContext & { runLabel: (run: string) => string, tooltip?: Tooltip }} context
 */
export function createCompareView(root, { setState, runLabel, fileName, tooltip }) {
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
    <label class="layer">layer <input id="cmp-layer" type="range" min="0" max="0" value="0"><output id="cmp-layer-out">0</output></label>
    <label>turn <select id="cmp-turn" aria-label="turn to compare"></select></label>
    <label>frame <select id="cmp-frame" aria-label="frame to compare"></select></label>
    <label>difference <select id="cmp-diff" aria-label="what to compare"><option value="retrieved">retrieved</option><option value="kept">kept</option></select></label>`;
  view.appendChild(bar);
  const turnSel = child(bar, '#cmp-turn', HTMLSelectElement);
  const frameSel = child(bar, '#cmp-frame', HTMLSelectElement);
  const diffSel = child(bar, '#cmp-diff', HTMLSelectElement);
  // The picks stay with the view (null: the default, which follows the runs as they stream).
  /** @type {{ turn: number | null, frame: number | null, kind: DiffKind }} */
  const pick = { turn: null, frame: null, kind: 'retrieved' };
  turnSel.addEventListener('change', () => {
    pick.turn = Number(turnSel.value);
    pick.frame = null;
    setState({});
  });
  frameSel.addEventListener('change', () => {
    pick.frame = Number(frameSel.value);
    setState({});
  });
  diffSel.addEventListener('change', () => {
    pick.kind = diffSel.value === 'kept' ? 'kept' : 'retrieved';
    setState({});
  });
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
    const k = `${a.id}|${b.id}|${JSON.stringify(a.versions)}|${JSON.stringify(b.versions)}|${layer}|${pick.turn}|${pick.frame}|${pick.kind}`;
    if (k === key) return;
    key = k;
    const sa = runSummary(a);
    const sb = runSummary(b);
    const at = chooseFrame(a, b, layer);
    sides.innerHTML = '';
    [a, b].forEach((m, i) => sides.appendChild(side(m, i === 0 ? sa : sb, i, at, i === 0 ? b : a)));
    if (at.frame != null) {
      const diff = document.createElement('section');
      diff.className = 'panel side diff';
      diff.id = 'p-cmp-diff';
      diff.innerHTML =
        `<header class="panel-head"><h2>Difference</h2><span class="sub">${visibleText(`${imageLabel(a, at.frame)} · ${turnTitle(at.turn)} · layer ${layer}`)}: ` +
        `what only A or only B ${pick.kind === 'kept' ? 'kept' : 'retrieved'}</span></header><div class="panel-body side-frame"></div>`;
      child(diff, '.side-frame', HTMLElement).appendChild(differenceFigure(a, b, at.frame, { turn: at.turn, layer, kind: pick.kind, tooltip }));
      sides.appendChild(diff);
    }
    drawTable(sa, sb);
    drawStages(sa, sb);
    drawSteps(a, b);
    view.dataset.a = a.run;
    view.dataset.b = b.run;
  }

  /**
   * The turn and frame to draw: the picks, else the first turn whose answers part (the last turn where none does)
   * and the frame the runs treat most differently there. Fills the pickers.
   * @param {RunModel} a
   * @param {RunModel} b
   * @param {number} layer
   * @returns {{ turn: number, frame: number | null, frames: number[], layer: number }}
   */
  function chooseFrame(a, b, layer) {
    const { turns, parting } = compareTurns(a, b);
    const turn = pick.turn != null && turns.includes(pick.turn) ? pick.turn : (parting ?? turns.at(-1) ?? 0);
    turnSel.innerHTML = turns.map((t) => `<option value="${t}">${t + 1}${t === parting ? ' · answers part' : ''}</option>`).join('');
    turnSel.value = String(turn);
    const frames = framesToCompare(a, b, turn, layer, pick.kind);
    const most = frames.reduce((best, f) => ((f.differ ?? -1) > (best?.differ ?? -1) ? f : best), frames[0]);
    const frame = pick.frame != null && frames.some((f) => f.image === pick.frame) ? pick.frame : (most?.image ?? null);
    frameSel.innerHTML = frames
      .map((f) => `<option value="${f.image}">${visibleText(imageLabel(a, f.image))}${f.differ == null ? '' : ` · ${f.differ} differ`}</option>`)
      .join('');
    frameSel.value = String(frame ?? '');
    frameSel.disabled = !frames.length;
    diffSel.value = pick.kind;
    view.dataset.turn = String(turn);
    view.dataset.frame = String(frame ?? '');
    return { turn, frame, frames: frames.map((f) => f.image), layer };
  }

  /**
   * @param {RunModel} m
   * @param {RunSummary} s
   * @param {number} i  0 for A, 1 for B
   * @param {{ turn: number, frame: number | null, frames: number[], layer: number }} at
   * @param {RunModel} other
   */
  function side(m, s, i, at, other) {
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
    const frameHost = child(el, '.side-frame', HTMLElement);
    const [a, b] = i === 0 ? [m, other] : [other, m];
    // All of a turn's few images, each on its own grid (native-resolution towers give each its own shape); of a
    // long video, the picked frame.
    const shown = at.frames.length <= SIDE_FRAMES ? at.frames : at.frame != null ? [at.frame] : [];
    for (const img of shown) {
      if (!m.images.has(img) && !m.kept.has(img)) continue;
      const diff = frameDifference(a, b, img, at.turn, at.layer, pick.kind);
      const only = diff ? (i === 0 ? diff.aOnly : diff.bOnly) : null;
      frameHost.appendChild(sideFrame(m, img, { turn: at.turn, layer: at.layer, only, side: i === 0 ? 'a' : 'b', kind: pick.kind, tooltip }));
    }
    if (!frameHost.children.length) frameHost.innerHTML = '<p class="muted">no image</p>';
    else if (shown.length < at.frames.length)
      frameHost.insertAdjacentHTML('beforeend', `<div class="caption">${at.frames.length - 1} other frames: pick one above</div>`);
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
          `<div class="turn compact${ti === at.turn ? ' cur' : ''}" data-turn="${ti}"><header><b>${turnTitle(ti)}</b>${diff}</header><div class="msg user"><p>${visibleText(t.text ?? '')}</p></div>` +
          `<div class="msg assistant"><p class="answer"><span class="common">${visibleText(ans.slice(0, same))}</span><mark>${visibleText(ans.slice(same))}</mark></p></div></div>`
        );
      })
      .join('');
    return el;
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
