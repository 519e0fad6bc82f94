/**
 * Leading-and-trailing throttle: the first call runs now, calls within `ms` collapse into one trailing
 * call with the latest arguments. Keeps Plotly redraws bounded while a run streams hundreds of events.
 */
export function throttle(fn, ms) {
  let last = -Infinity;
  let timer = null;
  let pending = null;
  const run = () => {
    timer = null;
    last = performance.now();
    const args = pending;
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
