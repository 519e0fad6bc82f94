/**
 * The token panel: one visual token's story, picked by a click or Enter on its patch — kept or pruned at
 * prefill and its salience rank in its frame, then for every turn and LLM layer whether the layer retrieved it
 * and its rank by the question's attention mass against the layer's cutoff (how many it retrieved), with a
 * per-layer heat of how often the turns retrieved it. Ranks come from the trace's recorded scores
 * (run-queries.js `tokenHistory`); "retrieved" is the trace's own retrieval set. Also the run view's search box
 * (a frame number, or words of a question) and the keyboard help.
 */
import { imageLabel, turnLabel, turnTitle } from '../data/labels.js';
import { searchRun, tokenHistory } from '../data/run-queries.js';
import { visibleText } from './conversation.js';
import { child } from './dom.js';

/** @typedef {import('../data/run-model.js').RunModel} RunModel */

const d3 = globalThis.d3;
const sig = (/** @type {number} */ x) => (Number.isFinite(x) ? d3.format('.3~g')(x) : '–');
/**
 * How often a layer retrieved the token: near-white (never) to the retrieval cyan (every turn that retrieved).
 * @param {number} share  0 to 1
 */
const oftenColour = (share) => {
  const [a, b] = [
    [248, 250, 252],
    [8, 145, 178],
  ];
  return `rgb(${a.map((x, i) => Math.round(x + (b[i] - x) * share)).join(',')})`;
};

const HINT = '<p class="muted">Click a patch (or focus one and press Enter) to see which layers and turns retrieved it.</p>';

/** The keys the run view answers, for the help overlay. */
export const KEYS = [
  ['click, Enter', 'inspect the patch (its layers, turns and ranks here)'],
  ['← → ↑ ↓', 'move between a frame’s patches; Tab to the next frame'],
  ['l / L', 'next / previous layer'],
  ['t / T', 'next / previous turn'],
  ['f / F', 'next / previous frame'],
  ['/', 'search frames and questions'],
  ['?', 'this help'],
  ['Esc', 'close the help, clear the search'],
];

/**
 * @param {HTMLElement} host
 * @param {{ onFrame: (image: number) => void, onTurn: (turn: number) => void, onCell: (turn: number, layer: number) => void }} actions
 */
export function createTokenPanel(host, { onFrame, onTurn, onCell }) {
  host.classList.add('token-panel');
  host.innerHTML = `
    <div class="tp-search">
      <input type="search" id="tp-search" placeholder="frame 12, or words of a question" aria-label="search frames and questions" autocomplete="off">
      <button type="button" class="ghost" id="tp-help-button" aria-label="keyboard help" title="keyboard help (?)">?</button>
    </div>
    <div class="tp-results" role="list" aria-live="polite"></div>
    <div class="tp-help" role="dialog" aria-label="keyboard help" hidden>
      <b>Keys</b>
      <dl>${KEYS.map(([k, what]) => `<dt><kbd>${k}</kbd></dt><dd>${what}</dd>`).join('')}</dl>
    </div>
    <div class="tp-body" aria-live="polite">${HINT}</div>`;
  const search = child(host, '#tp-search', HTMLInputElement);
  const results = child(host, '.tp-results', HTMLElement);
  const help = child(host, '.tp-help', HTMLElement);
  const body = child(host, '.tp-body', HTMLElement);
  child(host, '#tp-help-button', HTMLButtonElement).addEventListener('click', () => toggleHelp());

  /** @type {{ image: number, token: number } | null} */
  let picked = null;
  /** @type {RunModel | null} */
  let model = null;
  let key = '';

  search.addEventListener('input', () => find());
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') results.querySelector('button')?.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    if (ev.key === 'Escape') {
      search.value = '';
      find();
    }
  });
  results.addEventListener('click', (ev) => {
    const b = ev.target instanceof Element ? ev.target.closest('button') : null;
    if (!(b instanceof HTMLButtonElement)) return;
    if (b.dataset.image != null) onFrame(Number(b.dataset.image));
    if (b.dataset.turn != null) onTurn(Number(b.dataset.turn));
  });
  body.addEventListener('click', (ev) => {
    const cell = ev.target instanceof Element ? ev.target.closest('td[data-turn]') : null;
    if (cell instanceof HTMLElement) onCell(Number(cell.dataset.turn), Number(cell.dataset.layer));
  });

  function find() {
    if (!model) return;
    const m = model;
    const { frames, turns } = searchRun(m, search.value);
    results.innerHTML =
      frames.map((f) => `<button type="button" role="listitem" class="chip" data-image="${f}">${visibleText(imageLabel(m, f))}</button>`).join('') +
      turns
        .map((t) => `<button type="button" role="listitem" class="chip" data-turn="${t}">${turnTitle(t)}: ${visibleText(m.turns.get(t)?.text ?? '')}</button>`)
        .join('') +
      (search.value.trim() && !frames.length && !turns.length ? '<span class="muted">no frame or question matches</span>' : '');
  }

  /** @param {boolean} [open] */
  function toggleHelp(open = help.hidden) {
    help.hidden = !open;
    return open;
  }

  /**
   * @param {RunModel} m
   * @param {{ turn: number, layer: number }} at
   */
  function update(m, { turn, layer }) {
    if (model !== m) {
      model = m;
      picked = null;
      find();
    }
    const k = `${m.id}|${m.versions.retrieval}|${m.versions.retention}|${m.versions.conversation}|${picked?.image}:${picked?.token}|${turn}|${layer}`;
    if (k === key) return;
    key = k;
    body.innerHTML = picked ? story(m, picked.image, picked.token, turn, layer) : HINT;
    host.dataset.image = picked ? String(picked.image) : '';
    host.dataset.token = picked ? String(picked.token) : '';
  }

  /** @param {{ image: number, token: number } | null} pick */
  function show(pick) {
    picked = pick;
    key = '';
  }

  return { update, show, toggleHelp, focusSearch: () => search.focus(), picked: () => picked };
}

