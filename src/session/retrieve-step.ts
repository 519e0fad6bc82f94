/**
 * Step 4 of a turn, retrieve: per LLM layer, the retained visual tokens the turn's decode attends — scored by
 * the question's attention mass (sparsity/retrieve.ts) when the method retrieves, every retained token
 * otherwise — and the per-layer KV view the decode steps read.
 */
import { InputError } from '../errors.js';
import type { RetrieveBudget } from '../sparsity/budget.js';
import { retrieve as retrieveLayers, type LayerRetrieval } from '../sparsity/retrieve.js';
import type { Turn } from './conversation.js';
import type { Prefilled } from './prefill-turn.js';

export interface Retrieved {
  prefilled: Prefilled;
  /** Per-layer retrieval (null: decode attends every retained token). */
  layers: LayerRetrieval[] | null;
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
    const found = retrieveLayers(
      prefilled.mass,
      conv.rows,
      { rows: conv.visualRows, image: conv.visualIds.map((v) => v.image) },
      b,
      turn.model.spec.text.numKvHeads,
    );
    layers = found;
    // One snapshot for the turn: the conversation's list grows with later turns' images.
    const candidates = conv.visualIds.slice();
    found.forEach((l, layer) => {
      turn.emit(() => {
        const picked = new Set(l.rows);
        return { type: 'retrieval', layer, candidates, scores: Array.from(l.scores), retrieved: conv.visualRows.flatMap((r, i) => (picked.has(r) ? [i] : [])) };
      });
    });
  }
  turn.span('retrieve', t0);
  return { prefilled, layers };
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

/** The view, or null when every layer attends the whole cache (no retrieval, nothing dropped). */
export async function openDecodeView(turn: Turn, retrieved: Retrieved): Promise<DecodeView | null> {
  const conv = turn.conversation;
  if (!retrieved.layers && conv.hidden.every((h) => !h?.size)) return null;
  const visual = new Set(conv.visualRows);
  const subsets = conv.hidden.map((h, l) => {
    const picked = retrieved.layers ? new Set(retrieved.layers[l]!.rows) : null;
    const rows: number[] = [];
    for (let r = 0; r < conv.rows; r++) {
      if (h?.has(r)) continue;
      if (picked && visual.has(r) && !picked.has(r)) continue;
      rows.push(r);
    }
    return rows;
  });
  const id = await turn.model.runtime.createView(conv.cache, subsets);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const visualPerLayer = subsets.map((s) => s.filter((r) => visual.has(r)).length);
  return { id, subsets, attended: Math.round(mean(subsets.map((s) => s.length))), visualAttended: Math.round(mean(visualPerLayer)), visualPerLayer };
}
