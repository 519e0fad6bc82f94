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

/**
 * Rank of candidate `i` by a layer's recorded scores among all its candidates: 1 for the most attended, ties to
 * the earlier candidate as the engine's top-k breaks them (src/sparsity/topk.ts). One pass, no sort: the token
 * panel asks this for one token at every turn and layer. NaN scores (non-finite in the trace) rank last.
 * @param {ArrayLike<number>} scores
 * @param {number} i
 */
export function rankOf(scores, i) {
  const s = scores[i];
  if (Number.isNaN(s)) return scores.length;
  let rank = 1;
  for (let j = 0; j < scores.length; j++) {
    const v = scores[j];
    if (v > s || (v === s && j < i)) rank++;
  }
  return rank;
}

/**
 * One layer's verdict on one token at one turn (the token panel's cell).
 * @typedef {object} LayerVerdict
 * @property {number} layer
 * @property {boolean} retrieved  the trace's own retrieval set holds it
 * @property {number} rank  by the question's attention mass among the turn's retained tokens, from 1
 * @property {number} cutoff  how many the layer retrieved: a rank at or under it is in a plain top-k
 * @property {number} candidates  retained tokens the layer chose from
 * @property {number} score  the token's attention mass
 * @property {number} cutoffScore  the mass of the token ranked at the cutoff
 */

/**
 * A visual token's story over the run: kept or pruned at prefill and its salience rank in its image, then, at
 * every turn after its image arrived, each layer's verdict — retrieved or not (the trace's retrieval set), its
 * rank against the cutoff — and per layer how often the turns that retrieved retrieved it. Ranks are derived from
 * the recorded scores; a method that also keeps a per-image minimum or a KV head's own top-k can retrieve a token
 * ranked past the cutoff, which `retrieved` still reports as the trace says.
 * @param {RunModel} m
 * @param {number} image
 * @param {number} token
 */
export function tokenHistory(m, image, token) {
  const k = m.kept.get(image);
  const sal = m.salience.get(image);
  const kept = k ? k.set[token] === 1 : true;
  const salience = sal && token < sal.scores.length ? { score: sal.scores[token], rank: rankOf(sal.scores, token), of: sal.scores.length } : null;
  const arrived = m.images.get(image)?.turn ?? k?.turn ?? sal?.turn ?? 0;
  const layers = layerCount(m);
  /** @type {{ turn: number, status: 'retrieved' | 'pending' | 'none', layers: (LayerVerdict | null)[] }[]} */
  const turns = [];
  const often = Array.from({ length: layers }, () => ({ retrieved: 0, turns: 0 }));
  for (const turn of turnList(m)) {
    if (turn < arrived) continue;
    const status = retrievalStatus(m, turn);
    const i = kept ? candidateIndex(m, turn, image, token) : -1;
    /** @type {(LayerVerdict | null)[]} */
    const row = [];
    for (let layer = 0; layer < layers; layer++) {
      const r = retrievalAt(m, turn, layer);
      if (!r || i < 0) {
        row.push(null);
        continue;
      }
      const cutoff = r.retrieved.length;
      const retrieved = r.byImage.get(image)?.has(token) ?? false;
      row.push({
        layer,
        retrieved,
        rank: rankOf(r.scores, i),
        cutoff,
        candidates: r.scores.length,
        score: r.scores[i],
        cutoffScore: kthLargest(r.scores, cutoff),
      });
      often[layer].turns++;
      if (retrieved) often[layer].retrieved++;
    }
    turns.push({ turn, status, layers: row });
  }
  return { image, token, kept, keptCount: k ? k.kept.length : null, salience, turns, often, ...gridOf(m, image) };
}

/**
 * The k-th largest of `values` (NaN when k is out of range): the score a token must beat to be retrieved.
 * @param {ArrayLike<number>} values
 * @param {number} k
 */
function kthLargest(values, k) {
  if (k < 1 || k > values.length) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[values.length - k];
}

/**
 * Images a text names as frames, counted from 1 as the chat template and the questions count them
 * ("frame 3", "frames 2 and 5", "Frame 1, 4 or 7"), as image indices from 0 that the run holds.
 * @param {RunModel} m
 * @param {string | null | undefined} text
 */
export function framesNamed(m, text) {
  /** @type {Set<number>} */
  const out = new Set();
  for (const match of String(text ?? '').matchAll(/\bframes?\s+(\d+(?:\s*(?:,|and|or|&)\s*\d+)*)/gi)) {
    for (const n of match[1].match(/\d+/g) ?? []) {
      const image = Number(n) - 1;
      if (m.images.has(image) || m.kept.has(image) || m.salience.has(image)) out.add(image);
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * What a search box finds: a frame number ("12", "frame 12", counted from 1) names that frame; other text finds
 * the turns whose question holds it (any case) and the frames those questions name.
 * @param {RunModel} m
 * @param {string} query
 * @returns {{ frames: number[], turns: number[] }}
 */
export function searchRun(m, query) {
  const q = query.trim();
  if (!q) return { frames: [], turns: [] };
  const number = /^(?:frame\s*|#)?(\d+)$/i.exec(q);
  if (number) return { frames: framesNamed(m, `frame ${number[1]}`), turns: [] };
  const needle = q.toLowerCase();
  const turns = orderedTurns(m).filter((t) => (t.text ?? '').toLowerCase().includes(needle));
  const frames = new Set(framesNamed(m, q));
  for (const t of turns) for (const f of framesNamed(m, t.text)) frames.add(f);
  return { frames: [...frames].sort((a, b) => a - b), turns: turns.map((t) => t.turn) };
}

/**
 * The stretches of a turn that no span covers, from its first span's start to its last span's end, each with the
 * stages either side: what the timeline names rather than leaves blank. Gaps under `minMs` are left out.
 * @param {Turn} turn
 * @param {number} [minMs]
 * @returns {{ start: number, duration: number, after: import('./run-model.js').Stage, before: import('./run-model.js').Stage }[]}
 */
export function turnGaps(turn, minMs = 0.01) {
  const spans = [...turn.spans].sort((a, b) => a.start - b.start);
  const out = [];
  let end = -Infinity;
  /** @type {import('./run-model.js').Stage | null} */
  let last = null;
  for (const s of spans) {
    if (last && s.start - end >= minMs) out.push({ start: end, duration: s.start - end, after: last, before: s.stage });
    if (s.start + s.duration >= end) {
      end = s.start + s.duration;
      last = s.stage;
    }
  }
  return out;
}
