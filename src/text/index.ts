export { TextProcessor, loadTextProcessor } from './tokenizer.js';
export type { ChatTemplateSource, DecodeOptions, SpecialTokensMap, StreamOptions, TextProcessorFiles } from './tokenizer.js';
export { TokenStream } from './stream.js';
export type { DecodeFn } from './stream.js';
export { buildPrompt, buildTurnDelta, renderChat } from './chat.js';
export type { ChatMessage, ContentPart, ImageSpan, PreviousTurn, PromptOptions, PromptTokens, RenderOptions } from './chat.js';
