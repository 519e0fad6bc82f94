/**
 * The notebook side of sparsevila-ts (a tslab notebook imports it as `sparsevila-ts/kernel`):
 * show functions that draw retention maps, retrieval sets, latency and budget sweeps inline, a notebook
 * trace that records chats (and streams them to the live profiler), and paths to the bundled models and the
 * demo model's example conversation.
 */
export { paths, repoRoot } from './paths.js';
export { demoImageExample, type ImageExampleOptions } from './examples.js';
export { useDisplay, show, showFigure, type Display } from './display.js';
export { rasterise } from './raster.js';
export { figureHtml, type Figure, type HotSpot } from './render/figure.js';
export { NotebookTrace, recordTrace, type NotebookTraceOptions } from './trace.js';
export { attachProfiler, profilerEndpoints, ProfilerTrace, type AttachProfilerOptions, type ProfilerServer } from './profiler.js';
export { towerImage } from './tower.js';
export {
  showRetentionMap,
  retentionMapSvg,
  showRetrieval,
  retrievalHtml,
  showLatency,
  latencyHtml,
  showSweep,
  type RetentionSource,
  type ShowRetentionOptions,
} from './show.js';
export {
  retentionFromEvents,
  retentionFromSteps,
  retrievalFromEvents,
  retrievalFromTurn,
  retrievalSets,
  jaccard,
  latencyRows,
  type TraceSource,
  type RetentionOptions,
  type StepRetentionOptions,
  type LatencySource,
} from './data.js';
export {
  renderRetentionSvg,
  renderRetention,
  type RetentionRenderOptions,
  type RetentionMapData,
  type RetentionPanel,
  type RetentionBackground,
} from './render/retention.js';
export { renderRetrievalHtml, type RetrievalTableData, type RetrievalLayerRow } from './render/retrieval.js';
export { renderLatencyHtml, type LatencyRow, type LatencyTimings } from './render/latency.js';
export { renderSweepSvg, renderSweep, paretoFront, type SweepPoint, type SweepRenderOptions, type FidelityDirection } from './render/sweep.js';
