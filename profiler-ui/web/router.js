/**
 * The URL hash as the page's address: `#/run/<id>?turn=&layer=&heat=&size=&mode=`, `#/compare/<a>/<b>?layer=`,
 * `#/sweep?x=&y=`. Pure: state → hash and hash → a state patch, so a link reopens the same view.
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
 * @property {(run: string) => import('./data/run-identity.js').RunIdentity | null} [identity]  what tells a run apart
 */

/** The display options a run view's URL carries, with their defaults (a default is left out of the URL). */
const RUN_OPTIONS = /** @type {const} */ ([
  ['size', 'size', 'auto'],
  ['mode', 'hmMode', 'auto'],
]);

/**
 * The state as the URL's hash: every setting that changes what the view shows, so a link reproduces it.
 * @param {PageState} state
 */
export function stateToHash(state) {
  const q = new URLSearchParams();
  if (state.route === 'compare') {
    if (state.cmpLayer) q.set('layer', String(state.cmpLayer));
    const query = q.size ? `?${q}` : '';
    return `#/compare/${encodeURIComponent(state.a ?? '')}/${encodeURIComponent(state.b ?? '')}${query}`;
  }
  if (state.route === 'sweep') {
    q.set('x', state.sweepX);
    q.set('y', state.sweepY);
    return `#/sweep?${q}`;
  }
  if (state.turnPinned && state.turn != null) q.set('turn', String(state.turn));
  q.set('layer', String(state.layer));
  if (!state.heat) q.set('heat', '0');
  for (const [key, field, fallback] of RUN_OPTIONS) if (state[field] !== fallback) q.set(key, state[field]);
  return `#/run${state.run ? `/${encodeURIComponent(state.run)}` : ''}?${q}`;
}

/**
 * The state a hash names. A setting the hash leaves out takes its default, so going back to a link restores
 * the view it named, not whatever the page showed since.
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
  const int = (/** @type {string} */ key) => {
    const v = Number(q.get(key));
    return q.has(key) && Number.isInteger(v) && v >= 0 ? v : null;
  };
  /** @type {Partial<PageState>} */
  const patch = { route };
  if (route === 'run') {
    if (parts[1]) patch.run = parts[1];
    const turn = int('turn');
    patch.turn = turn;
    patch.turnPinned = turn != null;
    patch.layer = int('layer') ?? 0;
    patch.heat = q.get('heat') !== '0';
    for (const [key, field, fallback] of RUN_OPTIONS) patch[field] = q.get(key) ?? fallback;
  } else if (route === 'compare') {
    if (parts[1]) patch.a = parts[1];
    if (parts[2]) patch.b = parts[2];
    patch.cmpLayer = int('layer') ?? 0;
  } else {
    if (q.has('x')) patch.sweepX = String(q.get('x'));
    if (q.has('y')) patch.sweepY = String(q.get('y'));
  }
  return patch;
}

/**
 * Whether going from one state to the next is a step a person goes back from (another view, run, turn or
 * pair: a new history entry) or a setting of the same view (the entry is replaced, so a dragged layer
 * slider does not fill the history).
 * @param {PageState} before
 * @param {Partial<PageState>} patch
 */
export function isNavigation(before, patch) {
  return /** @type {const} */ (['route', 'run', 'turn', 'a', 'b']).some((k) => k in patch && patch[k] !== before[k]);
}
