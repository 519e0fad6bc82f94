/** Top-k selection shared by pruning and retrieval: highest scores first, ties to the lower index. */

/**
 * Indices of the k largest scores (among `among`, default all), in ascending index order. Finds the k-th
 * largest value with a native numeric sort of the values, then takes everything above it plus the
 * lowest-indexed ties — no comparator callbacks, which dominate at tens of thousands of candidates.
 */
export function topK(scores: ArrayLike<number>, k: number, among?: ArrayLike<number>): number[] {
  const candidates = among ?? { length: scores.length };
  const n = candidates.length;
  const at = (j: number) => (among ? among[j]! : j);
  if (k <= 0 || n === 0) return [];
  if (k >= n) return Array.from({ length: n }, (_, j) => at(j)).sort((a, b) => a - b);
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) values[j] = scores[at(j)]!;
  const threshold = values.slice().sort()[n - k]!;
  const above: number[] = [];
  const ties: number[] = [];
  for (let j = 0; j < n; j++) {
    if (values[j]! > threshold) above.push(at(j));
    else if (values[j] === threshold) ties.push(at(j));
  }
  ties.sort((a, b) => a - b);
  return above.concat(ties.slice(0, k - above.length)).sort((a, b) => a - b);
}
