/**
 * Query-aware retrieval (DESIGN.md "Decode"): at each turn, every LLM layer scores every retained visual
 * token by the attention mass the question's tokens give it, and keeps its top tokens. Decode steps of the
 * turn attend to all text tokens plus only those.
 */
import { budgetCount, type RetrieveBudget } from './policy.js';
import { topK } from './topk.js';

/** The retained visual tokens in the KV cache: their rows and the image / frame each came from. */
export interface VisualRows {
  rows: number[];
  image: number[];
}

export interface LayerRetrieval {
  /** Retrieved cache rows, ascending. */
  rows: number[];
  /** Score of every visual row (same order as VisualRows.rows): mass summed over heads. */
  scores: Float32Array;
}

/**
 * Per-layer retrieval sets from per-layer attention mass [heads, columns] (columns = cache rows).
 * `kvHeads` groups query heads as transformers' repeat_kv does (head h reads KV head floor(h / groups)).
 */
export function retrieve(mass: Float32Array[], columns: number, visual: VisualRows, budget: RetrieveBudget, kvHeads: number): LayerRetrieval[] {
  const n = visual.rows.length;
  const k = budgetCount(budget.budget, n);
  return mass.map((m) => {
    const heads = m.length / columns;
    const perHead = (h: number) => Float32Array.from(visual.rows, (r) => m[h * columns + r]!);
    const scores = new Float32Array(n);
    for (let h = 0; h < heads; h++) perHead(h).forEach((v, i) => (scores[i]! += v));
    let chosen: Set<number>;
    if (budget.perKvHead) {
      // Each KV head keeps its own top-k (its query group's mass summed); the set is their union.
      const groups = heads / kvHeads;
      chosen = new Set();
      for (let g = 0; g < kvHeads; g++) {
        const s = new Float32Array(n);
        for (let h = g * groups; h < (g + 1) * groups; h++) perHead(h).forEach((v, i) => (s[i]! += v));
        for (const i of topK(s, k)) chosen.add(i);
      }
    } else {
      chosen = new Set(topK(scores, k));
    }
    if (budget.minPerImage > 0) {
      const images = new Set(visual.image);
      for (const img of images) {
        const own = visual.image.flatMap((im, i) => (im === img ? [i] : []));
        const have = own.filter((i) => chosen.has(i)).length;
        if (have < budget.minPerImage) {
          for (const i of topK(scores, own.length, own).filter((i) => !chosen.has(i)).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, budget.minPerImage - have)) {
            chosen.add(i);
          }
        }
      }
    }
    return { rows: [...chosen].sort((a, b) => a - b).map((i) => visual.rows[i]!), scores };
  });
}
