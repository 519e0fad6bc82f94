/**
 * Leading-and-trailing throttle: the first call runs now, calls within `ms` collapse into one trailing
 * call with the latest arguments. Keeps Plotly redraws bounded while a run streams hundreds of events.
 */
/**
 * @template {unknown[]} A
 * @param {(...args: A) => void} fn
 * @param {number} ms
 * @returns {(...args: A) => void}
 */
export function throttle(fn, ms) {
  let last = -Infinity;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** @type {A | null} */
  let pending = null;
  const run = () => {
    timer = null;
    last = performance.now();
    const args = /** @type {A} */ (pending);
    pending = null;
    fn(...args);
  };
  return (...args) => {
    pending = args;
    if (timer) return;
    const wait = last + ms - performance.now();
    if (wait <= 0) run();
    else timer = setTimeout(run, wait);
  };
}
