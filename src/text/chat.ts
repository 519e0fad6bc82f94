/**
 * Conversation → prompt ids, the way transformers' LlavaProcessor does it:
 * 1. render the chat template (processing_utils.py `apply_chat_template` → `render_jinja_template`, run here
 *    by @huggingface/jinja with trim_blocks/lstrip_blocks as transformers compiles it), with the tokenizer's
 *    special tokens (`bos_token`, `eos_token`, ...) and `add_generation_prompt` as template variables;
 * 2. in the rendered TEXT, replace each image token string with `imageTokenCount` copies of it
 *    (models/llava/processing_llava.py `sample.replace(self.image_token, self.image_token * num_image_tokens)`);
 * 3. tokenize without adding special tokens (the template wrote them).
 *
 * Image placeholders: every occurrence of the image token string (processor_config `image_token`, "<image>")
 * in the rendered text is a placeholder, including one a user typed inside their own message text. That is
 * what LlavaProcessor does (it replaces in the text and cannot tell the two apart), and the tokenizer maps the
 * string to the image token id anyway. So "<image>" typed in text needs an image of its own, or the prompt is
 * rejected with IMAGE_COUNT_MISMATCH (placeholders must equal images supplied, in both directions, as
 * LlavaProcessor / LlavaForConditionalGeneration require).
 *
 * Multi-turn (`buildTurnDelta`): the KV cache already holds the earlier prompt and the tokens generated after
 * it. We render the whole conversation again, check that the cached text is a prefix of it, and tokenize only
 * the rest. That rest starts right after the generated tokens, so it carries what the template writes after an
 * assistant message (ChatML's `<|im_end|>\n` when generation stopped on `<|im_end|>` without feeding it).
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ConfigError, InputError } from '../errors.js';
import type { TextProcessor } from './tokenizer.js';

/** A message part. `video` is one video as a model with video tokens takes it (Qwen2-VL's `<|video_pad|>`). */
export type ContentPart = { type: 'image' } | { type: 'video' } | { type: 'text'; text: string };

export interface ChatMessage {
  role: string;
  content: string | ContentPart[];
}

export interface RenderOptions {
  /** Append the assistant header (`<|im_start|>assistant\n`). Default true. */
  addGenerationPrompt?: boolean;
  /** Extra template variables, e.g. `{ enable_thinking: false }` (transformers' apply_chat_template kwargs). */
  templateKwargs?: Record<string, unknown>;
}

export interface PromptOptions extends RenderOptions {
  /** Images supplied for the placeholders being tokenized (for a delta: the new turn's images only). */
  imageCount: number;
  /** LLM tokens per image: one count for all (Llava), or each image's own (native-resolution towers). */
  imageTokenCount: number | readonly number[];
  /**
   * Which placeholder the media fill: `image` (default), or `video` — the tokenizer's video token, one
   * placeholder per video, `imageCount` / `imageTokenCount` counting videos and their tokens.
   */
  media?: 'image' | 'video';
}

/** `ids[start]` up to (not including) `ids[end]` are one image's tokens; spans are in image order. */
export interface ImageSpan {
  start: number;
  end: number;
}

export interface PromptTokens {
  /** The whole rendered conversation, placeholders not expanded. Pass it back in `previous` next turn. */
  text: string;
  /** The part of `text` that `ids` tokenize: all of it (buildPrompt) or the new turn (buildTurnDelta). */
  newText: string;
  ids: number[];
  /** Image positions, as indices into `ids`. */
  imageSpans: ImageSpan[];
}

export interface PreviousTurn {
  /** What buildPrompt / buildTurnDelta returned for the earlier turn. */
  prompt: PromptTokens;
  /** Ids generated after it that went through the model (are in the KV cache), in order. */
  generatedIds: readonly number[];
  /**
   * Ids generated after those that never went through the model (a length stop's last token). The delta
   * starts with them as generated, not re-tokenized from the answer's text: a special token there (an image
   * placeholder a model happened to emit) stays that token, and is not read as a placeholder of this turn.
   */
  uncachedIds?: readonly number[];
}

const templates = new WeakMap<TextProcessor, Template>();

class TemplateRaised extends Error {}

/**
 * The globals `Template.render` installs (true/false/none, range, strftime_now, raise_exception). render()
 * refuses to redefine them, but we need our own raise_exception to tell a template's deliberate rejection of a
 * conversation (an input error) from an engine failure (a checkpoint problem). So we record what the library's
 * setupGlobals passes to Environment.set once, and render through the public Environment/Interpreter.
 */
