/**
 * The LLM's KV cache, per layer, position-major: row r of layer l is [kvHeads, headDim] for one token.
 * Position-major makes the first `length` rows one contiguous prefix, so a step hands ORT a subarray of the
 * store (no copy) and writes back only its new rows. Each row also records its rotary position.
 *
 * Rows are float32, or half bits (`KvShape.type` float16: half the memory and half the bytes a step reads; the
 * graph casts them up for its attention). Rows come from and go to the graph in the store's own type, never converted
 * here.
 *
 * Copies this file makes, all explicit:
 * - `append` writes the step's new rows (O(new tokens)).
 * - growth doubles the capacity (amortised O(1) a row; never per step).
 * - `select` gathers a per-layer subset into a compact `KvView` once per turn (O(subset)), with room for
 *   the rows the cache was reserved for; the view's decode steps then append to both the view and the full
 *   cache (O(1) rows a step, never a regrowth).
 */

import type { KvType } from '../graph/decoder.js';

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The rows' element type, as the decoder graphs take them (graph/build.ts kvTypeOf). Default float32. */
  type?: KvType;
}

/** KV rows: float32, or IEEE half bits (onnxruntime's float16 tensors hold a Uint16Array). */
export type KvRows = Float32Array | Uint16Array;

/** What a decoder step reads for one layer: the past rows and their score bias. */
export interface LayerPast {
  keys: KvRows;
  values: KvRows;
  rows: number;
}

/** @internal one layer's rows (keys and values), growing by doubling. */
export class RowStore {
  keys: KvRows;
  values: KvRows;
  length = 0;

  constructor(
    private readonly rowSize: number,
    capacity: number,
    private readonly type: KvType = 'float32',
  ) {
    this.keys = this.alloc(capacity * rowSize);
    this.values = this.alloc(capacity * rowSize);
  }

  private alloc(n: number): KvRows {
    return this.type === 'float16' ? new Uint16Array(n) : new Float32Array(n);
  }

  get capacity(): number {
    return this.keys.length / this.rowSize;
  }

  /** Grows to hold `rows`: by doubling (amortised appends), or to exactly `rows` when the caller knows. */
  reserve(rows: number, exact = false): void {
    if (rows <= this.capacity) return;
    const capacity = exact ? rows : Math.max(rows, this.capacity * 2, 16);
    const keys = this.alloc(capacity * this.rowSize);
    const values = this.alloc(capacity * this.rowSize);
    keys.set(this.keys.subarray(0, this.length * this.rowSize));
    values.set(this.values.subarray(0, this.length * this.rowSize));
    this.keys = keys;
    this.values = values;
  }

  append(keys: KvRows, values: KvRows): void {
    if (keys.constructor !== this.keys.constructor || values.constructor !== this.values.constructor) {
      throw new TypeError(`KV rows of ${keys.constructor.name} appended to a ${this.type} store`);
    }
    const rows = keys.length / this.rowSize;
    this.reserve(this.length + rows);
    this.keys.set(keys, this.length * this.rowSize);
    this.values.set(values, this.length * this.rowSize);
    this.length += rows;
  }

  past(): LayerPast {
    const n = this.length * this.rowSize;
    return { keys: this.keys.subarray(0, n), values: this.values.subarray(0, n), rows: this.length };
  }
}

export class KvCache {
  private readonly layers: RowStore[];
  private positionsBuf = new Int32Array(64);
  readonly rowSize: number;

  constructor(
    readonly shape: KvShape,
    initialCapacity = 256,
  ) {
    this.rowSize = shape.kvHeads * shape.headDim;
    this.layers = Array.from({ length: shape.layers }, () => new RowStore(this.rowSize, initialCapacity, shape.type));
  }

  /** Rows every layer can hold before growing. */
  get capacity(): number {
    return this.layers[0]!.capacity;
  }

  /** Tokens held (every layer holds the same rows). */
  get length(): number {
    return this.layers[0]!.length;
  }

  /** Rotary position of each held row. */
  get positions(): Int32Array {
    return this.positionsBuf.subarray(0, this.length);
  }

  /** The next free rotary position: one past the largest held. */
  get nextPosition(): number {
    let max = -1;
    for (const p of this.positions) if (p > max) max = p;
    return max + 1;
  }

