/**
 * The conversation: each turn's question, the answer (streamed token by token while the turn runs), its
 * timings from turn.end (time to first token, decode tokens/s, prompt and cached tokens) and, with a
 * dense twin, its fidelity. Only turns whose content changed are re-rendered. A frame a question names
 * ("frame 3", counted from 1 as the prompt counts them) is a button that shows that frame.
 */
import { turnTitle } from '../data/labels.js';
import { orderedTurns, turnList } from '../data/run-queries.js';
import { numberOf } from '../data/summary.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../data/run-model.js').FidelityMetrics} FidelityMetrics
 */

const d3 = globalThis.d3;

/** @type {Record<string, string>} */
const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

/**
 * Text as safe HTML, with control characters shown as their Unicode control pictures.
 * @param {unknown} s
 */
export function visibleText(s) {
  const shown = String(s ?? '').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => String.fromCharCode(c === '\u007f' ? 0x2421 : 0x2400 + c.charCodeAt(0)));
  return shown.replace(/[&<>"]/g, (c) => ENTITIES[c] ?? c);
}

const num = d3.format(',');
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));
const msOf = (/** @type {number | null | undefined} */ s) => (s == null ? '–' : `${sig(s * 1000)} ms`);

/** @param {Record<string, number> | null} mt  a turn.end's metrics */
export function metricsLine(mt) {
  if (!mt) return '';
  const parts = [
    `prompt <b>${num(mt.promptTokens ?? 0)}</b>` + (mt.cachedTokens ? ` (+${num(mt.cachedTokens)} cached)` : ''),
    `generated <b>${num(mt.generatedTokens ?? 0)}</b>`,
    `TTFT <b>${msOf(mt.firstTokenSeconds)}</b>`,
    `prefill ${msOf(mt.prefillSeconds)}`,
    `decode <b>${sig(mt.decodeTokensPerSecond, 4)}</b> tok/s`,
    `total ${msOf(mt.totalSeconds)}`,
  ];
  return parts.map((p) => `<span>${p}</span>`).join('');
}

/** @param {FidelityMetrics | null} f */
export function fidelityLine(f) {
  if (!f) return '';
  const recall = Array.isArray(f.retrievalRecall) ? f.retrievalRecall.filter((x) => x != null) : [];
  return (
    `<span title="share of steps where the sparse run picked the dense twin's token (teacher-forced)">agreement <b>${d3.format('.0%')(numberOf(f.tokenAgreement) ?? 0)}</b></span>` +
    `<span title="mean KL(dense ‖ sparse) per decode step">mean KL <b>${sig(numberOf(f.meanKl))}</b></span>` +
    (f.firstDivergence != null ? `<span>first divergence at step ${f.firstDivergence}</span>` : '<span>no divergence</span>') +
    (recall.length
      ? `<span title="per-layer recall of the dense twin's top visual tokens, mean over layers">retrieval recall <b>${d3.format('.0%')(d3.mean(recall) ?? 0)}</b></span>`
      : '')
  );
}

/**
 * A question as HTML, each frame number it names ("frame 3", "frames 2 and 5") a button for that frame
 * (`data-image`: its index from 0).
 * @param {string} text
 */
export function questionHtml(text) {
  return visibleText(text).replace(
    /\b(frames?)\s+(\d+(?:\s*(?:,|and|or|&amp;)\s*\d+)*)/gi,
    (_all, word, list) =>
      `${word} ${String(list).replace(/\d+/g, (n) => `<button type="button" class="frame-ref" data-image="${Number(n) - 1}" aria-label="show frame ${n}">${n}</button>`)}`,
  );
}

/**
 * @param {HTMLElement} host
 * @param {{ onFrame?: (image: number) => void }} [options]
 */
export function createConversation(host, { onFrame } = {}) {
  host.classList.add('conversation');
  host.addEventListener('click', (ev) => {
    const b = ev.target instanceof Element ? ev.target.closest('button.frame-ref') : null;
    if (b instanceof HTMLButtonElement) onFrame?.(Number(b.dataset.image));
  });
  /** @type {Map<number, { el: HTMLElement, key: string }>} */
  const items = new Map();
  /** @type {string | null} */
  let run = null;

  /** @param {RunModel} m */
  function update(m) {
    if (run !== m.run) {
      host.innerHTML = '';
      items.clear();
      run = m.run;
    }
    const turns = turnList(m);
    if (!turns.length) {
      host.innerHTML = '<p class="muted">No turns yet.</p>';
      items.clear();
      return;
    }
    host.querySelector('p.muted')?.remove();
    for (const t of orderedTurns(m)) {
      const i = t.turn;
      const sigKey = `${t.text}|${t.answer ?? t.tokens.length}|${!!t.metrics}|${!!t.fidelity}`;
      let item = items.get(i);
      if (!item) {
        item = { el: document.createElement('article'), key: '' };
        item.el.className = 'turn';
        item.el.dataset.turn = String(i);
        items.set(i, item);
        host.appendChild(item.el);
      }
      if (item.key === sigKey) continue;
      item.key = sigKey;
      const answer = t.answer ?? t.tokens.join('');
      const live = t.answer == null;
      item.el.innerHTML =
        `<header><b>${turnTitle(i)}</b>${t.images ? `<span class="chip">${t.images} ${t.images === 1 ? 'image' : 'images'}</span>` : ''}` +
        (t.stopReason ? `<span class="chip">${t.stopReason}</span>` : live ? '<span class="chip live">streaming…</span>' : '') +
        `</header>` +
        `<div class="msg user"><span class="who">user</span><p>${questionHtml(t.text ?? '')}</p></div>` +
        `<div class="msg assistant"><span class="who">assistant</span><p class="answer">${visibleText(answer)}${live ? '<span class="caret">▍</span>' : ''}</p></div>` +
        `<div class="metrics">${metricsLine(t.metrics)}</div>` +
        (t.fidelity ? `<div class="metrics fidelity"><span class="k">vs dense twin</span>${fidelityLine(t.fidelity)}</div>` : '');
    }
  }

  return { update };
}