const LIBRARY_GLOBALS: ReadonlyMap<string, unknown> = (() => {
  const seen = new Map<string, unknown>();
  const proto = Environment.prototype;
  const original = proto.set;
  proto.set = function (this: Environment, name: string, value: unknown) {
    seen.set(name, value);
    return original.call(this, name, value);
  };
  try {
    new Template('').render();
  } finally {
    proto.set = original;
  }
  return seen;
})();

/**
 * Bounds on one render. A chat template is code from the checkpoint: `range(10**9)`, nested loops or a
 * string or list doubled in a loop would otherwise run until the heap dies (the interpreter is synchronous,
 * so nothing else can stop it). Real templates render in milliseconds to a few thousand characters.
 */
export const TEMPLATE_LIMITS = {
  /** Wall time of one render. */
  ms: 1000,
  /** Characters of any string a render makes (its output included). */
  chars: 16 * 2 ** 20,
  /**
   * Items of any list a render makes (`range` included). A loop's iterations run no template steps of their
   * own when its body is empty, so this also bounds how long one loop can run past the time limit (~3 µs an
   * iteration: 0.2 s).
   */
  items: 2 ** 16,
};

class TemplateLimit extends Error {}

type Evaluate = (statement: unknown, environment: Environment) => { value: unknown };

function renderTemplate(template: Template, context: Record<string, unknown>): string {
  const range = LIBRARY_GLOBALS.get('range') as (...args: number[]) => number[];
  const globals = new Map(LIBRARY_GLOBALS).set('range', (...args: number[]) => {
    // Python's range(start, stop, step), sized before any list is made.
    const [start, stop, step] = args.length < 2 ? [0, args[0]!, 1] : [args[0]!, args[1]!, args[2] ?? 1];
    if (Math.ceil((stop - start) / step) > TEMPLATE_LIMITS.items) throw new TemplateLimit(`range(${args.join(', ')}) has over ${TEMPLATE_LIMITS.items} items`);
    return range(...args);
  });
  const env = new Environment();
  for (const [name, value] of globals) if (!(name in context)) env.set(name, value);
  for (const [name, value] of Object.entries(context)) env.set(name, value);
  const interpreter = new Interpreter(env);
  // The interpreter calls this.evaluate for every node: an own property bounds each step (evaluate is private in its typings).
  const own = interpreter as unknown as { evaluate: Evaluate };
  const evaluate = own.evaluate.bind(interpreter);
  const deadline = performance.now() + TEMPLATE_LIMITS.ms;
  own.evaluate = (statement, environment) => {
    if (performance.now() > deadline) throw new TemplateLimit(`rendering took over ${TEMPLATE_LIMITS.ms} ms`);
    const result = evaluate(statement, environment);
    const v = result?.value;
    if (typeof v === 'string' && v.length > TEMPLATE_LIMITS.chars) throw new TemplateLimit(`it made a string of over ${TEMPLATE_LIMITS.chars} characters`);
    if (Array.isArray(v) && v.length > TEMPLATE_LIMITS.items) throw new TemplateLimit(`it made a list of over ${TEMPLATE_LIMITS.items} items`);
    return result;
  };
  const result = interpreter.run(template.parsed);
  return String(result.value);
}

/** Renders `messages` with the checkpoint's chat template (no tokenization, placeholders not expanded). */
export function renderChat(tp: TextProcessor, messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  validateMessages(messages);
  const source = tp.chatTemplate;
  if (source === null) {
    throw new ConfigError(
      'TOKENIZER_INVALID',
      `${tp.dir} has no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json#chat_template)`,
      {
        subject: tp.dir,
      },
    );
  }
  let template = templates.get(tp);
  if (!template) {
    try {
      template = new Template(source.text);
    } catch (cause) {
      throw new ConfigError('TOKENIZER_INVALID', `chat template in ${source.file} does not parse: ${errText(cause)}`, { subject: source.file, cause });
    }
    templates.set(tp, template);
  }
  // Same variables as transformers' render_jinja_template: special tokens, then caller kwargs, then these.
  const context: Record<string, unknown> = {
    ...tp.specialTokens,
    ...options.templateKwargs,
    messages,
    add_generation_prompt: options.addGenerationPrompt ?? true,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
  };
  try {
    return renderTemplate(template, context);
  } catch (cause) {
    if (cause instanceof TemplateLimit) {
      throw new ConfigError('TOKENIZER_INVALID', `chat template in ${source.file} was stopped: ${cause.message} (limits: TEMPLATE_LIMITS)`, {
        subject: source.file,
        cause,
      });
    }
    if (cause instanceof TemplateRaised) {
      throw new InputError('OPTION_INVALID', `the chat template rejected the conversation: ${cause.message}`, { subject: 'messages', cause });
    }
    throw new ConfigError('TOKENIZER_INVALID', `chat template in ${source.file} failed to render: ${errText(cause)}`, { subject: source.file, cause });
  }
}

