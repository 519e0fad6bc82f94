/**
 * From what the engine returns (the step API's results, answers) or what it emitted (trace events) to the
 * plain data the render modules draw. Structural types only: anything shaped like an `EncodedImages`,
 * `PrunedImages` or `RetrievedTurn` works, so these are testable with plain objects.
 *
 * Trace events are read through the profiler page's fold (profiler-ui/web/data/run-model.js and
 * run-queries.js, plain JS that tsc compiles into dist/ beside this module), so a notebook and the page
 * show the same kept sets, retrieval sets and scores — float32, as the engine computes them and the wire
 * carries them.
 */
import { foldEvents, type Candidates, type LayerRetrieval, type RunModel } from '../profiler-ui/web/data/run-model.js';
import { imageLabel, timeLabel, turnLabel, turnTitle } from '../profiler-ui/web/data/labels.js';
import { gridOf, imagesAtTurn, orderedTurns } from '../profiler-ui/web/data/run-queries.js';
import { InputError } from '../src/errors.js';
import type { TraceEvent, VisualTokenId } from '../src/index.js';
import type { LatencyRow, LatencyTimings } from './render/latency.js';
import type { RetentionBackground, RetentionMapData, RetentionPanel } from './render/retention.js';
import type { RetrievalLayerRow, RetrievalTableData } from './render/retrieval.js';

/** Trace events, or anything holding them (a `MemorySink`, a `NotebookTrace`). */
export type TraceSource = readonly TraceEvent[] | { readonly events: readonly TraceEvent[] };

export interface EncodedLike {
  salience: readonly { scores: ArrayLike<number>; grid: { rows: number; cols: number }; leading: number; source?: string }[];
  /** The video the images are frames of (an `Encoded`'s), for the frames' times in the labels. */
  video?: { frames: readonly { timestamp: number }[] };
}
export interface PrunedLike {
  encoded: EncodedLike;
  kept: readonly (readonly number[])[];
}
export interface RetrievedLike {
  layers: readonly { rows: readonly number[]; scores: ArrayLike<number> }[] | null;
  retrievedIds: readonly (readonly VisualTokenId[])[] | null;
}

export function eventsOf(source: TraceSource): readonly TraceEvent[] {
  return Array.isArray(source) ? (source as readonly TraceEvent[]) : (source as { events: readonly TraceEvent[] }).events;
}

export function isTraceSource(x: unknown): x is TraceSource {
  return Array.isArray(x) || (typeof x === 'object' && x !== null && Array.isArray((x as { events?: unknown }).events));
}

export const isPruned = (x: unknown): x is PrunedLike => typeof x === 'object' && x !== null && 'kept' in x && 'encoded' in x;
export const isEncoded = (x: unknown): x is EncodedLike => typeof x === 'object' && x !== null && 'salience' in x && !('kept' in x);

/** The run of the last event (of the given types): the latest chat that emitted them. */
export function latestRun(events: readonly TraceEvent[], types?: readonly TraceEvent['type'][]): string | undefined {
  for (let i = events.length - 1; i >= 0; i--) if (!types || types.includes(events[i]!.type)) return events[i]!.run;
  return undefined;
}

/** One run of a trace, folded: `run`, else the latest that emitted one of `types`. */
function runModel(events: readonly TraceEvent[], run: string | undefined, types: readonly TraceEvent['type'][]): RunModel | undefined {
  const id = run ?? latestRun(events, types);
  return id === undefined ? undefined : foldEvents(events.filter((e) => e.run === id)).get(id);
}

/** A turn's retrieval per layer, in layer order. */
function retrievalLayers(m: RunModel | undefined, turn: number): LayerRetrieval[] {
  const layers = m?.turns.get(turn)?.retrieval ?? [];
  return layers.filter((r): r is LayerRetrieval => r !== undefined);
}

/** The latest turn that retrieved. */
const latestRetrieval = (m: RunModel | undefined): number | undefined =>
  m
    ? orderedTurns(m)
        .filter((t) => t.retrieval.some(Boolean))
        .at(-1)?.turn
    : undefined;

/** The latest turn that retrieved, else that pruned, else that scored salience. */
function latestTurn(m: RunModel | undefined): number | undefined {
  if (!m) return undefined;
  return latestRetrieval(m) ?? maxOf([...m.kept.values()].map((k) => k.turn)) ?? maxOf([...m.salience.values()].map((s) => s.turn));
}

const idOf = (c: Candidates, i: number): VisualTokenId => ({ image: c.image[i]!, token: c.token[i]! });

export const jpegBackground = (e: { width: number; height: number; jpeg: string }): RetentionBackground => ({
  href: `data:image/jpeg;base64,${e.jpeg}`,
  width: e.width,
  height: e.height,
});

export interface RetentionOptions {
  /** Which turn's retrieval to outline (trace events; default: the latest turn that retrieved). */
  turn?: number;
  /** Whose retrieval set to outline: one LLM layer's, as the profiler page shows (default 0, the page's default). */
  layer?: number;
  /** Only this image (chat-wide image index). */
  image?: number;
  /** Which chat (trace run); default the latest. */
  run?: string;
  title?: string;
}

