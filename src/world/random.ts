/**
 * The world's own seeded randomness and hashing: small, pure and stable across platforms, so a seed names
 * the same scenes, pixels and questions everywhere. (The engine's `seededRandom` is the same mulberry32
 * generator; the world keeps its own copy so its datasets never change when the engine's sampler does.)
 */

/** A seeded generator of floats in [0, 1) with the helpers the world's generators use. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** True with probability p. */
  chance(p: number): boolean;
  /** A shuffled copy. */
  shuffle<T>(items: readonly T[]): T[];
}

/** mulberry32 over a 32-bit state. */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    chance: (p: number) => next() < p,
    shuffle: <T>(items: readonly T[]): T[] => {
      const out = items.slice();
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}

/** FNV-1a (32-bit) of a string's UTF-16 code units. */
export function fnv1a(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A 64-bit hex digest (two FNV-1a lanes): identity keys for scenes, not cryptography. */
export function hashText(text: string): string {
  const a = fnv1a(text);
  const b = fnv1a(text, 0x050c5d1f ^ a);
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/** A 32-bit seed derived from a base seed and labels (a split name, an index), well mixed. */
export function deriveSeed(seed: number, ...labels: (string | number)[]): number {
  let h = fnv1a(String(seed >>> 0) + '|' + String(Math.floor(seed / 4294967296)));
  for (const label of labels) h = fnv1a('|' + String(label), h);
  // murmur3 finaliser: neighbouring indices give unrelated seeds.
  return fmix32(h);
}

/** A well-mixed 32-bit hash of three integers (murmur3's finaliser over a lattice point): value noise. */
export function mix32(seed: number, i: number, j: number): number {
  return fmix32((seed ^ Math.imul(i, 0x9e3779b1) ^ Math.imul(j, 0x85ebca77)) >>> 0);
}

/** murmur3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
