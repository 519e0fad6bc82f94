/**
 * The URL hash as the page's address: `#/run/<id>?turn=&layer=`, `#/compare/<a>/<b>`, `#/sweep`. Pure:
 * state → hash and hash → a state patch, so a link reopens the same view.
 */

/** @typedef {'run' | 'compare' | 'sweep'} Route */

/**
 * The page's state (app.js holds it): the view, its runs, turn and layer, and the display options.
 * @typedef {object} PageState
 * @property {Route} route
 * @property {string | null} run
 * @property {number | null} turn  null: follow the latest turn
 * @property {boolean} turnPinned  true: the turn was chosen, do not follow the latest
 * @property {number} layer
 * @property {boolean} heat  salience heat under the retention map
 * @property {string} size  frame size: 'auto', 's', 'm', 'l'
 * @property {string} hmMode  retrieval heatmap mode: 'auto', 'hits', 'scores', 'frames'
 * @property {string | null} a  compared run A
 * @property {string | null} b  compared run B
 * @property {number} cmpLayer
 * @property {string} sweepX  a key of the sweep's X_AXES
 * @property {string} sweepY  a key of the sweep's Y_AXES
 */

/**
 * What app.js hands every view: a way to change the state, and to name a run's files.
 * @typedef {object} ViewContext
 * @property {(patch: Partial<PageState>) => void} setState
 * @property {(m: { run: string } | null | undefined) => string} fileName  a file name stem for a run's exports
 */

/** @param {PageState} state */
export function stateToHash(state) {
  if (state.route === 'compare') return `#/compare/${encodeURIComponent(state.a ?? '')}/${encodeURIComponent(state.b ?? '')}`;
  if (state.route === 'sweep') return '#/sweep';
  const q = new URLSearchParams();
  if (state.turnPinned && state.turn != null) q.set('turn', String(state.turn));
  q.set('layer', String(state.layer));
  return `#/run${state.run ? `/${encodeURIComponent(state.run)}` : ''}?${q}`;
}

/**
 * @param {string} hash
 * @returns {Partial<PageState>}
 */
export function hashToPatch(hash) {
  const [path, query] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(query ?? '');
  /** @type {Route[]} */
  const routes = ['run', 'compare', 'sweep'];
  const route = routes.find((r) => r === parts[0]) ?? 'run';
  /** @type {Partial<PageState>} */
  const patch = { route };
  if (route === 'run') {
    if (parts[1]) patch.run = parts[1];
    if (q.has('turn')) {
      patch.turn = Number(q.get('turn'));
      patch.turnPinned = true;
    }
    if (q.has('layer')) patch.layer = Number(q.get('layer'));
  } else if (route === 'compare') {
    if (parts[1]) patch.a = parts[1];
    if (parts[2]) patch.b = parts[2];
  }
  return patch;
}