/**
 * The layer to outline: the one asked for among the layers that retrieved, by default the first (layer 0, the
 * page's default, unless the trace lacks it). A layer outside them is an error naming the ones there are; a turn
 * that did not retrieve has no layer to outline (null).
 */
function chosenLayer(layers: readonly number[], asked: number | undefined, where: string): number | null {
  if (!layers.length) return null;
  const layer = asked ?? Math.min(...layers);
  if (!layers.includes(layer)) {
    const span = layers.length > 1 ? `layers ${Math.min(...layers)}–${Math.max(...layers)}` : `layer ${layers[0]}`;
    throw new InputError('OPTION_INVALID', `layer ${asked}: ${where} retrieved at ${span}`, { subject: 'layer' });
  }
  return layer;
}

/** Retention map data from trace events: salience, kept tokens, the tower's image, and one layer's retrieval at a turn. */
export function retentionFromEvents(source: TraceSource, options: RetentionOptions = {}): RetentionMapData {
  const m = runModel(eventsOf(source), options.run, ['salience', 'kept', 'retrieval', 'image']);
  const turn = options.turn ?? latestTurn(m) ?? 0;
  const indices = m ? imagesAtTurn(m, turn).filter((i) => options.image === undefined || i === options.image) : [];
  const all = retrievalLayers(m, turn);
  const layer = chosenLayer(
    all.map((r) => r.layer),
    options.layer,
    turnLabel(turn),
  );
  const retrieval = all.find((r) => r.layer === layer);
  const panels = indices.map((image): RetentionPanel => {
    const s = m!.salience.get(image);
    const k = m!.kept.get(image);
    const picture = m!.images.get(image);
    // An image with neither salience nor kept tokens (only its picture) has no tokens to draw: one empty cell.
    const g = gridOf(m!, image);
    return {
      label: imageLabel(m!, image),
      grid: { rows: Math.max(1, g.rows), cols: Math.max(1, g.cols) },
      leading: Math.max(0, g.leading),
      salience: s?.scores,
      kept: k && Array.from(k.kept),
      retrieved: retrieval && [...(retrieval.byImage.get(image) ?? [])].sort((a, b) => a - b),
      background: picture && jpegBackground(picture),
    };
  });
  const salienceSource = m && indices.map((i) => m.salience.get(i)?.source).find(Boolean);
  return {
    title: options.title ?? `${turnTitle(turn)} · ${layer === null ? 'no retrieval' : `layer ${layer}`}`,
    images: panels,
    layer: layer ?? undefined,
    // One colour scale over the run, as the page's (a frame's heat means the same in every frame).
    salienceRange: m && Number.isFinite(m.salienceMin) ? { min: m.salienceMin, max: m.salienceMax } : undefined,
    salienceSource,
  };
}

export interface StepRetentionOptions extends Pick<RetentionOptions, 'layer' | 'title'> {
  /** A turn's retrieval to outline (from `prefilled.retrieve()`): `layer`'s set (default 0). */
  retrieved?: RetrievedLike;
  /** What to draw under each image: one background, one per image, or trace events holding `image` events. */
  background?: RetentionBackground | readonly RetentionBackground[] | TraceSource;
  /** The chat-wide index of the first encoded image (retrieval names images chat-wide). Default 0. */
  firstImage?: number;
}

/** Retention map data from the step API: `chat.encode()`'s result (salience only) or `prune()`'s (kept too). */
export function retentionFromSteps(step: EncodedLike | PrunedLike, options: StepRetentionOptions = {}): RetentionMapData {
  const encoded = isPruned(step) ? step.encoded : step;
  const kept = isPruned(step) ? step.kept : undefined;
  const first = options.firstImage ?? 0;
  const backgrounds = resolveBackgrounds(options.background, encoded.salience.length);
  const ids = options.retrieved?.retrievedIds ?? null;
  const layer = ids
    ? chosenLayer(
        ids.map((_, l) => l),
        options.layer,
        'the turn',
      )
    : null;
  const set = layer === null ? null : ids![layer]!;
  const panels = encoded.salience.map((s, i): RetentionPanel => ({
    label: stepLabel(encoded, first, i),
    grid: s.grid,
    leading: s.leading,
    salience: s.scores,
    kept: kept?.[i],
    retrieved: set
      ? set
          .filter((id) => id.image === first + i)
          .map((id) => id.token)
          .sort((a, b) => a - b)
      : undefined,
    background: backgrounds[i],
  }));
  const stage = kept ? 'After pruning' : 'Salience, before pruning';
  return {
    title: options.title ?? `${stage}${layer === null ? '' : ` · layer ${layer}`}`,
    images: panels,
    layer: layer ?? undefined,
    salienceSource: encoded.salience.find((s) => s.source)?.source,
  };
}

/**
 * An encoded image's label, counted from 1 as the prompt counts frames: "frame 3 · 1.5 s" for a video's
 * frame, "video 1 · 0–7.5 s" for a video encoded as one media, else "image 3".
 */
