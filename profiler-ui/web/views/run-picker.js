/**
 * The top bar's run picker: runs grouped by workload (the media and model a sweep holds fixed), each
 * labelled by what tells it apart (name or policy, media, file, question, model, id); a filter box and
 * media-kind chips narrow the list; "rename" names the current run.
 */
import { matchesFilter } from '../data/run-identity.js';
import { visibleText } from './conversation.js';
import { child } from './dom.js';

/** @typedef {import('../data/run-identity.js').RunIdentity} RunIdentity */

const KINDS = /** @type {const} */ (['image', 'video', 'text']);

/** Text for an attribute or an option, escaped (visibleText also shows control characters). */
const escape = visibleText;

/**
 * @param {HTMLElement} host  holds #run-select, #run-filter, the .kind-chips and #rename
 * @param {{ pick: (run: string) => void, rename: (run: string) => void, changed: () => void }} on
 */
export function createRunPicker(host, on) {
  const select = child(host, '#run-select', HTMLSelectElement);
  const filter = child(host, '#run-filter', HTMLInputElement);
  const chips = child(host, '.kind-chips', HTMLElement);
  const rename = child(host, '#rename', HTMLButtonElement);
  chips.innerHTML = KINDS.map((k) => `<button type="button" class="kind-chip" data-kind="${k}" aria-pressed="false">${k}</button>`).join('');
  /** @type {Set<string>} */
  const kinds = new Set();
  let current = '';
  let key = '';
  select.addEventListener('change', () => on.pick(select.value));
  filter.addEventListener('input', () => on.changed());
  chips.addEventListener('click', (ev) => {
    const b = ev.target instanceof HTMLElement ? ev.target.closest('button[data-kind]') : null;
    if (!(b instanceof HTMLElement) || !b.dataset.kind) return;
    if (!kinds.delete(b.dataset.kind)) kinds.add(b.dataset.kind);
    b.setAttribute('aria-pressed', String(kinds.has(b.dataset.kind)));
    on.changed();
  });
  rename.addEventListener('click', () => current && on.rename(current));

  /**
   * @param {{ identity: RunIdentity, live: boolean }[]} list  newest first
   * @param {string | null} run  the current run (listed even when the filter leaves it out)
   */
  function update(list, run) {
    current = run ?? '';
    rename.disabled = !run;
    const shown = list.filter((r) => r.identity.run === run || matchesFilter(r.identity, filter.value, kinds));
    const k = `${filter.value}|${[...kinds]}|${shown.map((r) => `${r.identity.run}:${r.identity.label}:${r.live}`).join('|')}`;
    if (k !== key) {
      key = k;
      /** @type {Map<string, { label: string, runs: typeof shown }>} */
      const groups = new Map();
      for (const r of shown) {
        const g = groups.get(r.identity.workload) ?? { label: r.identity.workloadLabel, runs: [] };
        g.runs.push(r);
        groups.set(r.identity.workload, g);
      }
      const option = (/** @type {(typeof shown)[number]} */ r) =>
        `<option value="${escape(r.identity.run)}" title="${escape(r.identity.label)}">${escape(r.identity.label)}${r.live ? ' ● live' : ''}</option>`;
      select.innerHTML = shown.length
        ? [...groups.values()].map((g) => `<optgroup label="${escape(g.label)}">${g.runs.map(option).join('')}</optgroup>`).join('')
        : `<option value="">${list.length ? 'no run matches the filter' : 'no runs'}</option>`;
      host.dataset.shown = String(shown.length);
    }
    select.value = current;
    const id = list.find((r) => r.identity.run === run)?.identity;
    select.title = id ? `${id.label}\n${id.question ?? ''}` : '';
  }

  return { update };
}