/**
 * The panel's text and table for one token.
 * @param {RunModel} m
 * @param {number} image
 * @param {number} token
 * @param {number} turn  the page's turn (its column is marked)
 * @param {number} layer  the page's layer (its row is marked)
 */
function story(m, image, token, turn, layer) {
  const h = tokenHistory(m, image, token);
  const p = token - h.leading;
  const where = token < h.leading ? `leading token ${token + 1}` : `row ${Math.floor(p / h.cols) + 1}, col ${(p % h.cols) + 1}`;
  const sal = h.salience
    ? `salience rank <b>${h.salience.rank}</b> of ${h.salience.of}` + (h.keptCount != null ? ` (the frame kept its top ${h.keptCount})` : '')
    : 'no salience in the trace';
  const head =
    `<h3>${visibleText(imageLabel(m, image))} · token ${token}</h3>` +
    `<p class="tp-facts"><span>${where}</span><span class="${h.kept ? '' : 'muted'}">${h.kept ? 'kept at prefill' : 'pruned at prefill'}</span><span>${sal}</span></p>`;
  if (!h.kept) return `${head}<p class="muted">Pruned before prefill: the token never entered the LLM's cache, so no layer could retrieve it.</p>`;
  const turns = h.turns;
  if (!turns.length) return `${head}<p class="muted">No turn has run over this frame yet.</p>`;
  if (!turns.some((t) => t.layers.some(Boolean))) return `${head}<p class="muted">No retrieval at any turn: decode attends every retained token.</p>`;
  const th = turns
    .map(
      (t) =>
        `<th scope="col" class="${t.turn === turn ? 'cur' : ''}" title="${t.status === 'retrieved' ? '' : 'no retrieval at this turn'}">${turnLabel(t.turn)}</th>`,
    )
    .join('');
  const rows = h.often.map((o, l) => {
    const share = o.turns ? o.retrieved / o.turns : 0;
    const cells = turns.map((t) => cell(t.turn, t.layers[l], l, t.turn === turn)).join('');
    return (
      `<tr class="${l === layer ? 'cur' : ''}" data-layer="${l}"><th scope="row">${l}</th>` +
      `<td class="often" data-often="${o.retrieved}" style="background:${oftenColour(share)};color:${share > 0.6 ? '#fff' : '#0f172a'}" title="retrieved at ${o.retrieved} of the ${o.turns} turns that retrieved">${o.retrieved}/${o.turns}</td>${cells}</tr>`
    );
  });
  const total = h.often.reduce((a, o) => a + o.retrieved, 0);
  return (
    head +
    `<p class="tp-sum">Retrieved at <b>${total}</b> (layer, turn) pairs. Each cell is its rank by the question's attention mass, from 1; ` +
    `<span class="ret">cyan</span>: the layer retrieved it; the cutoff is how many the layer retrieved.</p>` +
    `<div class="tp-table"><table class="tp-ranks"><thead><tr><th scope="col">layer</th><th scope="col" title="turns that retrieved it, of the turns that retrieved">how often</th>${th}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  );
}

/**
 * One (turn, layer) cell: the rank against the cutoff, cyan where the layer retrieved the token.
 * @param {number} turn
 * @param {import('../data/run-queries.js').LayerVerdict | null} v
 * @param {number} layer
 * @param {boolean} current
 */
function cell(turn, v, layer, current) {
  if (!v) return `<td class="none${current ? ' cur' : ''}">–</td>`;
  const title =
    `layer ${layer}, ${turnLabel(turn)}: rank ${v.rank} of ${v.candidates} by attention mass (${sig(v.score)}); ` +
    `the layer retrieved ${v.cutoff} (the ${v.cutoff}th's mass ${sig(v.cutoffScore)}) — ${v.retrieved ? 'retrieved' : 'not retrieved'}`;
  return (
    `<td class="${v.retrieved ? 'ret-cell' : ''}${current ? ' cur' : ''}" data-turn="${turn}" data-layer="${layer}" data-rank="${v.rank}" data-cutoff="${v.cutoff}" ` +
    `data-retrieved="${v.retrieved ? 1 : 0}" title="${title}">${v.rank}<small>/${v.cutoff}</small></td>`
  );
}
