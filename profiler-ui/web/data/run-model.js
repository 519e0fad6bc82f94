/**
 * Folds a run's trace events (src/trace/schema.ts) into the model the views draw from — the one fold of a
 * trace: the profiler page draws from it and the notebook kernel (kernel/data.ts, through the compiled
 * copy in dist/) reads its retention maps and retrieval tables from it; run-queries.js reads it. Pure: no
 * DOM, no network, no Node — `applyEvent` mutates one run's model in place and says which aspects changed,
 * so the page redraws only the views that read them, and a 64-frame video trace is folded once, event by
 * event.
 *
 * Big arrays are kept compact: salience and retrieval scores as Float32Array (the precision the wire
 * carries, src/trace/wire.ts), kept indices as Int32Array, and a turn's retrieval candidates (the same
 * retained tokens for every layer) stored once as (image, token) Int32Arrays.
 *
 * Typed by JSDoc against the engine's schema (profiler-ui/web/tsconfig.json checks it).
 */
/**
 * @typedef {import('../../../src/trace/schema.js').PolicyValue} PolicyValue
 * @typedef {import('../../../src/trace/schema.js').Stage} Stage
 * @typedef {import('../../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('../../../src/trace/schema.js').TraceEventType} TraceEventType
 */

/**
 * @template {TraceEventType} T
 * @typedef {Extract<TraceEvent, { type: T }>} EventOf
 */

/** Aspects a view can depend on; `applyEvent` returns the ones an event touched. */
export const ASPECTS = /** @type {const} */ (['meta', 'images', 'retention', 'retrieval', 'timeline', 'conversation', 'fidelity']);
/** @typedef {typeof ASPECTS[number]} Aspect */

/**
 * Every stage of the schema, and whether it is part of a turn's time (drawn on the timeline, summed in the
 * stage totals): 'fidelity' is the dense twin's work, reported beside the turn. A record, so that a stage
 * added to the schema's `Stage` fails the page's type-check here until the page places it.
 * @satisfies {Record<Stage, boolean>}
 */
const IN_TURN = { images: true, encode: true, prune: true, prefill: true, retrieve: true, decode: true, fidelity: false };
/** @typedef {{ [S in Stage]: (typeof IN_TURN)[S] extends true ? S : never }[Stage]} TurnStage */

/** The stages of a turn, in pipeline order. */
export const STAGES = /** @type {TurnStage[]} */ (Object.keys(IN_TURN).filter((s) => IN_TURN[/** @type {Stage} */ (s)]));

/**
 * @typedef {object} RunStart  What run.start said: the model, the policy and its label, the options.
 * @property {EventOf<'run.start'>['model']} model
 * @property {PolicyValue} policy
 * @property {string | null} label  The engine's label of the policy; null in traces written without one.
 * @property {Record<string, unknown>} options
 * @property {number} version
 * @property {number} t
 */

/**
 * @typedef {object} ImageInfo
 * @property {number} image
 * @property {number} turn
 * @property {number} width
 * @property {number} height
 * @property {string} jpeg  base64
 * @property {number[] | null} timestamps  Video time (s) of each frame it shows; null for a still image or an older trace.
 * @property {string | null} file  The base name of its file (a frame: its video's); null for bytes or an older trace.
 */

/**
 * @typedef {object} Salience
 * @property {number} turn
 * @property {EventOf<'salience'>['source']} source
 * @property {number} rows
 * @property {number} cols
 * @property {number} leading
 * @property {Float32Array} scores
 * @property {number} max
 * @property {number} min
 */

/**
 * @typedef {object} Kept
 * @property {number} turn
 * @property {number} total
 * @property {Int32Array} kept
 * @property {Uint8Array} set  1 per kept token
 */

/** @typedef {{ image: Int32Array, token: Int32Array }} Candidates  A turn's retained visual tokens, in cache order. */

/**
 * @typedef {object} LayerRetrieval
 * @property {number} layer
 * @property {Candidates} candidates
 * @property {Float32Array} scores  per candidate
 * @property {Int32Array} retrieved  indices into the candidates
 * @property {Map<number, Set<number>>} byImage  image → retrieved tokens
 */

/** @typedef {{ stage: Stage, start: number, duration: number, detail: Record<string, number> | null }} Span */
/** @typedef {{ step: number, ms: number, attended: number, visualAttended: number, t: number, hostToDeviceBytes?: number, deviceToHostBytes?: number }} DecodeStep */
/** @typedef {EventOf<'fidelity'>['metrics']} FidelityMetrics */

/**
 * @typedef {object} Turn
 * @property {number} turn
 * @property {string | null} text
 * @property {number} images
 * @property {number | null} t0
 * @property {number | null} tEnd
 * @property {string | null} answer
 * @property {EventOf<'turn.end'>['stopReason'] | null} stopReason
 * @property {Record<string, number> | null} metrics
 * @property {string[]} tokens  Streamed token texts, by step, until the answer arrives.
 * @property {DecodeStep[]} steps
 * @property {Span[]} spans
 * @property {Candidates | null} candidates  Retained candidates, shared by the turn's layers.
 * @property {Map<string, number> | null} candidateIndex  Lazily built lookup "image:token" → candidate index.
 * @property {(LayerRetrieval | undefined)[]} retrieval  By layer (sparse until every layer reported).
 * @property {FidelityMetrics | null} fidelity
 */

