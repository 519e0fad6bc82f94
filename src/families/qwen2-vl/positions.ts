/**
 * Qwen2-VL's rotary position rule: transformers' `get_rope_index` (4.57, models/qwen2_vl/modeling_qwen2_vl.py
 * and models/qwen2_5_vl/modeling_qwen2_5_vl.py), one prompt delta at a time. Text tokens take the next
 * position in all three rows. An image's tokens take `start + (t, row, col)` of their place in its merged grid,
 * where `start` is the next position; the text after it continues from `start + max(t, row, col) + 1`. The
 * rule only looks back, so a cached conversation's delta gets the positions the whole conversation would.
 *
 * Time: Qwen2-VL counts temporal slices (t = slice index); Qwen2.5-VL scales them to seconds,
 * `int(slice · second_per_grid_t · tokens_per_second)`, with second_per_grid_t 0 for an image (one slice).
 */
import type { ImageSpan } from '../../text/chat.js';
import type { MediaLayout } from '../family.js';
import type { QwenVLSpec } from './config.js';

export function qwenPositions(
  spec: QwenVLSpec,
  length: number,
  spans: readonly ImageSpan[],
  layouts: readonly MediaLayout[],
  start: number,
): { rows: number[][]; next: number } {
  const rows = [new Array<number>(length), new Array<number>(length), new Array<number>(length)] as const;
  let next = start;
  let at = 0;
  const text = (end: number) => {
    for (; at < end; at++) rows[0][at] = rows[1][at] = rows[2][at] = next++;
  };
  spans.forEach((span, i) => {
    text(span.start);
    const { t, rows: h, cols: w } = layouts[i]!.grid;
    const secondsPerSlice = layouts[i]!.secondsPerSlice ?? 0;
    const time = (slice: number) => (spec.vision.version === '2' ? slice : Math.trunc(slice * secondsPerSlice * spec.vision.tokensPerSecond));
    let extent = Math.max(h, w) - 1;
    for (let k = 0; k < span.end - span.start; k++, at++) {
      const slice = Math.floor(k / (h * w));
      rows[0][at] = next + time(slice);
      rows[1][at] = next + (Math.floor(k / w) % h);
      rows[2][at] = next + (k % w);
      extent = Math.max(extent, time(slice));
    }
    next += extent + 1;
  });
  text(length);
  return { rows: [...rows], next };
}
