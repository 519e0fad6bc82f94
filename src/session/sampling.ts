/**
 * Next-token choice from logits: greedy argmax, or temperature + top-p (nucleus) sampling from a seeded
 * generator, so a sampled run is reproducible from its seed.
 */
import { InputError } from '../errors.js';
import { seededRandom } from '../seeded-random.js';

export type Sampling = { kind: 'greedy' } | { kind: 'sample'; temperature: number; topP: number; seed: number };

export function validateSampling(s: Sampling): Sampling {
  if (s.kind === 'greedy') return s;
  if (!(s.temperature > 0) || !Number.isFinite(s.temperature)) {
    throw new InputError('OPTION_INVALID', `temperature must be a positive number, got ${s.temperature}`, { subject: 'temperature' });
  }
  if (!(s.topP > 0 && s.topP <= 1)) {
    throw new InputError('OPTION_INVALID', `top-p must be in (0, 1], got ${s.topP}`, { subject: 'topP' });
  }
  if (!Number.isInteger(s.seed)) throw new InputError('OPTION_INVALID', `seed must be an integer, got ${s.seed}`, { subject: 'seed' });
  return s;
}

export function argmax(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = logits[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

export class TokenSampler {
  private readonly random: () => number;

  constructor(private readonly sampling: Sampling) {
    validateSampling(sampling);
    this.random = seededRandom(sampling.kind === 'sample' ? sampling.seed : 0);
  }

  /** Picks a token from one row of logits (vocabulary order). */
  next(logits: Float32Array): number {
    if (this.sampling.kind === 'greedy') return argmax(logits);
    const { temperature, topP } = this.sampling;
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    const probs = new Float64Array(logits.length);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i]! - max) / temperature);
    // Nucleus: the smallest set of most likely tokens whose mass reaches top-p (transformers TopPLogitsWarper).
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]!);
    let kept = 0;
    let mass = 0;
    while (kept < order.length && (kept === 0 || mass < topP * sum)) mass += probs[order[kept++]!]!;
    let r = this.random() * mass;
    for (let i = 0; i < kept; i++) {
      r -= probs[order[i]!]!;
      if (r <= 0) return order[i]!;
    }
    return order[kept - 1]!;
  }
}
