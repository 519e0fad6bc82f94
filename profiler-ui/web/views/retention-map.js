/**
 * The retention map panel: every image (or video frame) in the cache at the chosen turn, each with its
 * retention map (kept / pruned patches, salience heat) and the chosen layer's retrieval set outlined; the
 * counts as text; a colour legend; and, for several frames, a per-frame bar chart of kept and retrieved
 * tokens.
 *
 * Built for long videos: a frame's SVG is drawn only when its card scrolls into view (IntersectionObserver);
 * a layer or turn change redraws only the outlines of frames already drawn, and marks the others stale.
 */
import { candidateIndex, countsAt, imagesAtTurn, perImageCounts, retrievalAt, tokenStates } from '../data/run-queries.js';
import { imageLabel, turnLabel } from '../data/labels.js';
import { child } from './dom.js';
import { drawFrameBars } from './frame-bars.js';
import { drawLegend, sourceLabel } from './legend.js';
import { drawFrame, drawOutlines, salienceScale, tokenAt } from './retention-frame.js';

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
  };
}

/**
 * @param {HTMLElement} host
 * @param {{ tooltip?: Tooltip }} [options]
 */
export function createRetentionMap(host, { tooltip } = {}) {
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
  }

  /**
   * @param {RunModel} m
   * @param {number} image
   */
  function makeCard(m, image) {
    const el = document.createElement('figure');
    el.className = 'frame';
    el.dataset.image = String(image);
    el.innerHTML = `<figcaption><b>${imageLabel(m, image)}</b><span class="fc-turn"></span><span class="fc-counts"></span></figcaption><div class="frame-host"></div>`;
    const svgHost = child(el, '.frame-host', HTMLElement);
    /** @type {Card} */
    const card = { image, el, svgHost, caption: child(el, 'figcaption', HTMLElement), visible: false, baseKey: '', outlineKey: '', data: null };
    svgHost.addEventListener('mousemove', (ev) => hover(card, ev));
    svgHost.addEventListener('mouseleave', () => tooltip?.hide());
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
    const { m, turn, layer } = ctx;
    const d = card.data;
    const sal = d.salience?.scores[t];
    const where = t < d.leading ? `leading token ${t}` : `patch row ${Math.floor((t - d.leading) / d.cols)}, col ${(t - d.leading) % d.cols}`;
    const lines = [`<b>${imageLabel(ctx.m, card.image)} · token ${t}</b>`, where];
    if (sal != null) lines.push(`salience ${d3.format('.4~g')(sal)}`);
    lines.push(d.state[t] ? 'kept at prefill' : 'pruned at prefill');
    const r = retrievalAt(m, turn, layer);
    if (r && d.state[t]) {
      const i = candidateIndex(m, turn, card.image, t);
      const score = i >= 0 ? r.scores[i] : null;
      lines.push(
        `${d.retrieved[t] ? '<span class="ret">retrieved</span>' : 'not retrieved'} at layer ${layer}` +
          (score != null ? ` (mass ${d3.format('.3~g')(score)})` : ''),
      );
    }
    tooltip.show(lines.join('<br>'), ev.clientX, ev.clientY);
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
      if (card.visible) drawCard(card);
    }
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

  return { update, exportNodes, scrollTo };
}
