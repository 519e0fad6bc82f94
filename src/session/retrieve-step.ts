/**
 * Step 4 of a turn, retrieve: per LLM layer, the retained visual tokens the turn's decode attends — scored by
 * the question's attention mass (sparsity/retrieve.ts) when the method retrieves, every retained token
 * otherwise — and the per-layer KV views the decode steps read (`DecodeViews`): the question's, then, when the
 * budget refreshes (RetrieveBudget.refreshEvery), each refresh step's.
 */
import { InputError } from '../errors.js';
import type { RetrieveBudget } from '../sparsity/budget.js';
import { refreshesAt, retrieve as retrieveLayers, type LayerRetrieval } from '../sparsity/retrieve.js';
import type { StepRequest } from '../runtime/protocol.js';
import type { Turn } from './conversation.js';
import { hiddenBias, type Prefilled } from './prefill-turn.js';

export interface Retrieved {
  prefilled: Prefilled;
  /** Per-layer retrieval (null: decode attends every retained token). */
  layers: LayerRetrieval[] | null;
  /** The budget `layers` were chosen by (with `layers`): its refreshes re-rank during decode. */
  budget?: RetrieveBudget;
}

/** The retrieval sets by the method's budget, or by `budget` when given. */
export function retrieve(turn: Turn, prefilled: Prefilled, budget?: RetrieveBudget): Retrieved {
  const t0 = performance.now();
  const conv = turn.conversation;
  const { method, policy } = turn.options;
  const b = budget ?? method.retrieve?.(policy);
  let layers: LayerRetrieval[] | null = null;
  if (b && conv.visualRows.length) {
    if (!prefilled.mass) {
      throw new InputError('OPTION_INVALID', `retrieval needs the question's attention mass, which the '${policy.method}' policy's prefill does not compute`, {
        subject: 'retrieve',
      });
    }
    layers = retrieveLayers(prefilled.mass, conv.rows, visualRowsOf(turn), b, turn.model.spec.text.numKvHeads);
    emitRetrieval(turn, layers);
  }
  turn.span('retrieve', t0);
  return layers && b ? { prefilled, layers, budget: b } : { prefilled, layers };
}

const visualRowsOf = (turn: Turn) => ({ rows: turn.conversation.visualRows, image: turn.conversation.visualIds.map((v) => v.image) });

/** One `retrieval` event per layer; `step`: the decode step whose attention chose the sets (a refresh). */
function emitRetrieval(turn: Turn, layers: LayerRetrieval[], step?: number): void {
  const conv = turn.conversation;
  // One snapshot for the turn: the conversation's list grows with later turns' images.
  const candidates = conv.visualIds.slice();
  layers.forEach((l, layer) => {
    turn.emit(() => ({ type: 'retrieval', layer, candidates, scores: Array.from(l.scores), retrieved: l.indices, ...(step !== undefined && { step }) }));
  });
}

/** The per-layer rows a turn's decode reads: every non-visual row plus the layer's retrieved visual rows. */
export interface DecodeView {
  id: number;
  subsets: number[][];
  /** Rows attended per step, mean over layers, and of them visual. */
  attended: number;
  visualAttended: number;
  visualPerLayer: number[];
}

/**
 * The view, or null when every layer attends the whole cache (no retrieval, nothing dropped). One pass over the
 * cache's rows per layer, against byte masks (a long video's cache holds thousands of rows, every turn).
 */
export async function openDecodeView(turn: Turn, layers: LayerRetrieval[] | null): Promise<DecodeView | null> {
  const conv = turn.conversation;
  if (!layers && conv.hidden.every((h) => !h?.size)) return null;
  // Per row: 1 = a visual token the layer skips, 0 = attended (text rows, and the layer's retrieved tokens).
  const skipped = new Uint8Array(conv.rows);
  const visualPerLayer: number[] = [];
  const subsets = conv.hidden.map((h, l) => {
    skipped.fill(0);
    if (layers) {
      for (const r of conv.visualRows) skipped[r] = 1;
      for (const r of layers[l]!.rows) skipped[r] = 0;
    }
    if (h) for (const r of h) skipped[r] = 1;
    const rows: number[] = [];
    for (let r = 0; r < conv.rows; r++) if (!skipped[r]) rows.push(r);
    visualPerLayer.push(layers ? layers[l]!.rows.filter((r) => !h?.has(r)).length : conv.visualRows.length - (h?.size ?? 0));
    return rows;
  });
  const id = await turn.model.runtime.createView(conv.cache, subsets);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { id, subsets, attended: Math.round(mean(subsets.map((s) => s.length))), visualAttended: Math.round(mean(visualPerLayer)), visualPerLayer };
}

