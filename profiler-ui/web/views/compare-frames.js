/**
 * The comparison's retention maps: two runs' frames at one turn and layer, each side ringing what only it kept
 * or retrieved, and a difference map over the frame (A only, B only, both). The turn and frame are picked in
 * the comparison's toolbar; by default the first turn whose answers part and the frame where the runs differ
 * most. Hovering a patch shows the run view's tooltip (retention-map.js `tokenTooltip`), for both runs on the
 * difference map.
 */
import { imageLabel, turnLabel } from '../data/labels.js';
import { imagesAtTurn, retrievalAt, turnList } from '../data/run-queries.js';
import { RUN_COLOURS } from './plot-theme.js';
import { frameData, tokenTooltip } from './retention-map.js';
import { drawFrame, drawMarks, tokenAt } from './retention-frame.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('./retention-frame.js').FrameData} FrameData
 * @typedef {import('./overlays.js').Tooltip} Tooltip
 * @typedef {'kept' | 'retrieved'} DiffKind
 * @typedef {{ aOnly: number[], bOnly: number[], both: number[], total: number }} FrameDifference
 */

export const DIFF_COLOURS = { 'a-only': RUN_COLOURS[0], 'b-only': RUN_COLOURS[1], both: '#14b8a6' };

/**
 * What a run's decode reads of an image at a turn and layer: the layer's retrieval set where the run retrieves
 * at that turn, else every kept token (decode then attends all that prefill retained).
 * @param {RunModel} m
 * @param {FrameData} d
 * @param {number} turn
 * @param {number} layer
 */
function attended(m, d, turn, layer) {
  return retrievalAt(m, turn, layer) ? d.retrieved : d.state;
}

/**
 * Tokens of one image that A and B treat differently at a turn and layer: kept at prefill, or read at decode
 * (`retrieved`: the retrieval set, or every kept token for a run that does not retrieve). Null when the runs
 * give the image different token counts (other models or resolutions). Pure.
 * @param {RunModel} a
 * @param {RunModel} b
 * @param {number} image
 * @param {number} turn
 * @param {number} layer
 * @param {DiffKind} kind
 * @returns {FrameDifference | null}
 */
export function frameDifference(a, b, image, turn, layer, kind) {
  const da = frameData(a, image, turn, layer);
  const db = frameData(b, image, turn, layer);
  if (da.total !== db.total) return null;
  const sa = kind === 'kept' ? da.state : attended(a, da, turn, layer);
  const sb = kind === 'kept' ? db.state : attended(b, db, turn, layer);
  /** @type {FrameDifference} */
  const out = { aOnly: [], bOnly: [], both: [], total: da.total };
  for (let t = 0; t < da.total; t++) {
    if (sa[t] && sb[t]) out.both.push(t);
    else if (sa[t]) out.aOnly.push(t);
    else if (sb[t]) out.bOnly.push(t);
  }
  return out;
}

/**
 * The turns either run has, ascending, and the first whose answers part (null: none does).
 * @param {RunModel} a
 * @param {RunModel} b
 */
export function compareTurns(a, b) {
  const turns = [...new Set([...turnList(a), ...turnList(b)])].sort((x, y) => x - y);
  const answer = (/** @type {RunModel} */ m, /** @type {number} */ t) => {
    const u = m.turns.get(t);
    return u ? (u.answer ?? u.tokens.join('')) : null;
  };
  const parting = turns.find((t) => answer(a, t) != null && answer(b, t) != null && answer(a, t) !== answer(b, t)) ?? null;
  return { turns, parting };
}

/**
 * The frames in either run's cache at a turn, each with how many tokens the runs treat differently.
 * @param {RunModel} a
 * @param {RunModel} b
 * @param {number} turn
 * @param {number} layer
 * @param {DiffKind} kind
 */
export function framesToCompare(a, b, turn, layer, kind) {
  const images = [...new Set([...imagesAtTurn(a, turn), ...imagesAtTurn(b, turn)])].sort((x, y) => x - y);
  return images.map((image) => {
    const d = frameDifference(a, b, image, turn, layer, kind);
    return { image, differ: d ? d.aOnly.length + d.bOnly.length : null };
  });
}

/**
 * Show the token tooltip of a frame figure on hover.
 * @param {Element} fig
 * @param {FrameData} d
 * @param {Tooltip | undefined} tooltip
 * @param {(t: number) => string} html
 */
