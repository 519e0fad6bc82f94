/** float32 → IEEE half bits (round to nearest even), through a well-kept implementation. */
import { Float16Array } from '@petamoriken/float16';

export function toFloat16Bits(values: Float32Array): Uint16Array {
  const half = new Float16Array(values);
  return new Uint16Array(half.buffer, half.byteOffset, half.length);
}