/**
 * @typedef {object} RunModel
 * @property {string} run
 * @property {number} id  Unique per model object: a run folded again (a replay) never collides with its old redraw keys.
 * @property {RunStart | null} start
 * @property {number} events
 * @property {number} lastT  Last event time (ms since the run started).
 * @property {Map<number, ImageInfo>} images  by image index
 * @property {Map<number, Salience>} salience  by image index
 * @property {Map<number, Kept>} kept  by image index
 * @property {Map<number, Turn>} turns  by turn index
 * @property {number} salienceMin  Smallest salience score over all images (one colour scale across frames).
 * @property {number} salienceMax
 * @property {Record<Aspect, number>} versions  Per-aspect change counters.
 */

let nextId = 0;

/**
 * @param {string} run
 * @returns {RunModel}
 */
export function createRunModel(run) {
  return {
    run,
    /** Unique per model object: a run folded again (a replay) never collides with its old redraw keys. */
    id: ++nextId,
    start: null,
    events: 0,
    lastT: 0,
    images: new Map(),
    salience: new Map(),
    kept: new Map(),
    turns: new Map(),
    salienceMin: Infinity,
    salienceMax: 0,
    versions: /** @type {Record<Aspect, number>} */ (Object.fromEntries(ASPECTS.map((a) => [a, 0]))),
  };
}

/**
 * @param {number} turn
 * @returns {Turn}
 */
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
    tokens: [],
    steps: [],
    spans: [],
    candidates: null,
    candidateIndex: null,
    retrieval: [],
    fidelity: null,
  };
}

/**
 * @param {RunModel} m
 * @param {number} turn
 */
function turnOf(m, turn) {
  let t = m.turns.get(turn);
  if (!t) {
    t = newTurn(turn);
    m.turns.set(turn, t);
  }
  return t;
}

/** @param {readonly { image: number, token: number }[]} list */
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

/**
 * @param {Candidates} a
 * @param {readonly { image: number, token: number }[]} list
 */
function sameCandidates(a, list) {
  if (a.image.length !== list.length) return false;
  for (let i = 0; i < list.length; i++) if (a.image[i] !== list[i].image || a.token[i] !== list[i].token) return false;
  return true;
}

/** @param {ArrayLike<number | null>} values */
function toFloat32(values) {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] ?? NaN; // JSON writes non-finite numbers as null
  return out;
}

/**
 * Fold one event into the run's model. Returns the aspects it changed (empty for events of another run).
 * @param {RunModel} m
 * @param {TraceEvent} e
 * @returns {Aspect[]}
 */
export function applyEvent(m, e) {
  if (e.run !== m.run) return [];
  m.events++;
  if (e.t > m.lastT) m.lastT = e.t;
  const touched = foldOne(m, e);
  for (const a of touched) m.versions[a]++;
  return touched;
}

/**
 * @param {RunModel} m
 * @param {TraceEvent} e
 * @returns {Aspect[]}
 */
function foldOne(m, e) {
  switch (e.type) {
    case 'run.start':
      m.start = { model: e.model, policy: e.policy, label: e.label ?? null, options: e.options, version: e.version, t: e.t };
      return ['meta'];
    case 'turn.start': {
      const t = turnOf(m, e.turn);
      t.text = e.text;
      t.images = e.images;
      t.t0 = e.t;
      return ['conversation', 'meta'];
    }
    case 'image':
      m.images.set(e.image, {
        image: e.image,
        turn: e.turn,
        width: e.width,
        height: e.height,
        jpeg: e.jpeg,
        timestamps: e.timestamps ?? null,
        file: e.file ?? null,
      });
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
      const candidates = t.candidates && sameCandidates(t.candidates, e.candidates) ? t.candidates : packCandidates(e.candidates);
      t.candidates ??= candidates;
      const retrieved = Int32Array.from(e.retrieved);
      /** @type {Map<number, Set<number>>} */
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
      turnOf(m, e.turn).steps.push({
        step: e.step,
        ms: e.ms,
        attended: e.attended,
        visualAttended: e.visualAttended,
        t: e.t,
        ...(e.hostToDeviceBytes === undefined ? {} : { hostToDeviceBytes: e.hostToDeviceBytes, deviceToHostBytes: e.deviceToHostBytes }),
      });
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
      return unknownEvent(e);
  }
}

/**
 * An event of a type the fold does not know (a newer writer): skipped. Typed `never`, so an event type
 * added to the schema fails the page's type-check until `foldOne` handles it.
 * @param {never} _e
 * @returns {Aspect[]}
 */
function unknownEvent(_e) {
  return [];
}

/**
 * Fold a list of events (any runs) into models, keyed by run, in first-seen order.
 * @param {Iterable<TraceEvent>} events
 * @param {Map<string, RunModel>} [models]
 */
export function foldEvents(events, models = new Map()) {
  for (const e of events) {
    if (!e || typeof e.run !== 'string') continue;
    let m = models.get(e.run);
    if (!m) models.set(e.run, (m = createRunModel(e.run)));
    applyEvent(m, e);
  }
  return models;
}

/**
 * Stage totals of a turn in ms (spans of one stage summed).
 * @param {Turn} turn
 * @returns {Record<Stage, number>}
 */
export function stageTotals(turn) {
  const out = /** @type {Record<Stage, number>} */ (Object.fromEntries(Object.keys(IN_TURN).map((s) => [s, 0])));
  for (const s of turn.spans) out[s.stage] = (out[s.stage] ?? 0) + s.duration;
  return out;
}
