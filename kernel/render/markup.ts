/**
 * Small helpers for building SVG / HTML strings: escaping, attributes, number formatting and a heat
 * colour scale. The render modules are pure (data in, markup out) so they can be unit-tested without a
 * notebook, and so the profiler or a report could reuse them.
 */

/** Escapes text for element content and double-quoted attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** ` name="value"` pairs, skipping undefined / null / false. */
export function attrs(a: Record<string, string | number | boolean | undefined | null>): string {
  let out = '';
  for (const [k, v] of Object.entries(a)) {
    if (v === undefined || v === null || v === false) continue;
    out += v === true ? ` ${k}` : ` ${k}="${esc(typeof v === 'number' ? num(v) : v)}"`;
  }
  return out;
}

/** A number short enough for markup: at most 3 decimals, no trailing zeros. */
export function num(v: number): string {
  if (!Number.isFinite(v)) return '0';
  return String(Math.round(v * 1000) / 1000);
}

/** Milliseconds from seconds, for tables. */
export function ms(seconds: number): string {
  const v = seconds * 1000;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** Scores to [0, 1] by min–max (all equal → 0.5). */
export function normalise(values: ArrayLike<number>): number[] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]!);
    hi = Math.max(hi, values[i]!);
  }
  return Array.from(values as ArrayLike<number>, (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5));
}

/** Inferno-like colour scale (dark purple → orange → pale yellow) for salience heat. */
const STOPS: [number, number, number][] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

export function heat(t: number): string {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [STOPS[i]!, STOPS[i + 1]!];
  const c = a.map((v, k) => Math.round(v + (b[k]! - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** A self-contained SVG root (namespaces declared so it renders as image/svg+xml and inside HTML). */
export function svgRoot(width: number, height: number, body: string, extra: Record<string, string | number> = {}): string {
  return (
    `<svg${attrs({ xmlns: 'http://www.w3.org/2000/svg', 'xmlns:xlink': 'http://www.w3.org/1999/xlink', width, height, viewBox: `0 0 ${num(width)} ${num(height)}`, ...extra })}` +
    ` font-family="system-ui, sans-serif" font-size="11">${body}</svg>`
  );
}
