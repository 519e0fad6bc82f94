/**
 * Folds a run's trace events (src/trace/schema.ts) into the model the views draw from. Pure: no DOM, no
 * network — `applyEvent` mutates one run's model in place and says which aspects changed, so the page
 * redraws only the views that read them, and a 64-frame video trace is folded once, event by event.
 *
 * Big arrays are kept compact: salience as Float32Array, kept indices as Int32Array, and a turn's
 * retrieval candidates (the same retained tokens for every layer) stored once as (image, token) Int32Arrays.
 */

/** Aspects a view can depend on; `applyEvent` returns the ones an event touched. */
export const ASPECTS = ['meta', 'images', 'retention', 'retrieval', 'timeline', 'conversation', 'fidelity'];

export const STAGES = ['images', 'encode', 'prune', 'prefill', 'retrieve', 'decode'];

let nextId = 0;

export function createRunModel(run) {
  return {
    run,
    /** Unique per model object: a run folded again (a replay) never collides with its old redraw keys. */
    id: ++nextId,
    /** The run.start event: model, policy, options. */
    start: null,
    events: 0,
    /** Last event time (ms since the run started). */
    lastT: 0,
    /** image index → { image, turn, width, height, jpeg } */
    images: new Map(),
    /** image index → { turn, source, rows, cols, leading, scores: Float32Array, max } */
    salience: new Map(),
    /** image index → { turn, total, kept: Int32Array, set: Uint8Array (1 per kept token) } */
    kept: new Map(),
    /** turn index → Turn (see newTurn) */
    turns: new Map(),
    /** Smallest and largest salience score over all images (one colour scale across frames). */
    salienceMin: Infinity,
    salienceMax: 0,
    /** Per-aspect change counters. */
    versions: Object.fromEntries(ASPECTS.map((a) => [a, 0])),
  };
}

function newTurn(turn) {
  return {
    turn,
    text: null,
    images: 0,
    t0: null,
    tEnd: null,
    answer: null,
    stopReason: null,
    metrics: null,
    /** Streamed token texts, by step, until the answer arrives. */
    tokens: [],
    /** decode.step events: { step, ms, attended, visualAttended, t } */
    steps: [],
    /** span events: { stage, start, duration, detail } */
    spans: [],
    /** Retained candidates, shared by the turn's layers: { image: Int32Array, token: Int32Array } */
    candidates: null,
    /** Lazily built lookup "image:token" → candidate index. */
    candidateIndex: null,
    /** Per layer: { layer, candidates, scores: Float32Array, retrieved: Int32Array, byImage: Map<image, Set<token>> } */
    retrieval: [],
    fidelity: null,
  };
}

function turnOf(m, turn) {
  let t = m.turns.get(turn);
  if (!t) {
    t = newTurn(turn);
    m.turns.set(turn, t);
  }
  return t;
}

function packCandidates(list) {
  const n = list.length;
  const image = new Int32Array(n);
  const token = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    image[i] = list[i].image;
    token[i] = list[i].token;
  }
  return { image, token };
}

function sameCandidates(a, list) {
  if (!a || a.image.length !== list.length) return false;
  for (let i = 0; i < list.length; i++) if (a.image[i] !== list[i].image || a.token[i] !== list[i].token) return false;
  return true;
}

function toFloat32(values) {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] ?? NaN; // JSON writes non-finite numbers as null
  return out;
}

/**
 * Fold one event into the run's model. Returns the aspects it changed (empty for events of another run).
 */
export function applyEvent(m, e) {
  if (e.run !== m.run) return [];
  m.events++;
  if (e.t > m.lastT) m.lastT = e.t;
  const touched = foldOne(m, e);
  for (const a of touched) m.versions[a]++;
  return touched;
}

