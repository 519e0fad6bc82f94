/** A run at a glance: model, policy, and the headline numbers (one line of key–value cells). */
import { factsOfModel, mediaOf, shortQuestion } from '../data/run-identity.js';
import { runSummary } from '../data/summary.js';

/** @typedef {import('../data/run-model.js').RunModel} RunModel */

const d3 = globalThis.d3;
const sig = (/** @type {number | null | undefined} */ x, d = 3) => (x == null || !Number.isFinite(x) ? '–' : d3.format(`.${d}~g`)(x));

/** @param {RunModel} m */
export function summaryCells(m) {
  const s = runSummary(m);
  const model = s.model;
  const facts = factsOfModel(m);
  const cells = [
    ['policy', s.label],
    [
      'input',
      [mediaOf(facts).text, facts.files.join(', '), facts.question == null ? '' : `“${shortQuestion(facts.question, 80)}”`].filter(Boolean).join(' · '),
    ],
    [
      'model',
      model
        ? `${model.vision}+${model.text} · ${model.layers} layers · ${model.imageTokens ? `${model.imageTokens} tok/image` : 'native resolution'}` +
          (model.provider ? ` · ${model.provider}` : '') +
          (model.device ? ` on ${model.device}` : '') +
          (model.deviceMemoryBytes ? ` (${d3.format('.3~s')(model.deviceMemoryBytes)}B)` : '')
        : '–',
    ],
    ['turns', String(s.turns)],
    ['kept', s.keptTokens == null ? '–' : `${d3.format(',')(s.keptTokens)} / ${d3.format(',')(s.totalTokens ?? 0)}`],
    ['visual attended / step', s.meanVisualAttended == null ? '–' : sig(s.meanVisualAttended)],
    ['TTFT', s.ttftMs == null ? '–' : `${sig(s.ttftMs)} ms`],
    ['decode', s.decodeMsPerToken == null ? '–' : `${sig(s.decodeMsPerToken)} ms/token`],
    ['end to end', s.endToEndMs == null ? '–' : `${sig(s.endToEndMs)} ms`],
  ];
  if (s.hasFidelity) cells.push(['vs dense twin', `${d3.format('.0%')(s.tokenAgreement ?? 0)} agree · KL ${sig(s.meanKl)}`]);
  return cells;
}

/** @param {HTMLElement} host */
export function createRunSummary(host) {
  host.classList.add('run-summary');
  let key = '';
  /** @param {RunModel} m */
  function update(m) {
    const k = `${m.id}|${m.versions.meta}|${m.versions.timeline}|${m.versions.fidelity}|${m.versions.images}|${m.versions.conversation}`;
    if (k === key) return;
    key = k;
    host.innerHTML = summaryCells(m)
      .map(([k2, v]) => `<div class="cell"><span class="k">${k2}</span><span class="v">${String(v).replace(/</g, '&lt;')}</span></div>`)
      .join('');
  }
  return { update };
}
