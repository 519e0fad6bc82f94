/** Dense: every visual token enters the LLM and every decode step attends all of them — the reference. */
import type { SparsityMethod } from '../method.js';

export type DensePolicy = { method: 'dense' };

export const dense: SparsityMethod<DensePolicy> = {
  name: 'dense',
  summary: 'every visual token at prefill and decode (the reference)',
  validate: () => ({ method: 'dense' }),
  label: () => 'dense',
};
