/**
 * What the views (and the notebook kernel, kernel/data.ts) ask of a folded run (run-model.js): its turns
 * and layers, the images in the cache at a turn, a token's state at a turn and layer, the counts. Pure.
 */

/**
 * @typedef {import('./run-model.js').RunModel} RunModel
 * @typedef {import('./run-model.js').Turn} Turn
 * @typedef {import('./run-model.js').LayerRetrieval} LayerRetrieval
 */

/** @param {RunModel} m */
export function turnList(m) {
  return [...m.turns.keys()].sort((a, b) => a - b);
}

/**
 * The run's turns, in order.
 * @param {RunModel} m
 * @returns {Turn[]}
 */
export function orderedTurns(m) {
  return turnList(m).map((i) => /** @type {Turn} */ (m.turns.get(i)));
}

/** @param {RunModel} m */
export function layerCount(m) {
  let n = m.start?.model?.layers ?? 0;
  for (const t of m.turns.values()) n = Math.max(n, t.retrieval.length);
  return n;
}

/**
 * Images in the KV cache at `turn`: those a turn ≤ `turn` brought, ascending.
 * @param {RunModel} m
 * @param {number} turn
 */
export function imagesAtTurn(m, turn) {
  /** @type {Set<number>} */
  const ids = new Set();
  for (const [id, img] of m.images) if (img.turn <= turn) ids.add(id);
  for (const [id, k] of m.kept) if (k.turn <= turn) ids.add(id);
  for (const [id, s] of m.salience) if (s.turn <= turn) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

/**
 * The retrieval of one turn and layer, or null (policies that attend every retained token do not retrieve).
 * @param {RunModel} m
 * @param {number} turn
 * @param {number} layer
 * @returns {LayerRetrieval | null}
 */
export function retrievalAt(m, turn, layer) {
  return m.turns.get(turn)?.retrieval[layer] ?? null;
}

/**
 * Whether a turn's retrieval sets are in, still to come, or not part of the run's policy — read from the
 * trace alone, whatever the method: retrieval runs between a turn's prefill and its decode, so a turn that
 * decodes without retrieval events attends every retained token, and so will the run's later turns.
 * @param {RunModel} m
 * @param {number} turn
 * @returns {'retrieved' | 'pending' | 'none'}
 */
export function retrievalStatus(m, turn) {
  const t = m.turns.get(turn);
  if (t?.retrieval.some(Boolean)) return 'retrieved';
  /** @param {Turn} u */
  const decodedWithout = (u) => !u.retrieval.some(Boolean) && (u.answer != null || u.tokens.length > 0 || u.steps.length > 0);
  if (t && decodedWithout(t)) return 'none';
  for (const u of m.turns.values()) {
    if (u.turn >= turn) continue;
    if (u.retrieval.some(Boolean)) return 'pending';
    if (decodedWithout(u)) return 'none';
  }
  return 'pending';
}

/**
 * Index of (image, token) in a turn's candidates, or -1.
 * @param {RunModel} m
 * @param {number} turn
 * @param {number} image
 * @param {number} token
 */
export function candidateIndex(m, turn, image, token) {
  const t = m.turns.get(turn);
  if (!t?.candidates) return -1;
  if (!t.candidateIndex) {
    t.candidateIndex = new Map();
    const c = t.candidates;
    for (let i = 0; i < c.image.length; i++) t.candidateIndex.set(`${c.image[i]}:${c.token[i]}`, i);
  }
  return t.candidateIndex.get(`${image}:${token}`) ?? -1;
}

/**
 * Patch geometry of an image: grid and leading non-patch tokens, from its salience event. A run missing it (a
 * trace cut short, a notebook trace that dropped its oldest events) has only the token count (`kept.total`, else
 * the model's `imageTokens`): a fixed-size tower's grid is square after any leading tokens (CLIP's CLS);
 * a native-resolution tower's (`imageTokens` 0: Qwen2-VL) is the factoring of the count nearest the picture's
 * aspect ratio, as its processor sized the image.
 * @param {RunModel} m
 * @param {number} image
 * @returns {{ rows: number, cols: number, leading: number }}
 */
export function gridOf(m, image) {
  const s = m.salience.get(image);
  if (s) return { rows: s.rows, cols: s.cols, leading: s.leading };
  const fixed = m.start?.model?.imageTokens ?? 0;
  const total = m.kept.get(image)?.total ?? fixed;
  const picture = m.images.get(image);
  const aspect = picture && picture.width > 0 && picture.height > 0 ? picture.width / picture.height : 1;
  if (total > 0 && (fixed === 0 || aspect !== 1)) return { ...gridNearest(total, aspect), leading: 0 };
  const side = Math.floor(Math.sqrt(total));
  return { rows: side, cols: side, leading: total - side * side };
}

/**
 * The rows × cols = n grid whose cols / rows is nearest `aspect` (on a log scale); ties go to the wider grid.
 * @param {number} n
 * @param {number} aspect  width / height
 */
export function gridNearest(n, aspect) {
  let best = { rows: 1, cols: n };
  let bestErr = Infinity;
  for (let rows = 1; rows <= n; rows++) {
    if (n % rows) continue;
    const err = Math.abs(Math.log(n / rows / rows / aspect));
    if (err < bestErr - 1e-12) [best, bestErr] = [{ rows, cols: n / rows }, err];
  }
  return best;
}

export const PRUNED = 0;
export const KEPT = 1;

/**
 * Per LLM token of one image: its state at a turn and layer. `state[t]` is KEPT or PRUNED, `retrieved[t]`
 * is 1 where the layer's retrieval set holds the token. A run that never reported `kept` keeps everything.
 * @param {RunModel} m
 * @param {number} image
 * @param {number} turn
 * @param {number} layer
 */
export function tokenStates(m, image, turn, layer) {
  const g = gridOf(m, image);
  const total = m.kept.get(image)?.total ?? g.leading + g.rows * g.cols;
  const k = m.kept.get(image);
  const state = new Uint8Array(total);
  if (k) state.set(k.set.subarray(0, total));
  else state.fill(KEPT);
  const retrieved = new Uint8Array(total);
  const r = retrievalAt(m, turn, layer)?.byImage.get(image);
  if (r) for (const tok of r) if (tok >= 0 && tok < total) retrieved[tok] = 1;
  return { total, state, retrieved, ...g };
}

/**
 * Counts at one turn and layer over the images in the cache then.
 * @param {RunModel} m
 * @param {number} turn
 * @param {number} layer
 */
export function countsAt(m, turn, layer) {
  const images = imagesAtTurn(m, turn);
  let total = 0;
  let kept = 0;
  for (const img of images) {
    const k = m.kept.get(img);
    const g = gridOf(m, img);
    const n = k?.total ?? g.leading + g.rows * g.cols;
    total += n;
    kept += k ? k.kept.length : n;
  }
  const r = retrievalAt(m, turn, layer);
  return {
    images: images.length,
    total,
    kept,
    pruned: total - kept,
    /** null: no retrieval at this turn (decode attends every retained token). */
    retrieved: r ? r.retrieved.length : null,
    candidates: r ? r.candidates.image.length : null,
  };
}

/**
 * Retrieved tokens per image (frame) at one turn and layer, and kept per image: for the frame bars.
 * @param {RunModel} m
 * @param {number} turn
 * @param {number} layer
 */
export function perImageCounts(m, turn, layer) {
  const r = retrievalAt(m, turn, layer);
  return imagesAtTurn(m, turn).map((image) => {
    const k = m.kept.get(image);
    const g = gridOf(m, image);
    return {
      image,
      total: k?.total ?? g.leading + g.rows * g.cols,
      kept: k ? k.kept.length : g.leading + g.rows * g.cols,
      retrieved: r ? (r.byImage.get(image)?.size ?? 0) : null,
    };
  });
}
