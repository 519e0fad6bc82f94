/**
 * The tuner's statistics: one-sided 95% confidence bounds on a candidate's fidelity, and the Pareto front.
 *
 * Token agreement is a share of compared decode steps, bounded by the Wilson score interval (Wilson 1927;
 * Brown, Cai & DasGupta 2001 recommend it over the normal interval). The dense twin is teacher-forced on the
 * sparse chat's tokens (src/session/fidelity.ts), so a disagreement does not carry into the next step's
 * comparison and the steps are close to Bernoulli trials; and unlike the normal interval, Wilson's does not
 * collapse to zero width at 100% agreement, which a near-dense candidate often shows on a few conversations.
 * Mean KL has no such bound, so it gets a normal-approximation bound on its per-step values.
 *
 * While searching, the bounds are per candidate (95%): they only decide where to spend runs. The choice is
 * different: taking the cheapest of many candidates that pass favours the one whose luck was best, so the
 * confirmation that picks it splits the 5% over every candidate compared (Bonferroni), `zConfirm`.
 */

/** z of a one-sided 95% bound. */
export const Z95 = 1.6449;

/** Standard normal CDF (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** z of a one-sided 95% bound shared by `comparisons` candidates (Bonferroni): P(Z > z) = 0.05 / comparisons. */
export function zConfirm(comparisons: number): number {
  const tail = 0.05 / Math.max(1, comparisons);
  let [lo, hi] = [0, 10];
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (1 - normalCdf(mid) > tail) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

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
