/** Top-k selection shared by pruning and retrieval: highest scores first, ties to the lower index. */

/**
 * Indices of the k largest scores (among `among`, default all), in ascending index order. Finds the k-th
 * largest value by selection (Hoare's quickselect, O(n) on average: a refresh re-ranks 24 layers of 46k rows
 * per step, and a full sort of each was most of its time), then takes everything above it plus the
 * lowest-indexed ties, in one pass when the candidates are in index order. No comparator callbacks. A NaN
 * score ranks below every number.
 */
export function topK(scores: ArrayLike<number>, k: number, among?: ArrayLike<number>): number[] {
  const candidates = among ?? { length: scores.length };
  const n = candidates.length;
  const at = (j: number) => (among ? among[j]! : j);
  if (k <= 0 || n === 0) return [];
  if (k >= n) return ascending(Array.from({ length: n }, (_, j) => at(j)));
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const v = scores[at(j)]!;
    values[j] = v === v ? v : -Infinity;
  }
  const threshold = kthSmallest(values.slice(), n - k);
  let above = 0;
  for (let j = 0; j < n; j++) if (values[j]! > threshold) above++;
  let ties = k - above;
  if (!among || isAscending(among)) {
    // Candidates in index order: the first ties met are the lowest-indexed, and the result is already ascending.
    const out: number[] = [];
    for (let j = 0; j < n; j++) {
      const v = values[j]!;
      if (v > threshold || (v === threshold && ties-- > 0)) out.push(at(j));
    }
    return out;
  }
  const picked: number[] = [];
  const tied: number[] = [];
  for (let j = 0; j < n; j++) {
    if (values[j]! > threshold) picked.push(at(j));
    else if (values[j] === threshold) tied.push(at(j));
  }
  return ascending(picked.concat(ascending(tied).slice(0, ties)));
}

/** Integer indices in ascending order: a typed array's native numeric sort (no comparator calls). */
export function ascending(indices: Iterable<number>): number[] {
  return Array.from(Float64Array.from(indices).sort());
}

function isAscending(xs: ArrayLike<number>): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i]! < xs[i - 1]!) return false;
  return true;
}

/** The value of rank `r` (0 = smallest) of `a`, which it reorders: iterative Hoare quickselect, median-of-three pivots. */
function kthSmallest(a: Float64Array, r: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // Median of three as the pivot: sorted inputs (common: masses by position) stay O(n).
    const [x, y, z] = [a[lo]!, a[mid]!, a[hi]!];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (r <= j) hi = j;
    else if (r >= i) lo = i;
    else return a[r]!;
  }
  return a[r]!;
}
