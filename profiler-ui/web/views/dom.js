/** Typed look-ups of the elements a view wrote into its own markup. */

/**
 * The element `selector` names inside `root`, checked to be a `type`. Missing or of another kind, it is a
 * bug in the markup the view just wrote, so it throws rather than letting a null travel.
 * @template {Element} E
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{ new (...args: any[]): E }} type
 * @returns {E}
 */
export function child(root, selector, type) {
  const el = root.querySelector(selector);
  if (!(el instanceof type)) throw new Error(`the page's markup has no ${type.name} '${selector}'`);
  return el;
}

/**
 * A canvas's 2D context. Browsers give null only for a canvas already holding another kind of context,
 * which a canvas made for one drawing never does.
 * @param {HTMLCanvasElement} canvas
 */
export function context2d(canvas) {
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('this browser gave no 2D canvas context');
  return ctx;
}
