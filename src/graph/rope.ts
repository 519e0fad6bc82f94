/**
 * Rotary inverse frequencies per `rope_scaling`, following transformers/modeling_rope_utils.py
 * (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
 * `_compute_llama3_parameters`). The graph turns them into cos/sin per position id, so positions need
 * not be contiguous (a pruned or compacted cache keeps its original positions).
 */
import type { RopeScaling } from '../checkpoint/spec.js';

export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = headDim / 2;
  const base = Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim));
  switch (scaling.type) {
    case 'default':
      return Float32Array.from(base);
    case 'linear':
      return Float32Array.from(base, (f) => f / scaling.factor);
    case 'llama3': {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldLen } = scaling;
      const lowFreqWavelen = oldLen / lowFreqFactor;
      const highFreqWavelen = oldLen / highFreqFactor;
      return Float32Array.from(base, (f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen > lowFreqWavelen) return f / factor;
        if (wavelen < highFreqWavelen) return f;
        const smooth = (oldLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        return (1 - smooth) * (f / factor) + smooth * f;
      });
    }
  }
}