/** The first turn: the full prompt's ids, with images expanded. */
export function buildPrompt(tp: TextProcessor, messages: readonly ChatMessage[], options: PromptOptions): PromptTokens {
  checkNotEmpty(messages);
  const text = renderChat(tp, messages, options);
  return { text, newText: text, ...tokenizeWithImages(tp, text, messages, options) };
}

/**
 * A later turn: only the ids to append after `previous.prompt.ids` + `previous.generatedIds` (both in the KV
 * cache). `messages` is the whole conversation, with the earlier assistant answer as an assistant message whose
 * text is the decoded generated text (`decode(generatedIds, { skipSpecial: true })`).
 */
export function buildTurnDelta(tp: TextProcessor, messages: readonly ChatMessage[], previous: PreviousTurn, options: PromptOptions): PromptTokens {
  checkNotEmpty(messages);
  const text = renderChat(tp, messages, options);
  const before = previous.prompt.text;
  if (!text.startsWith(before)) {
    const at = commonPrefixLength(text, before);
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `the chat template in ${tp.chatTemplate?.file} is not prefix-stable: adding a turn rewrites earlier text at character ${at} ` +
        `(was ${snippet(before, at)}, now ${snippet(text, at)}), so the cached turns cannot be reused; encode the whole conversation with buildPrompt instead`,
      { subject: tp.chatTemplate?.file ?? tp.dir },
    );
  }
  const cached = before + decodeAfter(tp, previous.prompt.ids, previous.generatedIds);
  if (!text.startsWith(cached)) {
    const at = commonPrefixLength(text, cached);
    throw new InputError(
      'OPTION_INVALID',
      `the conversation does not continue the cached tokens: after the earlier prompt the cache holds ${snippet(cached, before.length)}, ` +
        `but the template renders ${snippet(text, before.length)} (first difference at character ${at}). The assistant message must be the ` +
        `decoded generated text, unchanged; if it is, the template rewrites assistant messages and the conversation must be re-encoded with buildPrompt`,
      { subject: 'messages' },
    );
  }
  const newText = text.slice(cached.length);
  const tail = previous.uncachedIds ?? [];
  const tailText = tail.length ? decodeAfter(tp, [...previous.prompt.ids, ...previous.generatedIds], tail) : '';
  if (tail.length && newText.startsWith(tailText)) {
    const rest = tokenizeWithImages(tp, newText.slice(tailText.length), messages, options);
    return { text, newText, ids: [...tail, ...rest.ids], imageSpans: rest.imageSpans.map((s) => ({ start: s.start + tail.length, end: s.end + tail.length })) };
  }
  return { text, newText, ...tokenizeWithImages(tp, newText, messages, options) };
}

