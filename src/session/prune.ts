/**
 * Step 2 of a turn, prune: which of the encoded tokens enter the LLM, as the policy's method decides —
 * or, when the step is given a keep budget, the top tokens by the encode step's salience.
 */
import { familyOf } from '../families/registry.js';
import { validateKeep, type Budget, type KeepBudget } from '../sparsity/budget.js';
import { gatherKept, keepAll, keepTopScores, type KeptTokens } from '../sparsity/keep.js';
import type { PruneResult } from '../sparsity/method.js';
import type { Turn } from './conversation.js';
import type { Encoded } from './encode.js';

export interface Pruned {
  encoded: Encoded;
  /** Kept token indices per image, ascending. */
  kept: KeptTokens;
  /** Embeddings of the kept tokens only, in prompt order. */
  embeds: Float32Array;
}

export type KeepOverride = { budget: Budget } & Partial<KeepBudget>;

export async function prune(turn: Turn, encoded: Encoded, keep?: KeepOverride): Promise<Pruned> {
  const t0 = performance.now();
  const { model, options } = turn;
  const tokens = encoded.layouts.map((l) => l.tokens);
  const hidden = model.spec.text.hiddenSize;
  const { method, policy } = options;
  let result: PruneResult;
  if (keep)
    result = {
      kept: keepTopScores(
        validateKeep(keep, 'policy.keep'),
        encoded.salience.map((s) => s.scores),
      ),
    };
  else if (method.prune) {
    result = await method.prune(policy, {
      ...encoded,
      tokensPerImage: tokens,
      hidden,
      project: async (features, dims) => (familyOf(model.spec).graphs.includes('projector') ? model.runtime.project(features, dims) : features),
    });
  } else result = { kept: keepAll(tokens) };
  const { kept } = result;
  const first = turn.conversation.imagesSeen;
  kept.forEach((ks, i) => turn.emit(() => ({ type: 'kept', image: first + i, total: tokens[i]!, kept: ks })));
  turn.span('prune', t0);
  return { encoded, kept, embeds: result.embeds ?? gatherKept(encoded.embeds, kept, tokens, hidden) };
}
