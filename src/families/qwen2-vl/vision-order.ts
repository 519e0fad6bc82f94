/**
 * The row bookkeeping of the Qwen2-VL / Qwen2.5-VL vision tower, done on the host so the graph sees plain
 * tensors (transformers 4.57, models/qwen2_5_vl/modeling_qwen2_5_vl.py `Qwen2_5_VisionTransformerPretrainedModel`,
 * and models/qwen2_vl/modeling_qwen2_vl.py `Qwen2VisionTransformerPretrainedModel`):
 *
 * - `get_window_index`: Qwen2.5-VL runs its blocks over the merged units (m × m patches) reordered window by
 *   window; the merger output is put back with the inverse permutation (`unit_order` here).
 * - `rot_pos_emb`: each patch's (row, col) in its image, the 2-D rotary's positions.
 * - `cu_seqlens` / `cu_window_seqlens`: which rows attend to which, as one segment id per row; the graph
 *   turns equal ids into a block-diagonal mask.
 *
 * "Processor order" is `pixel_values`' row order (processor.ts); "window order" the tower's. A window never
 * spans two temporal slices or two images, so neither does a window segment.
 */
import { concatFloat32 } from '../../arrays.js';
import { InputError } from '../../errors.js';
import type { GraphTensor } from '../family.js';
import type { QwenPixels } from './processor.js';
import type { GridThw, QwenVisionSpec } from './spec.js';

type WindowSpec = Pick<QwenVisionSpec, 'windowSize' | 'mergeSize' | 'patchSize'>;

/** LLM tokens (merged units) of one grid: t · h · w / m². */
export function unitsOf(grid: GridThw, mergeSize: number): number {
  return (grid[0] * grid[1] * grid[2]) / (mergeSize * mergeSize);
}

/**
 * `get_window_index` over one or more grids: the units in the order the tower processes them (windows of
 * windowSize / merge / patch units a side, row-major windows of each temporal slice, row-major units inside
 * a window, indices offset by the units of the grids before), and the window boundaries in patches after
 * `torch.unique_consecutive` (empty padding windows give no boundary). Qwen2-VL (windowSize null): identity
 * order, one window per temporal slice.
 */
export function windowIndex(grids: GridThw | readonly GridThw[], spec: WindowSpec): { windowIndex: number[]; cuWindowSeqlens: number[] } {
  const m = spec.mergeSize;
  const unit = m * m;
  const order: number[] = [];
  const cu = [0];
  let offset = 0;
  for (const [t, h, w] of gridList(grids)) {
    const [lh, lw] = [h / m, w / m];
    // Qwen2-VL has no windows: a window as large as the slice gives the identity and one segment per slice.
    const side = spec.windowSize === null ? Math.max(lh, lw) : spec.windowSize / m / spec.patchSize;
    for (let s = 0; s < t; s++)
      for (let wy = 0; wy < lh; wy += side)
        for (let wx = 0; wx < lw; wx += side) {
          for (let y = wy; y < Math.min(wy + side, lh); y++) for (let x = wx; x < Math.min(wx + side, lw); x++) order.push(offset + (s * lh + y) * lw + x);
          const end = order.length * unit;
          if (end !== cu[cu.length - 1]) cu.push(end);
        }
    offset += t * lh * lw;
  }
  return { windowIndex: order, cuWindowSeqlens: cu };
}

/** The inverse of a permutation (`torch.argsort(window_index)`): out[order[k]] = k. */
export function inversePermutation(order: readonly number[]): number[] {
  const inv = new Array<number>(order.length);
  order.forEach((u, k) => (inv[u] = k));
  return inv;
}

/**
 * `rot_pos_emb`'s position ids: (row, col) of every patch in processor order, [patches × 2] flattened, each
 * temporal slice repeating the first.
 */
export function rotaryPositions(grids: GridThw | readonly GridThw[], mergeSize: number): Int32Array {
  const m = mergeSize;
  const list = gridList(grids);
  const out = new Int32Array(list.reduce((n, [t, h, w]) => n + t * h * w, 0) * 2);
  let o = 0;
  for (const [t, h, w] of list)
    for (let s = 0; s < t; s++)
      for (let br = 0; br < h / m; br++)
        for (let bc = 0; bc < w / m; bc++)
          for (let r = 0; r < m; r++)
            for (let c = 0; c < m; c++) {
              out[o++] = br * m + r;
              out[o++] = bc * m + c;
            }
  return out;
}

/** `cu_seqlens` as one id per patch, processor order: each temporal slice of each image is its own segment. */
export function fullSegments(grids: GridThw | readonly GridThw[]): Int32Array {
  const list = gridList(grids);
  const out = new Int32Array(list.reduce((n, [t, h, w]) => n + t * h * w, 0));
  let o = 0;
  let id = 0;
  for (const [t, h, w] of list) for (let s = 0; s < t; s++, id++) out.fill(id, o, (o += h * w));
  return out;
}