function hoverTokens(fig, d, tooltip, html) {
  if (!tooltip) return;
  fig.addEventListener('mousemove', (ev) => {
    const svg = fig.querySelector('svg');
    const e = /** @type {MouseEvent} */ (ev);
    const t = svg ? tokenAt(svg, d, e.clientX, e.clientY) : -1;
    if (t < 0 || t >= d.total) return tooltip.hide();
    tooltip.show(html(t), e.clientX, e.clientY);
  });
  fig.addEventListener('mouseleave', () => tooltip.hide());
}

/**
 * One run's image at a turn and layer, ringing the tokens only this run kept or read (`only`), with its counts.
 * @param {RunModel} m
 * @param {number} image
 * @param {{ turn: number, layer: number, only: number[] | null, side: 'a' | 'b', kind: DiffKind, tooltip?: Tooltip }} o
 */
export function sideFrame(m, image, { turn, layer, only, side, kind, tooltip }) {
  const fig = document.createElement('figure');
  fig.className = 'side-image';
  fig.dataset.image = String(image);
  const d = frameData(m, image, turn, layer);
  const svg = drawFrame(fig, d);
  if (only && svg)
    drawMarks(
      svg,
      d,
      only.map((token) => ({ token, kind: `${side}-only` })),
      DIFF_COLOURS,
    );
  const kept = d.state.reduce((x, y) => x + y, 0);
  const ret = d.retrieved.reduce((x, y) => x + y, 0);
  const retrieval = retrievalAt(m, turn, layer);
  fig.insertAdjacentHTML(
    'beforeend',
    `<figcaption class="caption">${imageLabel(m, image)} · ${d.rows}×${d.cols} · kept ${kept}/${d.total} · ` +
      (retrieval ? `retrieved ${ret} at layer ${layer}, ${turnLabel(turn)}` : 'no retrieval: decode attends every kept token') +
      (only ? ` · <span class="only" data-only="${only.length}">${only.length} ${kind} only here</span>` : '') +
      '</figcaption>',
  );
  hoverTokens(fig, d, tooltip, (t) => tokenTooltip(m, d, t, turn, layer));
  return fig;
}

/**
 * The difference map of one image: A's picture and grid, each token ringed by who kept (or read) it — A only,
 * B only, or both — with the counts as text and as `data-a-only`, `data-b-only`, `data-both`.
 * @param {RunModel} a
 * @param {RunModel} b
 * @param {number} image
 * @param {{ turn: number, layer: number, kind: DiffKind, tooltip?: Tooltip }} o
 */
export function differenceFigure(a, b, image, { turn, layer, kind, tooltip }) {
  const fig = document.createElement('figure');
  fig.className = 'side-image diff-image';
  fig.dataset.image = String(image);
  const diff = frameDifference(a, b, image, turn, layer, kind);
  if (!diff) {
    fig.innerHTML = `<p class="muted">${imageLabel(a, image)}: the runs give it different token grids, so no token-by-token difference.</p>`;
    return fig;
  }
  const d = { ...frameData(a, image, turn, layer, { heat: false }), retrieved: new Uint8Array(diff.total) };
  const svg = drawFrame(fig, d);
  const marks = [
    ...diff.aOnly.map((token) => ({ token, kind: 'a-only' })),
    ...diff.bOnly.map((token) => ({ token, kind: 'b-only' })),
    ...diff.both.map((token) => ({ token, kind: 'both' })),
  ];
  if (svg) drawMarks(svg, d, marks, DIFF_COLOURS);
  fig.dataset.aOnly = String(diff.aOnly.length);
  fig.dataset.bOnly = String(diff.bOnly.length);
  fig.dataset.both = String(diff.both.length);
  const what = kind === 'kept' ? 'kept at prefill' : `read at decode (layer ${layer}'s retrieval set, or every kept token without retrieval)`;
  fig.insertAdjacentHTML(
    'beforeend',
    `<figcaption class="caption">${imageLabel(a, image)} · ${turnLabel(turn)} · ${what}: ` +
      `<span class="swatch" style="background:${DIFF_COLOURS['a-only']}"></span>A only <b>${diff.aOnly.length}</b> · ` +
      `<span class="swatch" style="background:${DIFF_COLOURS['b-only']}"></span>B only <b>${diff.bOnly.length}</b> · ` +
      `<span class="swatch" style="background:${DIFF_COLOURS.both}"></span>both <b>${diff.both.length}</b></figcaption>`,
  );
  const da = frameData(a, image, turn, layer);
  const db = frameData(b, image, turn, layer);
  hoverTokens(fig, d, tooltip, (t) => `<b>A</b> ${tokenTooltip(a, da, t, turn, layer)}<hr><b>B</b> ${tokenTooltip(b, db, t, turn, layer)}`);
  return fig;
}
