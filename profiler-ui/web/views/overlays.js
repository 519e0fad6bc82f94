/** The page's floating bits: a tooltip that follows the pointer, and a toast for messages and errors. */
/** @param {HTMLElement} el */
export function createTooltip(el) {
  return {
    /**
     * @param {string} html
     * @param {number} x
     * @param {number} y
     */
    show(html, x, y) {
      el.innerHTML = html;
      el.hidden = false;
      const w = el.offsetWidth;
      el.style.left = `${Math.min(x + 14, innerWidth - w - 8)}px`;
      el.style.top = `${y + 14}px`;
    },
    hide() {
      el.hidden = true;
    },
  };
}

/** @typedef {ReturnType<typeof createTooltip>} Tooltip */

/**
 * @param {HTMLElement} el
 * @param {number} [ms]
 */
export function createToast(el, ms = 5000) {
  let timer = 0;
  return (/** @type {string} */ text, error = false) => {
    el.textContent = text;
    el.classList.toggle('error', error);
    el.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => (el.hidden = true), ms);
  };
}
