/**
 * A frame's patches by keyboard, as WAI-ARIA's grid pattern has it: the frame is one tab stop (a roving
 * `tabindex="0"` on its last focused patch, -1 on the others), arrows move between patches (Home / End: the first
 * and last token), and Enter or Space picks the focused one. The cells and their labels are retention-frame.js's.
 */
import { neighbour } from './retention-frame.js';

/** @typedef {import('./retention-frame.js').FrameData} FrameData */

/**
 * Make `target` (a patch cell under `host`) the frame's one tab stop.
 * @param {Element} host
 * @param {EventTarget | null} target
 */
function rove(host, target) {
  if (!(target instanceof SVGRectElement) || !target.closest('g.cells')) return;
  for (const el of host.querySelectorAll('g.cells rect[tabindex="0"]')) if (el !== target) el.setAttribute('tabindex', '-1');
  target.setAttribute('tabindex', '0');
}

/**
 * Put the keyboard on patch `token` of the frame under `host`.
 * @param {Element} host
 * @param {number} token
 */
export function focusPatch(host, token) {
  const el = host.querySelector(`g.cells rect[data-token="${token}"]`);
  if (el instanceof SVGRectElement) {
    rove(host, el);
    el.focus({ preventScroll: true });
  }
}

/**
 * Answer the keys on the frame drawn under `host`.
 * @param {HTMLElement} host
 * @param {() => FrameData | null} data  what the frame shows now (null: not drawn yet)
 * @param {(token: number) => void} onPick
 */
export function bindPatchKeys(host, data, onPick) {
  host.addEventListener('focusin', (ev) => rove(host, ev.target));
  host.addEventListener('keydown', (ev) => {
    const d = data();
    const target = ev.target;
    if (!d || !(target instanceof SVGRectElement) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const t = Number(target.dataset.token);
    /** @type {Record<string, () => number>} */
    const moves = {
      ArrowLeft: () => neighbour(d, t, 0, -1),
      ArrowRight: () => neighbour(d, t, 0, 1),
      ArrowUp: () => neighbour(d, t, -1, 0),
      ArrowDown: () => neighbour(d, t, 1, 0),
      Home: () => 0,
      End: () => d.total - 1,
    };
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      ev.stopPropagation();
      onPick(t);
    } else if (moves[ev.key]) {
      ev.preventDefault();
      focusPatch(host, moves[ev.key]());
    }
  });
}
