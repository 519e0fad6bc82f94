/**
 * The tuner's statistics: one-sided 95% confidence bounds on a candidate's fidelity, and the Pareto front.
 *
 * Token agreement is a share of compared decode steps, bounded by the Wilson score interval (Wilson 1927;
 * Brown, Cai & DasGupta 2001 recommend it over the normal interval). The dense twin is teacher-forced on the
 * sparse chat's tokens (src/session/fidelity.ts), so a disagreement does not carry into the next step's
 * comparison and the steps are close to Bernoulli trials; and unlike the normal interval, Wilson's does not
 * collapse to zero width at 100% agreement, which a near-dense candidate often shows on a few conversations.
 * Mean KL has no such bound, so it gets a normal-approximation bound on its per-step values. The bounds are
 * per candidate, not corrected for the many candidates compared: they decide where to spend runs, and the
 * held-out conversations, which the search never saw, are what the report's verdict rests on.
 */

/** z of a one-sided 95% bound. */
export const Z95 = 1.6449;

/** Wilson score bounds of a share `hits / n`. With n = 0 nothing is known: [0, 1]. */
export function wilson(hits: number, n: number, z = Z95): { lower: number; upper: number } {
  if (n <= 0) return { lower: 0, upper: 1 };
  const p = hits / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const half = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lower: Math.max(0, (centre - half) / (1 + z2 / n)), upper: Math.min(1, (centre + half) / (1 + z2 / n)) };
}

/** Mean of `xs` with normal-approximation bounds (unbounded with fewer than two values). */
export function meanBounds(xs: readonly number[], z = Z95): { mean: number; lower: number; upper: number } {
  const n = xs.length;
  if (!n) return { mean: NaN, lower: -Infinity, upper: Infinity };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, lower: -Infinity, upper: Infinity };
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = (z * sd) / Math.sqrt(n);
  return { mean, lower: mean - half, upper: mean + half };
}

/**
 * Indices of the points no other point beats: no higher cost and no lower quality, better in one. Ascending
 * cost. Points with a non-finite coordinate are on no front.
 */
export function paretoFront(points: readonly { cost: number; quality: number }[]): number[] {
  const ok = points.map((p, i) => ({ ...p, i })).filter((p) => Number.isFinite(p.cost) && Number.isFinite(p.quality));
  return ok
    .filter((p) => !ok.some((q) => q.cost <= p.cost && q.quality >= p.quality && (q.cost < p.cost || q.quality > p.quality)))
    .sort((a, b) => a.cost - b.cost || b.quality - a.quality)
    .map((p) => p.i);
}
