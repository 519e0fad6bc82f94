/** Top-k selection shared by pruning and retrieval: highest scores first, ties to the lower index. */

/** Indices of the k largest scores, returned in ascending index order. */
export function topK(scores: ArrayLike<number>, k: number, among?: ArrayLike<number>): number[] {
  const candidates = among ? Array.from(among) : Array.from({ length: scores.length }, (_, i) => i);
  candidates.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return candidates.slice(0, Math.max(0, k)).sort((a, b) => a - b);
}
