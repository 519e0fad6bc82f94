/**
 * The URL hash as the page's address: `#/run/<id>?turn=&layer=`, `#/compare/<a>/<b>`, `#/sweep`. Pure:
 * state → hash and hash → a state patch, so a link reopens the same view.
 */
export function stateToHash(state) {
  if (state.route === 'compare') return `#/compare/${encodeURIComponent(state.a ?? '')}/${encodeURIComponent(state.b ?? '')}`;
  if (state.route === 'sweep') return '#/sweep';
  const q = new URLSearchParams();
  if (state.turnPinned && state.turn != null) q.set('turn', state.turn);
  q.set('layer', state.layer);
  return `#/run${state.run ? `/${encodeURIComponent(state.run)}` : ''}?${q}`;
}

export function hashToPatch(hash) {
  const [path, query] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(query ?? '');
  const route = ['run', 'compare', 'sweep'].includes(parts[0]) ? parts[0] : 'run';
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