/** `cu_window_seqlens` as one id per row, window order. */
export function windowSegments(cuWindowSeqlens: readonly number[]): Int32Array {
  const out = new Int32Array(cuWindowSeqlens[cuWindowSeqlens.length - 1]!);
  for (let k = 0; k + 1 < cuWindowSeqlens.length; k++) out.fill(k, cuWindowSeqlens[k]!, cuWindowSeqlens[k + 1]!);
  return out;
}

/** Whether the tower has blocks that attend within windows (Qwen2.5-VL); the graph then takes `window_segment`. */
export function hasWindowBlocks(v: Pick<QwenVisionSpec, 'windowSize' | 'numLayers' | 'fullAttentionBlocks'>): boolean {
  return v.windowSize !== null && new Set(v.fullAttentionBlocks).size < v.numLayers;
}

/**
 * Everything one vision-graph call needs, from the processor's output for one or more images (or videos):
 * the pixel rows, rotary positions and segment ids in window order, and `unit_order` to put the outputs
 * back in image order. `units` is the number of LLM tokens (rows of `image_embeds`).
 */
export function qwenVisionFeeds(
  images: QwenPixels | readonly QwenPixels[],
  v: QwenVisionSpec,
): { feeds: Record<string, GraphTensor>; units: number; patches: number } {
  const list = Array.isArray(images) ? (images as readonly QwenPixels[]) : [images as QwenPixels];
  const grids = list.map((i) => i.grid);
  const unit = v.mergeSize * v.mergeSize;
  const rowLen = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const patches = grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
  list.forEach(({ pixels, grid }) => {
    if (pixels.length !== grid[0] * grid[1] * grid[2] * rowLen || grid[1] % v.mergeSize !== 0 || grid[2] % v.mergeSize !== 0) {
      throw new InputError('IMAGE_SIZE', `pixel rows (${pixels.length} values) do not fit grid [${grid}] with rows of ${rowLen}`, { subject: `[${grid}]` });
    }
  });
  const { windowIndex: order, cuWindowSeqlens } = windowIndex(grids, v);
  // Row k of the tower is patch rowOf(k) of the processor: units move whole.
  const rowOf = (k: number) => order[Math.floor(k / unit)]! * unit + (k % unit);
  const source = list.length === 1 ? list[0]!.pixels : concatFloat32(list.map((i) => i.pixels));
  const pixels = new Float32Array(patches * rowLen);
  const positions = rotaryPositions(grids, v.mergeSize);
  const full = fullSegments(grids);
  const rotary = new BigInt64Array(patches * 2);
  const fullSegment = new BigInt64Array(patches);
  for (let k = 0; k < patches; k++) {
    const p = rowOf(k);
    pixels.set(source.subarray(p * rowLen, (p + 1) * rowLen), k * rowLen);
    rotary[2 * k] = BigInt(positions[2 * p]!);
    rotary[2 * k + 1] = BigInt(positions[2 * p + 1]!);
    fullSegment[k] = BigInt(full[p]!);
  }
  const feeds: Record<string, GraphTensor> = {
    pixel_values: { type: 'float32', data: pixels, dims: [patches, rowLen] },
    rotary_pos: { type: 'int64', data: rotary, dims: [patches, 2] },
    full_segment: { type: 'int64', data: fullSegment, dims: [patches] },
    unit_order: { type: 'int64', data: BigInt64Array.from(inversePermutation(order), BigInt), dims: [order.length] },
  };
  if (hasWindowBlocks(v)) feeds.window_segment = { type: 'int64', data: BigInt64Array.from(windowSegments(cuWindowSeqlens), BigInt), dims: [patches] };
  return { feeds, units: order.length, patches };
}

/**
 * Salience per LLM token: the received attention (processor order, as the graph outputs it) of the m²
 * patches each merged unit holds, summed. Units are contiguous runs of m² rows in processor order.
 */
export function mergedSalience(received: ArrayLike<number>, grids: GridThw | readonly GridThw[], mergeSize: number): Float32Array {
  const unit = mergeSize * mergeSize;
  const units = gridList(grids).reduce((n, g) => n + unitsOf(g, mergeSize), 0);
  if (received.length !== units * unit) {
    throw new InputError('OPTION_INVALID', `received attention has ${received.length} values; the grids hold ${units * unit} patches`, { subject: 'received' });
  }
  const out = new Float32Array(units);
  for (let u = 0; u < units; u++) {
    let s = 0;
    for (let j = 0; j < unit; j++) s += received[u * unit + j]!;
    out[u] = s;
  }
  return out;
}

function gridList(grids: GridThw | readonly GridThw[]): readonly GridThw[] {
  return typeof grids[0] === 'number' ? [grids as GridThw] : (grids as readonly GridThw[]);
}