  past(layer: number): LayerPast {
    return this.layers[layer]!.past();
  }

  /**
   * Makes room for `rows` tokens at once, so a known-length prefill + decode never pays a doubling copy
   * of the whole cache in the middle (a 200 MB copy at 8k tokens on a 0.5B model).
   */
  reserve(rows: number): void {
    for (const store of this.layers) store.reserve(rows, true);
    if (this.positionsBuf.length < rows) {
      const grown = new Int32Array(rows);
      grown.set(this.positionsBuf.subarray(0, this.length));
      this.positionsBuf = grown;
    }
  }

  /** Appends one step's new rows: `keys[l]`, `values[l]` are [T, kvHeads, headDim] for layer l. */
  append(keys: KvRows[], values: KvRows[], positions: ArrayLike<number>): void {
    const start = this.length;
    if (this.positionsBuf.length < start + positions.length) {
      const grown = new Int32Array(Math.max(start + positions.length, this.positionsBuf.length * 2));
      grown.set(this.positionsBuf.subarray(0, start));
      this.positionsBuf = grown;
    }
    this.positionsBuf.set(positions, start);
    this.layers.forEach((store, l) => store.append(keys[l]!, values[l]!));
  }

  /** Drops rows past `length` (e.g. to roll back a turn). */
  truncate(length: number): void {
    for (const store of this.layers) store.length = Math.min(store.length, length);
  }

  /**
   * A compact view holding, for each layer, only the rows in `subsets[l]` (ascending row indices; `null`
   * keeps every row). Decode steps over the view read only those rows.
   */
  select(subsets: (ArrayLike<number> | null)[]): KvView {
    return new KvView(this, subsets);
  }

  /** Copies rows `indices` of layer `l` into `into` (used by views). */
  gather(layer: number, indices: ArrayLike<number>, into: RowStore): void {
    const src = this.layers[layer]!;
    into.reserve(indices.length);
    const n = this.rowSize;
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!;
      into.keys.set(src.keys.subarray(r * n, r * n + n), i * n);
      into.values.set(src.values.subarray(r * n, r * n + n), i * n);
    }
    into.length = indices.length;
  }

  /** @internal a fresh row store of this cache's row size. */
  newRowStore(capacity: number): RowStore {
    return new RowStore(this.rowSize, capacity, this.shape.type);
  }
}

/**
 * A per-layer subset of a cache for the decode steps of one turn. Layers without a subset read the full
 * cache directly. Rows appended here are appended to the full cache too, so the next turn sees them.
 */
export class KvView {
  private readonly compact: (RowStore | null)[];
  /** Rows of the full cache each layer attends to (null: all). */
  readonly subsets: (Int32Array | null)[];

  constructor(
    readonly cache: KvCache,
    subsets: (ArrayLike<number> | null)[],
  ) {
    if (subsets.length !== cache.shape.layers) {
      throw new RangeError(`a KV view needs one subset per layer (${cache.shape.layers}), got ${subsets.length}`);
    }
    this.subsets = subsets.map((s) => (s === null ? null : Int32Array.from(s)));
    this.compact = this.subsets.map((s, l) => {
      if (s === null) return null;
      for (let i = 0; i < s.length; i++) {
        if (!(s[i]! >= 0 && s[i]! < cache.length) || (i > 0 && s[i]! <= s[i - 1]!)) {
          throw new RangeError(`layer ${l} subset must be ascending row indices below ${cache.length}; got ${s[i]} at ${i}`);
        }
      }
      // Room for every row the cache was reserved for (the turn's answer): decode never regrows the view.
      const store = cache.newRowStore(s.length + Math.max(16, cache.capacity - cache.length));
      cache.gather(l, s, store);
      return store;
    });
  }

  past(layer: number): LayerPast {
    return this.compact[layer]?.past() ?? this.cache.past(layer);
  }

  /** Appends a step's rows to the view and to the full cache. */
  append(keys: KvRows[], values: KvRows[], positions: ArrayLike<number>): void {
    this.compact.forEach((store, l) => store?.append(keys[l]!, values[l]!));
    this.cache.append(keys, values, positions);
  }
}