/** Expands placeholders in `text`, tokenizes it, and finds the image spans (LlavaProcessor steps 2-3). */
function tokenizeWithImages(tp: TextProcessor, text: string, messages: readonly ChatMessage[], options: PromptOptions) {
  const { imageCount, imageTokenCount } = options;
  if (!Number.isInteger(imageCount) || imageCount < 0) {
    throw new InputError('OPTION_INVALID', `imageCount must be a non-negative integer, got ${imageCount}`, { subject: 'imageCount' });
  }
  const video = options.media === 'video';
  const token = video ? tp.videoToken : tp.imageToken;
  if (token === null) throw new ConfigError('TOKENIZER_INVALID', `${tp.dir} has no video token: this model takes videos as frames`, { subject: 'video' });
  const placeholders = text.split(token).length - 1;
  if (placeholders !== imageCount) {
    const typed = messages.some((m) => textParts(m).some((t) => t.includes(token)));
    throw new InputError(
      'IMAGE_COUNT_MISMATCH',
      `the prompt has ${placeholders} image placeholder(s) ("${token}") but ${imageCount} image(s) were supplied` +
        (typed ? `; note that "${token}" typed in message text counts as a placeholder, as in transformers' LlavaProcessor` : '') +
        (placeholders === 0 && imageCount > 0 ? `; add a {type: 'image'} part to the message for each image` : ''),
      { subject: 'images' },
    );
  }
  // The other kind's placeholder would enter the prompt with nothing to fill it.
  const other = video ? tp.imageToken : tp.videoToken;
  if (other !== null && text.includes(other)) {
    throw new InputError('IMAGE_COUNT_MISMATCH', `the prompt has a "${other}" placeholder, but this turn supplies no ${video ? 'image' : 'video'} for it`, {
      subject: video ? 'images' : 'video',
    });
  }
  if (placeholders === 0) return { ids: tp.encode(text), imageSpans: [] as ImageSpan[] };

  const imageId = video ? tp.videoTokenId : tp.imageTokenId;
  if (imageId === null) {
    throw new ConfigError('TOKENIZER_INVALID', `the image token "${token}" is not in the vocabulary of ${tp.dir}/tokenizer.json`, { subject: token });
  }
  const counts = typeof imageTokenCount === 'number' ? Array<number>(imageCount).fill(imageTokenCount) : imageTokenCount;
  if (counts.length !== imageCount || counts.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new InputError(
      'OPTION_INVALID',
      `imageTokenCount must be a positive integer per image, got ${JSON.stringify(imageTokenCount)} for ${imageCount} image(s)`,
      {
        subject: 'imageTokenCount',
      },
    );
  }
  const pieces = text.split(token);
  const ids = tp.encode(pieces.map((piece, i) => (i === 0 ? piece : token.repeat(counts[i - 1]!) + piece)).join(''));
  const imageSpans: ImageSpan[] = [];
  let found = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== imageId) continue;
    found++;
    // Images can be adjacent, so a run of image ids is cut into spans of each image's count.
    const last = imageSpans.at(-1);
    if (last && last.end === i && last.end - last.start < counts[imageSpans.length - 1]!) last.end = i + 1;
    else imageSpans.push({ start: i, end: i + 1 });
  }
  // transformers' _check_special_mm_tokens: the text's placeholders must survive tokenization one id each.
  const expected = counts.reduce((a, n) => a + n, 0);
  if (found !== expected || imageSpans.length !== imageCount || imageSpans.some((s, i) => s.end - s.start !== counts[i])) {
    throw new ConfigError(
      'TOKENIZER_INVALID',
      `the image placeholders ("${token}", ${expected} in all) tokenized to ${found} image token id(s) ${imageId}; the image token must be an added token that never merges with its neighbours`,
      { subject: token },
    );
  }
  return { ids, imageSpans };
}

/** Text of `ids` as it reads after `context` (SentencePiece decoders strip a leading space of the first token). */
function decodeAfter(tp: TextProcessor, context: readonly number[], ids: readonly number[]): string {
  if (ids.length === 0) return '';
  const opts = { skipSpecial: false, cleanUpSpaces: false };
  if (context.length === 0) return tp.decode(ids, opts);
  const ctx = context.slice(-1);
  const head = tp.decode(ctx, opts);
  const full = tp.decode([...ctx, ...ids], opts);
  return full.startsWith(head) ? full.slice(head.length) : tp.decode(ids, opts);
}

function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new InputError('OPTION_INVALID', 'messages must be an array of {role, content}', { subject: 'messages' });
  messages.forEach((m, i) => {
    const ok = typeof m?.role === 'string' && (typeof m.content === 'string' || (Array.isArray(m.content) && (m.content as unknown[]).every(isContentPart)));
    if (!ok) {
      throw new InputError(
        'OPTION_INVALID',
        `messages[${i}] must be {role: string, content: string | ({type:'image'} | {type:'video'} | {type:'text', text: string})[]}`,
        {
          subject: `messages[${i}]`,
        },
      );
    }
  });
}

function isContentPart(p: unknown): p is ContentPart {
  const part = p as Partial<{ type: unknown; text: unknown }> | null;
  return part?.type === 'image' || part?.type === 'video' || (part?.type === 'text' && typeof part.text === 'string');
}

/** The newest message must say something: non-whitespace text or an image. */
function checkNotEmpty(messages: readonly ChatMessage[]): void {
  validateMessages(messages);
  if (messages.length === 0) throw new InputError('PROMPT_EMPTY', 'the conversation has no messages', { subject: 'messages' });
  const i = messages.length - 1;
  const m = messages[i]!;
  const hasImage = typeof m.content !== 'string' && m.content.some((p) => p.type === 'image' || p.type === 'video');
  if (!hasImage && textParts(m).every((t) => t.trim().length === 0)) {
    throw new InputError('PROMPT_EMPTY', `messages[${i}].content is empty: give some text or an image`, { subject: `messages[${i}].content` });
  }
}

function textParts(m: ChatMessage): string[] {
  return typeof m.content === 'string' ? [m.content] : m.content.flatMap((p) => (p.type === 'text' ? [p.text] : []));
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function snippet(s: string, at: number): string {
  return JSON.stringify(s.slice(Math.max(0, at - 20), at + 30));
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
