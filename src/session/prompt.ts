/**
 * A turn's prompt as its family lays it out: the chat template with each image's own token count, and every
 * token's rotary position rows (families/<family> position rule). The prefill step and the dense twin build
 * theirs here, so a sparse chat and its twin see the same prompt and positions.
 */
import type { MediaLayout } from '../families/family.js';
import { familyOf } from '../families/registry.js';
import { buildPrompt, buildTurnDelta, type ChatMessage, type PreviousTurn, type PromptTokens } from '../text/index.js';
import type { LoadedModel } from './types.js';

/** What a turn's media are in its prompt: images, or one video where the family has video tokens (a video turn on Llava is frames as images). */
export type MediaKind = 'image' | 'video';

export function mediaKind(model: LoadedModel, video: boolean): MediaKind {
  return video && familyOf(model.spec).videoToken !== undefined ? 'video' : 'image';
}

/** The user message of a turn: a part per image (or the video), then the text. */
export function userMessage(text: string, media: number, kind: MediaKind): ChatMessage {
  return { role: 'user', content: [...Array.from({ length: media }, () => ({ type: kind })), { type: 'text' as const, text }] };
}

/** The token id a turn's visual tokens hold in the prompt. */
export function mediaTokenId(model: LoadedModel, kind: MediaKind): number {
  return kind === 'video' ? model.spec.videoTokenId! : model.spec.imageTokenId;
}

/** A turn's prompt (the whole conversation, or its delta after the cached turns), each image with its own token count. */
export function turnPrompt(
  model: LoadedModel,
  messages: readonly ChatMessage[],
  previous: PreviousTurn | undefined,
  layouts: readonly MediaLayout[],
  media: MediaKind = 'image',
): PromptTokens {
  const options = { imageCount: layouts.length, imageTokenCount: layouts.map((l) => l.tokens), media };
  return previous ? buildTurnDelta(model.text, messages, previous, options) : buildPrompt(model.text, messages, options);
}

/**
 * Every prompt token's rotary position rows from `start` (the family's rule: one row, or M-RoPE's three), and
 * the position the token after the prompt takes.
 */
export function promptPositions(model: LoadedModel, prompt: PromptTokens, layouts: readonly MediaLayout[], start: number): { rows: number[][]; next: number } {
  return familyOf(model.spec).positions(model.spec, prompt.ids.length, prompt.imageSpans, layouts, start);
}