/** What the decode read from step `from` on (1-based decode steps): a view, or the whole cache (`view` null). */
export interface ViewSpan {
  from: number;
  view: DecodeView | null;
}

/**
 * The views a turn's decode reads, step by step. Without refreshes: one view (the question's sets) for every
 * step. With `refreshEvery` N: steps N, 2N, … read the whole cache through the attention-mass graph (dense);
 * the step's mass, blended with the question's, re-ranks each layer, and the steps after it read a view of the
 * new sets, gathered from the cache again (kv-cache.ts `select`, O(attended rows)).
 */
export class DecodeViews {
  /** Each span of steps and what it read, in order (a dense refresh step is a span of its own). */
  readonly spans: ViewSpan[] = [];
  private current: DecodeView | null = null;

  private constructor(
    private readonly turn: Turn,
    private readonly retrieved: Retrieved,
  ) {}

  static async open(turn: Turn, retrieved: Retrieved): Promise<DecodeViews> {
    const views = new DecodeViews(turn, retrieved);
    views.current = await openDecodeView(turn, retrieved.layers);
    views.spans.push({ from: 1, view: views.current });
    return views;
  }

  /** The question's view (the first span's). */
  get first(): DecodeView | null {
    return this.spans[0]!.view;
  }

  /** Whether decode step `step` is a refresh: dense, through the attention-mass graph. */
  refreshes(step: number): boolean {
    return this.retrieved.layers !== null && refreshesAt(this.retrieved.budget, step);
  }

  /** Where decode step `step` reads and writes, and for a refresh its mass weights and in-LLM drops. */
  target(step: number): Pick<StepRequest, 'target' | 'massWeights' | 'pastBias'> {
    const conv = this.turn.conversation;
    if (!this.refreshes(step)) return { target: this.current ? { view: this.current.id } : { cache: conv.cache } };
    const pastBias = hiddenBias(conv.hidden, conv.rows);
    return { target: { cache: conv.cache }, massWeights: new Float32Array([1]), ...(pastBias && { pastBias }) };
  }

  /**
   * Rows decode step `step` attended (mean over layers, its own row included) and of them visual, as the
   * trace's `decode.step` reports them: asked after the step ran, before its refresh.
   */
  attendedAt(step: number): { attended: number; visualAttended: number } {
    const conv = this.turn.conversation;
    if (!this.current || this.refreshes(step)) return { attended: conv.rows, visualAttended: conv.visualRows.length };
    // A view holds the cache's rows as they were when it opened; each step since added one.
    const from = this.spans.at(-1)!.from;
    return { attended: this.current.attended + step - from + 1, visualAttended: this.current.visualAttended };
  }

  /**
   * After refresh step `step` (its rows are in the cache): re-rank by its attention `mass` [heads, cache rows]
   * per layer, blended with the question's, and open the view of the new sets for the steps after it.
   */
  async refresh(step: number, mass: Float32Array[]): Promise<void> {
    const { turn } = this;
    const conv = turn.conversation;
    const budget = this.retrieved.budget!;
    this.spans.push({ from: step, view: null });
    const layers = retrieveLayers(mass, conv.rows, visualRowsOf(turn), budget, turn.model.spec.text.numKvHeads, {
      question: this.retrieved.layers!,
      weight: budget.refreshBlend!,
    });
    this.close();
    this.current = await openDecodeView(turn, layers);
    this.spans.push({ from: step + 1, view: this.current });
    emitRetrieval(turn, layers, step);
  }

  /**
   * Visual tokens each layer attended per decode step, averaged over the turn's `steps` steps (a dense step
   * counts every retained token); without refreshes, the question's view's.
   */
  visualPerLayer(steps: number): number[] | undefined {
    const conv = this.turn.conversation;
    if (this.spans.length === 1 || steps === 0) return this.first?.visualPerLayer;
    const sum = new Float64Array(conv.hidden.length);
    this.spans.forEach((span, i) => {
      const to = Math.min(this.spans[i + 1]?.from ?? steps + 1, steps + 1);
      const n = Math.max(0, to - span.from);
      conv.hidden.forEach((h, l) => (sum[l]! += n * (span.view ? span.view.visualPerLayer[l]! : conv.visualRows.length - (h?.size ?? 0))));
    });
    return Array.from(sum, (s) => s / steps);
  }

  /**
   * Drops the open view (the cache keeps every row the decode appended through it). Not awaited: the worker
   * serves requests in order, so nothing after it can read the view, and a turn does not wait for the reply.
   */
  close(): void {
    if (this.current) this.turn.model.runtime.dropView(this.current.id).catch(() => undefined);
    this.current = null;
  }
}