function foldOne(m, e) {
  switch (e.type) {
    case 'run.start':
      m.start = { model: e.model, policy: e.policy, options: e.options, version: e.version, t: e.t };
      return ['meta'];
    case 'turn.start': {
      const t = turnOf(m, e.turn);
      t.text = e.text;
      t.images = e.images;
      t.t0 = e.t;
      return ['conversation', 'meta'];
    }
    case 'image':
      m.images.set(e.image, { image: e.image, turn: e.turn, width: e.width, height: e.height, jpeg: e.jpeg });
      return ['images'];
    case 'salience': {
      const scores = toFloat32(e.scores);
      let max = 0;
      let min = Infinity;
      for (const v of scores) {
        if (v > max) max = v;
        if (v < min) min = v;
      }
      m.salience.set(e.image, { turn: e.turn, source: e.source, rows: e.grid.rows, cols: e.grid.cols, leading: e.leading, scores, max, min });
      if (max > m.salienceMax) m.salienceMax = max;
      if (min < m.salienceMin) m.salienceMin = min;
      return ['retention'];
    }
    case 'kept': {
      const kept = Int32Array.from(e.kept);
      const set = new Uint8Array(e.total);
      for (const k of kept) if (k >= 0 && k < e.total) set[k] = 1;
      m.kept.set(e.image, { turn: e.turn, total: e.total, kept, set });
      return ['retention', 'meta'];
    }
    case 'retrieval': {
      const t = turnOf(m, e.turn);
      const candidates = sameCandidates(t.candidates, e.candidates) ? t.candidates : packCandidates(e.candidates);
      t.candidates ??= candidates;
      const retrieved = Int32Array.from(e.retrieved);
      const byImage = new Map();
      for (const i of retrieved) {
        const img = candidates.image[i];
        let s = byImage.get(img);
        if (!s) byImage.set(img, (s = new Set()));
        s.add(candidates.token[i]);
      }
      t.retrieval[e.layer] = { layer: e.layer, candidates, scores: toFloat32(e.scores), retrieved, byImage };
      t.candidateIndex = null;
      return ['retrieval'];
    }
    case 'span':
      turnOf(m, e.turn).spans.push({ stage: e.stage, start: e.start, duration: e.duration, detail: e.detail ?? null });
      return ['timeline'];
    case 'decode.step':
      turnOf(m, e.turn).steps.push({ step: e.step, ms: e.ms, attended: e.attended, visualAttended: e.visualAttended, t: e.t });
      return ['timeline'];
    case 'token':
      turnOf(m, e.turn).tokens[e.step] = e.text;
      return ['conversation'];
    case 'turn.end': {
      const t = turnOf(m, e.turn);
      t.answer = e.answer;
      t.stopReason = e.stopReason;
      t.metrics = e.metrics;
      t.tEnd = e.t;
      return ['conversation', 'meta'];
    }
    case 'fidelity':
      turnOf(m, e.turn).fidelity = e.metrics;
      return ['fidelity', 'conversation', 'meta'];
    default:
      return [];
  }
}

/** Fold a list of events (any runs) into models, keyed by run, in first-seen order. */
export function foldEvents(events, models = new Map()) {
  for (const e of events) {
    if (!e || typeof e.run !== 'string') continue;
    let m = models.get(e.run);
    if (!m) models.set(e.run, (m = createRunModel(e.run)));
    applyEvent(m, e);
  }
  return models;
}

// ---------------------------------------------------------------------------------------------------------
// Reading the model.

export function turnList(m) {
  return [...m.turns.keys()].sort((a, b) => a - b);
}

export function layerCount(m) {
  let n = m.start?.model?.layers ?? 0;
  for (const t of m.turns.values()) n = Math.max(n, t.retrieval.length);
  return n;
}

/** Images in the KV cache at `turn`: those a turn ≤ `turn` brought, ascending. */
export function imagesAtTurn(m, turn) {
  const ids = new Set();
  for (const [id, img] of m.images) if (img.turn <= turn) ids.add(id);
  for (const [id, k] of m.kept) if (k.turn <= turn) ids.add(id);
  for (const [id, s] of m.salience) if (s.turn <= turn) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

/** The retrieval of one turn and layer, or null (dense and prefill-only policies do not retrieve). */
export function retrievalAt(m, turn, layer) {
  return m.turns.get(turn)?.retrieval[layer] ?? null;
}

/** Index of (image, token) in a turn's candidates, or -1. */
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

/** Patch geometry of an image: grid and leading non-patch tokens; from salience, else a square guess. */
export function gridOf(m, image) {
  const s = m.salience.get(image);
  if (s) return { rows: s.rows, cols: s.cols, leading: s.leading };
  const total = m.kept.get(image)?.total ?? m.start?.model?.imageTokens ?? 0;
  const side = Math.floor(Math.sqrt(total));
  return { rows: side, cols: side, leading: total - side * side };
}

export const PRUNED = 0;
export const KEPT = 1;

/**
 * Per LLM token of one image: its state at a turn and layer. `state[t]` is KEPT or PRUNED, `retrieved[t]`
 * is 1 where the layer's retrieval set holds the token. A run that never reported `kept` keeps everything.
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

/** Counts at one turn and layer over the images in the cache then. */
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

/** Retrieved tokens per image (frame) at one turn and layer, and kept per image: for the frame bars. */
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

/** Stage totals of a turn in ms (spans of one stage summed). */
export function stageTotals(turn) {
  const out = Object.fromEntries(STAGES.map((s) => [s, 0]));
  for (const s of turn.spans) out[s.stage] = (out[s.stage] ?? 0) + s.duration;
  return out;
}
