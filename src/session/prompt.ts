/**
 * A turn's prompt as its family lays it out: the chat template with each image's own token count, and every
 * token's rotary position rows (families/<family> position rule). The prefill step and the dense twin build
 * theirs here, so a sparse chat and its twin see the same prompt and positions.
 */
import type { MediaLayout } from '../families/family.js';
import { familyOf } from '../families/registry.js';
import { buildPrompt, buildTurnDelta, type ChatMessage, type PreviousTurn, type PromptTokens } from '../text/index.js';
import type { LoadedModel } from './types.js';

/** A turn's prompt (the whole conversation, or its delta after the cached turns), each image with its own token count. */
export function turnPrompt(
  model: LoadedModel,
  messages: readonly ChatMessage[],
  previous: PreviousTurn | undefined,
  layouts: readonly MediaLayout[],
): PromptTokens {
  const options = { imageCount: layouts.length, imageTokenCount: layouts.map((l) => l.tokens) };
  return previous ? buildTurnDelta(model.text, messages, previous, options) : buildPrompt(model.text, messages, options);
}

/**
 * Every prompt token's rotary position rows from `start` (the family's rule: one row, or M-RoPE's three), and
 * the position the token after the prompt takes.
 */
export function promptPositions(model: LoadedModel, prompt: PromptTokens, layouts: readonly MediaLayout[], start: number): { rows: number[][]; next: number } {
  return familyOf(model.spec).positions(model.spec, prompt.ids.length, prompt.imageSpans, layouts, start);
}
