/**
 * Query-aware retrieval (docs/design.md, "The SparseVILA path"): at each turn, every LLM layer scores every retained visual
 * token by the attention mass the question's tokens give it, and keeps its top tokens. Decode steps of the
 * turn attend to all text tokens plus only those.
 *
 * Retrieval that follows the answer (RetrieveBudget.refreshEvery, beyond the paper's once-per-turn sets): a
 * refresh step's attention over the whole retained cache scores the tokens again, blended with the question's
 * scores (`blend`), and each layer keeps its top tokens of the blend.
 */
import { budgetCount, layerBudget, type RetrieveBudget } from './budget.js';
import { topK } from './topk.js';

/** The retained visual tokens in the KV cache: their rows and the image / frame each came from. */
export interface VisualRows {
  rows: number[];
  image: number[];
}

export interface LayerRetrieval {
  /** Retrieved cache rows, ascending. */
  rows: number[];
  /** The same tokens as indices into VisualRows.rows, ascending. */
  indices: number[];
  /** Score of every visual row (same order as VisualRows.rows): mass summed over heads. */
  scores: Float32Array;
  /** With `perKvHead`, each KV head's own scores (their sum is `scores`): what a later blend re-ranks per head. */
  perKvHead?: Float32Array[];
}

/** The scores a refresh blends with: the question's retrieval, weighted 1 − `weight` against the step's `weight`. */
export interface RetrievalBlend {
  question: readonly LayerRetrieval[];
  weight: number;
}

/**
 * Per-layer retrieval sets from per-layer attention mass [heads, columns] (columns = cache rows).
 * `kvHeads` groups query heads as transformers' repeat_kv does (head h reads KV head floor(h / groups)).
 * With `blend`, each token's score is `weight` × this mass + (1 − `weight`) × the question's score.
 */
export function retrieve(
  mass: Float32Array[],
  columns: number,
  visual: VisualRows,
  budget: RetrieveBudget,
  kvHeads: number,
  blend?: RetrievalBlend,
): LayerRetrieval[] {
  const n = visual.rows.length;
  // Each image's visual indices, grouped once for every layer (a 128-frame video has 128 groups of 32k).
  const perImage = budget.minPerImage > 0 ? groupByImage(visual.image) : [];
  return mass.map((m, layer) => {
    const k = budgetCount(layerBudget(budget, layer), n);
    const heads = m.length / columns;
    const groups = heads / kvHeads;
    // perGroup[g][i]: visual token i's mass from KV head g's query group; scores = their sum over groups.
    const perGroup = Array.from({ length: budget.perKvHead ? kvHeads : 1 }, () => new Float32Array(n));
    for (let h = 0; h < heads; h++) {
      const into = perGroup[budget.perKvHead ? Math.floor(h / groups) : 0]!;
      const base = h * columns;
      for (let i = 0; i < n; i++) into[i]! += m[base + visual.rows[i]!]!;
    }
    if (blend) {
      const q = blend.question[layer]!;
      const w = blend.weight;
      perGroup.forEach((g, j) => {
        const from = budget.perKvHead ? q.perKvHead![j]! : q.scores;
        for (let i = 0; i < n; i++) g[i] = w * g[i]! + (1 - w) * from[i]!;
      });
    }
    let scores = perGroup[0]!;
    if (budget.perKvHead) {
      scores = new Float32Array(n);
      for (const g of perGroup) for (let i = 0; i < n; i++) scores[i]! += g[i]!;
    }
    if (!budget.perKvHead && budget.minPerImage === 0) {
      const indices = topK(scores, k); // ascending already
      return { rows: indices.map((i) => visual.rows[i]!), indices, scores };
    }
    // A mark per visual token, read back in index order: unions and floors without a Set or a sort.
    const chosen = new Uint8Array(n);
    // With perKvHead each KV head keeps its own top-k, and the set is their union.
    for (const g of budget.perKvHead ? perGroup : [scores]) for (const i of topK(g, k)) chosen[i] = 1;
    for (const own of budget.minPerImage > 0 ? perImage : []) {
      let have = 0;
      for (const i of own) have += chosen[i]!;
      if (have >= budget.minPerImage) continue;
      // The image's best tokens not yet chosen (topK among them: highest score first, ties to the lower index).
      const missing = own.filter((i) => !chosen[i]);
      for (const i of topK(scores, budget.minPerImage - have, missing)) chosen[i] = 1;
    }
    const indices: number[] = [];
    for (let i = 0; i < n; i++) if (chosen[i]) indices.push(i);
    const rows = indices.map((i) => visual.rows[i]!);
    return budget.perKvHead ? { rows, indices, scores, perKvHead: perGroup } : { rows, indices, scores };
  });
}

/** Whether decode step `step` (1-based, as the trace's `decode.step`) is a refresh: dense, and it re-ranks. */
export function refreshesAt(budget: RetrieveBudget | undefined, step: number): boolean {
  const every = budget?.refreshEvery ?? 0;
  return every > 0 && step % every === 0;
}

/** Indices of each image's entries, images in order of first appearance. */
function groupByImage(image: number[]): number[][] {
  const groups = new Map<number, number[]>();
  image.forEach((img, i) => {
    let g = groups.get(img);
    if (!g) groups.set(img, (g = []));
    g.push(i);
  });
  return [...groups.values()];
}