function stepLabel(encoded: EncodedLike, first: number, i: number): string {
  const frames = encoded.video?.frames ?? [];
  if (frames.length && frames.length === encoded.salience.length) return `frame ${first + i + 1} · ${timeLabel(frames[i]!.timestamp)}`;
  if (frames.length && encoded.salience.length === 1)
    return `video ${first + 1} · ${timeLabel(frames[0]!.timestamp).replace(/ s$/, '')}–${timeLabel(frames.at(-1)!.timestamp)}`;
  return `image ${first + i + 1}`;
}

function resolveBackgrounds(b: StepRetentionOptions['background'], n: number): (RetentionBackground | undefined)[] {
  if (!b) return Array(n).fill(undefined);
  if (isTraceSource(b) && !(Array.isArray(b) && b.length && 'href' in (b[0] as object))) {
    const m = runModel(eventsOf(b as TraceSource), undefined, ['image']);
    const images = m ? [...m.images.values()] : [];
    return Array.from({ length: n }, (_, i) => {
      const e = images[images.length - n + i];
      return e && jpegBackground(e);
    });
  }
  if (Array.isArray(b)) return Array.from({ length: n }, (_, i) => (b as RetentionBackground[])[i]);
  return Array(n).fill(b as RetentionBackground);
}

/** Retrieval table data from `prefilled.retrieve()`'s result. Scores there are per candidate, without ids. */
export function retrievalFromTurn(retrieved: RetrievedLike, options: { top?: number; title?: string } = {}): RetrievalTableData {
  const top = options.top ?? 5;
  const layers: RetrievalLayerRow[] = (retrieved.layers ?? []).map((l, layer) => ({
    layer,
    candidates: l.scores.length,
    retrieved: [...(retrieved.retrievedIds?.[layer] ?? [])].sort(byToken),
    top: Array.from(l.scores as ArrayLike<number>)
      .sort((a, b) => b - a)
      .slice(0, top)
      .map((score) => ({ score })),
  }));
  return { title: options.title ?? (retrieved.layers ? 'Retrieval sets per layer' : 'No retrieval: decode attends every retained visual token'), layers };
}

/** Retrieval table data from trace events (one turn; default the latest that retrieved), with token ids and scores. */
export function retrievalFromEvents(source: TraceSource, options: { turn?: number; run?: string; top?: number; title?: string } = {}): RetrievalTableData {
  const m = runModel(eventsOf(source), options.run, ['retrieval']);
  const turn = options.turn ?? latestRetrieval(m) ?? 0;
  const top = options.top ?? 5;
  const layers = retrievalLayers(m, turn).map((r) => ({
    layer: r.layer,
    candidates: r.candidates.image.length,
    retrieved: Array.from(r.retrieved, (i) => ({ ...idOf(r.candidates, i), score: r.scores[i]! })).sort(byToken),
    top: Array.from(r.scores, (score, i) => ({ ...idOf(r.candidates, i), score }))
      .sort((a, b) => b.score - a.score)
      .slice(0, top),
  }));
  return { title: options.title ?? `Retrieval sets of ${turnLabel(turn)} per layer`, layers };
}

/** Per layer, the retrieval set as sorted "image:token" keys (for comparing turns). */
export function retrievalSets(x: RetrievedLike | TraceSource, options: { turn?: number; run?: string } = {}): string[][] {
  if (isTraceSource(x)) return retrievalFromEvents(x, options).layers.map((l) => l.retrieved.map(key));
  return (x.retrievedIds ?? []).map((ids) => [...ids].sort(byToken).map(key));
}

/** |A ∩ B| / |A ∪ B| of two retrieval sets (1 for two empty sets). */
export function jaccard(a: readonly string[], b: readonly string[]): number {
  const sa = new Set(a);
  const sb = new Set(b);
  const inter = [...sa].filter((k) => sb.has(k)).length;
  const union = new Set([...sa, ...sb]).size;
  return union ? inter / union : 1;
}

/** Anything carrying `timings` (an `Answer`). */
export interface TimedLike {
  timings: LatencyTimings;
}
export type LatencySource = TimedLike | readonly TimedLike[] | readonly { label: string; answer: TimedLike }[] | Readonly<Record<string, TimedLike>>;

export function latencyRows(source: LatencySource): LatencyRow[] {
  if (Array.isArray(source)) {
    return (source as readonly (TimedLike | { label: string; answer: TimedLike })[]).map((x, i) =>
      'answer' in x ? { label: x.label, timings: x.answer.timings } : { label: `answer ${i + 1}`, timings: x.timings },
    );
  }
  if ('timings' in (source as object)) return [{ label: 'answer', timings: (source as TimedLike).timings }];
  return Object.entries(source as Record<string, TimedLike>).map(([label, a]) => ({ label, timings: a.timings }));
}

const key = (t: VisualTokenId) => `${t.image}:${t.token}`;
const byToken = (a: VisualTokenId, b: VisualTokenId) => a.image - b.image || a.token - b.token;
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : undefined);
