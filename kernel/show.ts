/**
 * The notebook-facing show functions: engine results or trace events → render data → inline HTML (maps and
 * plots as PNGs with hover boxes, tables as HTML) through tslab's display. Each returns nothing (a cell ending in one prints no value); the `*Svg` /
 * `*Html` functions return the markup instead, for saving or embedding.
 */
import {
  isTraceSource,
  latencyRows,
  retentionFromEvents,
  retentionFromSteps,
  retrievalFromEvents,
  retrievalFromTurn,
  type EncodedLike,
  type LatencySource,
  type PrunedLike,
  type RetentionOptions,
  type RetrievedLike,
  type StepRetentionOptions,
  type TraceSource,
} from './data.js';
import { show, showFigure } from './display.js';
import { renderLatencyHtml } from './render/latency.js';
import { renderRetention, type RetentionRenderOptions } from './render/retention.js';
import { renderRetrievalHtml } from './render/retrieval.js';
import { renderSweep, type SweepPoint, type SweepRenderOptions } from './render/sweep.js';

export type RetentionSource = EncodedLike | PrunedLike | TraceSource;
export type ShowRetentionOptions = RetentionOptions & StepRetentionOptions & RetentionRenderOptions;

function retentionFigure(source: RetentionSource, options: ShowRetentionOptions) {
  const data = isTraceSource(source) ? retentionFromEvents(source, options) : retentionFromSteps(source, options);
  return renderRetention(data, options);
}

/**
 * The retention map as SVG: from `chat.encode()` (salience), `encoded.prune()` (kept / pruned, plus
 * `retrieved` outlines when given), or a trace (everything, over the tower's image; `turn` and `layer`
 * pick the retrieval set outlined: one layer's, default layer 0, as the profiler page).
 */
export function retentionMapSvg(source: RetentionSource, options: ShowRetentionOptions = {}): string {
  return retentionFigure(source, options).svg;
}

/** Shows the retention map inline, as a PNG that an HTML export keeps (render/figure.ts), with each token's hover text. */
export function showRetentionMap(source: RetentionSource, options: ShowRetentionOptions = {}): void {
  showFigure(retentionFigure(source, options), 'retention-map');
}

/** Per-layer retrieval sets and top scores, from `prefilled.retrieve()` or a trace (with token ids per score). */
export function retrievalHtml(source: RetrievedLike | TraceSource, options: { turn?: number; run?: string; top?: number; title?: string } = {}): string {
  return renderRetrievalHtml(isTraceSource(source) ? retrievalFromEvents(source, options) : retrievalFromTurn(source, options));
}

export function showRetrieval(source: RetrievedLike | TraceSource, options: { turn?: number; run?: string; top?: number; title?: string } = {}): void {
  show('html', retrievalHtml(source, options));
}

/** Latency per answer: an `Answer`, a list, `{ label, answer }` pairs, or a record keyed by label. */
export function latencyHtml(source: LatencySource, options: { title?: string } = {}): string {
  return renderLatencyHtml(latencyRows(source), options);
}

export function showLatency(source: LatencySource, options: { title?: string } = {}): void {
  show('html', latencyHtml(source, options));
}

/** Latency vs fidelity, one point per budget, Pareto front marked; shown as a PNG, as the retention map. */
export function showSweep(points: readonly SweepPoint[], options: SweepRenderOptions = {}): void {
  showFigure(renderSweep(points, options), 'budget-sweep');
}
