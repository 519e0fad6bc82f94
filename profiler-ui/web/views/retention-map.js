/**
 * The retention map panel: every image (or video frame) in the cache at the chosen turn, each with its
 * retention map (kept / pruned patches, salience heat) and the chosen layer's retrieval set outlined; the
 * counts as text; a colour legend; and, for several frames, a per-frame bar chart of kept and retrieved
 * tokens.
 *
 * Built for long videos: a frame's SVG is drawn only when its card scrolls into view (IntersectionObserver);
 * a layer or turn change redraws only the outlines of frames already drawn, and marks the others stale. Past a
 * few frames the strip scrolls in its own area, so what follows it on the page stays near the top.
 *
 * Patches answer the pointer (hover: the tooltip; click: `onPick`, the token panel) and the keyboard: each frame
 * is one tab stop, arrows move between its patches, Enter or Space picks one (patch-keys.js).
 */
import { candidateIndex, countsAt, imagesAtTurn, perImageCounts, retrievalAt, tokenStates } from '../data/run-queries.js';
import { imageLabel, sourceLabel, turnLabel } from '../data/labels.js';
import { child } from './dom.js';
import { bindPatchKeys, focusPatch } from './patch-keys.js';
import { drawFrameBars } from './frame-bars.js';
import { drawLegend } from './legend.js';
import { drawFrame, drawMarks, drawOutlines, salienceScale, tokenAt } from './retention-frame.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('./retention-frame.js').FrameData} FrameData
 * @typedef {import('./overlays.js').Tooltip} Tooltip
 */

/**
 * One image's card in the strip; its SVG is drawn when it scrolls into view.
 * @typedef {object} Card
 * @property {number} image
 * @property {HTMLElement} el
 * @property {HTMLElement} svgHost
 * @property {HTMLElement} caption
 * @property {boolean} visible
 * @property {string} baseKey  what its frame was drawn from
 * @property {string} outlineKey  what its retrieval outlines were drawn from
 * @property {FrameData | null} data
 */

const d3 = globalThis.d3;
const fmt = d3.format(',');
/** Frames past which the strip scrolls in its own area. */
const SCROLL_PAST = 6;
const SELECTED = { selected: '#facc15' };

/**
 * Everything drawFrame needs for one image at a turn and layer.
 * @param {RunModel} m
 * @param {number} image
 * @param {number} turn
 * @param {number} layer
 * @param {{ heat?: boolean, heatOpacity?: number }} [display]
 * @returns {FrameData}
 */
export function frameData(m, image, turn, layer, { heat = true, heatOpacity = 0.55 } = {}) {
  const st = tokenStates(m, image, turn, layer);
  const img = m.images.get(image);
  return {
    image,
    jpeg: img?.jpeg ?? null,
    width: img?.width ?? st.cols * 14,
    height: img?.height ?? st.rows * 14,
    rows: st.rows,
    cols: st.cols,
    leading: st.leading,
    total: st.total,
    state: st.state,
    retrieved: st.retrieved,
    salience: m.salience.get(image) ?? null,
    scale: salienceScale(m.salienceMin, m.salienceMax),
    heat,
    heatOpacity,
    label: imageLabel(m, image),
  };
}

/**
 * The tooltip of token t of a drawn frame, at a turn and layer: where it sits, its salience, kept or pruned, and
 * whether the layer retrieved it, with its attention mass. Shared by the run view and the comparison.
 * @param {RunModel} m
 * @param {FrameData} d
 * @param {number} t
 * @param {number} turn
 * @param {number} layer
 */
export function tokenTooltip(m, d, t, turn, layer) {
  const sal = d.salience?.scores[t];
  const where = t < d.leading ? `leading token ${t + 1}` : `row ${Math.floor((t - d.leading) / d.cols) + 1}, col ${((t - d.leading) % d.cols) + 1}`;
  const lines = [`<b>${imageLabel(m, d.image)} · token ${t}</b>`, where];
  if (sal != null) lines.push(`salience ${d3.format('.4~g')(sal)}`);
  lines.push(d.state[t] ? 'kept at prefill' : 'pruned at prefill');
  const r = retrievalAt(m, turn, layer);
  if (r && d.state[t]) {
    const i = candidateIndex(m, turn, d.image, t);
    const score = i >= 0 ? r.scores[i] : null;
    lines.push(
      `${d.retrieved[t] ? '<span class="ret">retrieved</span>' : 'not retrieved'} at layer ${layer}, ${turnLabel(turn)}` +
        (score != null ? ` (mass ${d3.format('.3~g')(score)})` : ''),
    );
  }
  return lines.join('<br>');
}

/**
 * @param {HTMLElement} host
 * @param {{ tooltip?: Tooltip, onPick?: (image: number, token: number) => void }} [options]
 */
export function createRetentionMap(host, { tooltip, onPick } = {}) {
  host.classList.add('retention-map');
  host.innerHTML = `
    <div class="rm-head">
      <div class="rm-counts" data-role="counts"></div>
      <div class="rm-legend"></div>
    </div>
    <div class="rm-bars" hidden></div>
    <div class="rm-strip"></div>
    <div class="rm-empty muted" hidden>No images in this run yet.</div>`;
  const countsEl = child(host, '.rm-counts', HTMLElement);
  const legendEl = child(host, '.rm-legend', HTMLElement);
  const barsEl = child(host, '.rm-bars', HTMLElement);
  const strip = child(host, '.rm-strip', HTMLElement);
  const empty = child(host, '.rm-empty', HTMLElement);
  /** @type {Map<number, Card>} */
  const cards = new Map();
  /** @type {{ m: RunModel, turn: number, layer: number, heat: boolean, baseKey: string, outlineKey: string, images: number[], size?: string } | null} */
  let ctx = null;
  let legendKey = '';
  let barsKey = '';
  /** @type {{ image: number, token: number } | null} */
  let selected = null;
  /** @type {Set<number>} */
  let named = new Set();

  const io = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const card = cards.get(Number(/** @type {HTMLElement} */ (entry.target).dataset.image));
        if (!card) continue;
        card.visible = entry.isIntersecting;
        if (card.visible) drawCard(card);
      }
    },
    { rootMargin: '400px 0px' },
  );

  /** @param {Card} card */
  function drawCard(card) {
    if (!ctx) return;
    const { m, turn, layer } = ctx;
    let data = card.data;
    if (!data || card.baseKey !== ctx.baseKey) {
      data = card.data = frameData(m, card.image, turn, layer, { heat: ctx.heat });
      drawFrame(card.svgHost, data);
      card.baseKey = ctx.baseKey;
      card.outlineKey = ctx.outlineKey;
    } else if (card.outlineKey !== ctx.outlineKey) {
      const st = tokenStates(m, card.image, turn, layer);
      data.retrieved = st.retrieved;
      drawOutlines(child(card.svgHost, 'svg', SVGSVGElement), data);
      card.outlineKey = ctx.outlineKey;
    }
    const kept = data.state.reduce((a, b) => a + b, 0);
    const r = data.retrieved.reduce((a, b) => a + b, 0);
    const ret = retrievalAt(m, turn, layer);
    const small = ctx.size === 's';
    child(card.caption, '.fc-counts', HTMLElement).textContent = small
      ? `${kept}/${data.total}` + (ret ? ` · ${r} ret.` : '')
      : `kept ${kept}/${data.total}` + (ret ? ` · retrieved ${r}` : '');
    card.caption.title = `kept ${kept} of ${data.total} tokens at prefill` + (ret ? `; layer ${layer} retrieved ${r} at ${turnLabel(turn)}` : '');
    card.el.dataset.drawn = '1';
    markCard(card);
  }

  /** The selected token's ring on a drawn card (none on the others). @param {Card} card */
  function markCard(card) {
    const svg = card.svgHost.querySelector('svg');
    if (!svg || !card.data) return;
    drawMarks(svg, card.data, selected?.image === card.image ? [{ token: selected.token, kind: 'selected' }] : [], SELECTED);
  }

  /**
   * @param {RunModel} m
   * @param {number} image
   */
  function makeCard(m, image) {
    const el = document.createElement('figure');
    el.className = 'frame';
    el.dataset.image = String(image);
    el.innerHTML = `<figcaption><b>${imageLabel(m, image)}</b><span class="fc-turn"></span><span class="fc-named" hidden>named in the question</span><span class="fc-counts"></span></figcaption><div class="frame-host"></div>`;
    const svgHost = child(el, '.frame-host', HTMLElement);
    /** @type {Card} */
    const card = { image, el, svgHost, caption: child(el, 'figcaption', HTMLElement), visible: false, baseKey: '', outlineKey: '', data: null };
    svgHost.addEventListener('mousemove', (ev) => hover(card, ev));
    svgHost.addEventListener('mouseleave', () => tooltip?.hide());
    svgHost.addEventListener('click', (ev) => {
      const svg = card.svgHost.querySelector('svg');
      const t = svg && card.data ? tokenAt(svg, card.data, ev.clientX, ev.clientY) : -1;
      if (t >= 0 && card.data && t < card.data.total) onPick?.(card.image, t);
    });
    bindPatchKeys(
      svgHost,
      () => card.data,
      (t) => onPick?.(card.image, t),
    );
    io.observe(el);
    return card;
  }

  /**
   * @param {Card} card
   * @param {MouseEvent} ev
   */
  function hover(card, ev) {
    const svg = card.svgHost.querySelector('svg');
    if (!ctx || !card.data || !tooltip || !svg) return;
    const t = tokenAt(svg, card.data, ev.clientX, ev.clientY);
    if (t < 0 || t >= card.data.total) return tooltip.hide();
    tooltip.show(tokenTooltip(ctx.m, card.data, t, ctx.turn, ctx.layer), ev.clientX, ev.clientY);
  }

  /**
   * @param {RunModel} m
   * @param {{ turn: number, layer: number, heat?: boolean, size?: string }} at
   */
  function update(m, { turn, layer, heat = true, size = 'auto' }) {
    const images = imagesAtTurn(m, turn);
    const baseKey = `${m.id}|${m.versions.images}|${m.versions.retention}|${heat}|${m.salienceMin}|${m.salienceMax}`;
    const outlineKey = `${m.id}|${turn}|${layer}|${m.versions.retrieval}`;
    const prev = ctx;
    ctx = { m, turn, layer, heat, baseKey, outlineKey, images };

    // Counts, as text and as data attributes.
    const c = countsAt(m, turn, layer);
    countsEl.dataset.kept = String(c.kept);
    countsEl.dataset.pruned = String(c.pruned);
    countsEl.dataset.total = String(c.total);
    countsEl.dataset.retrieved = String(c.retrieved ?? '');
    countsEl.innerHTML =
      `<span class="k">${turnLabel(turn)} · layer ${layer}</span>` +
      `<span><b>${fmt(c.images)}</b> ${c.images === 1 ? 'image' : 'images'}</span>` +
      `<span><b>${fmt(c.kept)}</b> / ${fmt(c.total)} tokens kept (${c.total ? d3.format('.0%')(c.kept / c.total) : '–'})</span>` +
      `<span><b>${fmt(c.pruned)}</b> pruned</span>` +
      (c.retrieved == null
        ? `<span class="muted">no retrieval this turn: decode attends all ${fmt(c.kept)} retained</span>`
        : `<span class="ret"><b>${fmt(c.retrieved)}</b> / ${fmt(c.candidates ?? 0)} retained retrieved at layer ${layer} (${d3.format('.0%')(c.retrieved / Math.max(1, c.candidates ?? 0))})</span>`);

    // Legend: only when the scale moves.
    const source = m.salience.values().next().value?.source;
    const lk = `${m.salienceMax}|${source}`;
    if (lk !== legendKey) {
      drawLegend(legendEl, { scale: salienceScale(m.salienceMin, m.salienceMax), source });
      legendKey = lk;
    }
    legendEl.title = source ? `salience: ${sourceLabel(source)}` : '';

    // Frame bars for several frames.
    barsEl.hidden = images.length < 3;
    const bk = `${outlineKey}|${baseKey}|${images.length}|${barsEl.clientWidth}`;
    if (!barsEl.hidden && bk !== barsKey) {
      drawFrameBars(barsEl, perImageCounts(m, turn, layer), {
        onPick: scrollTo,
        label: (i) => imageLabel(m, i),
        width: Math.max(300, barsEl.clientWidth || strip.clientWidth || 900),
      });
      barsKey = bk;
    }

    // The strip: keyed cards, drawn lazily.
    empty.hidden = images.length > 0;
    const auto = images.length <= 2 ? 'l' : images.length <= 6 ? 'm' : 's';
    strip.dataset.size = size === 'auto' ? auto : size;
    strip.dataset.scroll = images.length > SCROLL_PAST ? '1' : '';
    ctx.size = strip.dataset.size;
    if (!prev || prev.m !== m || prev.images.join() !== images.join()) {
      const keep = new Set(images);
      for (const [img, card] of cards) {
        if (!keep.has(img) || prev?.m !== m) {
          io.unobserve(card.el);
          card.el.remove();
          cards.delete(img);
        }
      }
      for (const img of images) {
        let card = cards.get(img);
        if (!card) cards.set(img, (card = makeCard(m, img)));
        strip.appendChild(card.el); // appending an attached node moves it: keeps order
      }
    }
    // Frames on screen now; the others draw when they scroll into view (the observer above).
    for (const card of cards.values()) {
      const it = m.images.get(card.image);
      child(card.caption, '.fc-turn', HTMLElement).textContent = it ? turnLabel(it.turn) : '';
      showNamed(card);
      if (card.visible) drawCard(card);
    }
  }

  /**
   * Ring a token in its frame (null: none), bringing the frame into view.
   * @param {{ image: number, token: number } | null} pick
   */
  function select(pick) {
    const before = selected;
    selected = pick;
    for (const card of cards.values()) if (card.image === before?.image || card.image === pick?.image) markCard(card);
    if (pick) cards.get(pick.image)?.el.scrollIntoView({ block: 'nearest' });
  }

  /**
   * Frames a question names, outlined as such (the page counts frames from 1, as the question does).
   * @param {number[]} images
   */
  function setNamed(images) {
    named = new Set(images);
    for (const card of cards.values()) showNamed(card);
  }

  /** @param {Card} card */
  function showNamed(card) {
    const is = named.has(card.image);
    card.el.classList.toggle('named', is);
    child(card.caption, '.fc-named', HTMLElement).hidden = !is;
  }

  /**
   * Scroll to a frame and put the keyboard on its patch `token` (default: the selected or first one).
   * @param {number} image
   * @param {number} [token]
   */
  function focusFrame(image, token) {
    const card = cards.get(image);
    if (!card) return;
    card.el.scrollIntoView({ block: 'nearest' });
    drawCard(card);
    focusPatch(card.svgHost, token ?? (selected?.image === image ? selected.token : 0));
  }

  /** @param {number} image */
  function scrollTo(image) {
    const card = cards.get(image);
    if (!card) return;
    card.el.scrollIntoView({ behavior: 'smooth', block: 'center' });
    card.el.classList.add('flash');
    setTimeout(() => card.el.classList.remove('flash'), 900);
  }

  /** SVGs to export: drawn ones as they are; frames not drawn yet are drawn off-screen first. */
  function exportNodes() {
    if (!ctx) return null;
    /** @type {{ svg: SVGSVGElement, label: string }[]} */
    const out = [];
    for (const card of cards.values()) {
      if (card.baseKey !== ctx.baseKey || card.outlineKey !== ctx.outlineKey) {
        const off = document.createElement('div');
        drawFrame(off, frameData(ctx.m, card.image, ctx.turn, ctx.layer, { heat: ctx.heat }));
        out.push({ svg: child(off, 'svg', SVGSVGElement), label: imageLabel(ctx.m, card.image) });
      } else {
        out.push({ svg: child(card.svgHost, 'svg', SVGSVGElement), label: imageLabel(ctx.m, card.image) });
      }
    }
    const title = [...countsEl.children].map((c) => c.textContent).join('  ·  ');
    return { frames: out, legend: legendEl.querySelector('svg'), bars: barsEl.hidden ? null : barsEl.querySelector('svg'), title };
  }

  return { update, exportNodes, scrollTo, select, setNamed, focusFrame, images: () => ctx?.images ?? [] };
}
