/**
 * A multi-turn conversation over one KV cache. Each turn prefills only its new tokens (the earlier turns,
 * answers included, are already in the cache), then decodes token by token. `stream()` yields tokens as
 * they are generated; `ask()` is `stream()` run to the end.
 */
import { InputError } from '../errors.js';
import { buildPrompt, buildTurnDelta, type ChatMessage, type PromptTokens } from '../text/index.js';
import type { ImageInput, Model } from './model.js';
import { prefill } from './prefill.js';
import { TokenSampler, validateSampling, type Sampling } from './sampling.js';

export interface ChatOptions {
  /** Stop after this many new tokens. Default 128. */
  maxNewTokens?: number;
  /** Default greedy. */
  sampling?: Sampling;
  /** Prefill chunk length in tokens. Default 512. */
  prefillChunk?: number;
  /** An optional system message, rendered by the chat template. */
  system?: string;
}

export interface TurnInput {
  images?: readonly ImageInput[];
  text: string;
  /** Overrides the chat's maxNewTokens for this turn. */
  maxNewTokens?: number;
}

export interface Timings {
  /** Decoding and preprocessing the turn's images. */
  imageSeconds: number;
  /** Vision tower + projector. */
  visionSeconds: number;
  /** LLM prefill of the turn's new tokens. */
  prefillSeconds: number;
  /** From the call to the first generated token (time to first token). */
  firstTokenSeconds: number;
  /** Decode steps after the first token. */
  decodeSeconds: number;
  /** Decode steps per second (excludes prefill). */
  decodeTokensPerSecond: number;
  totalSeconds: number;
  promptTokens: number;
  generatedTokens: number;
  /** Tokens already in the KV cache before this turn (earlier turns, reused). */
  cachedTokens: number;
}

export interface Answer {
  text: string;
  tokenIds: number[];
  /** The tokens this turn prefilled (the whole prompt on turn 1; the new turn's tokens after that). */
  promptTokenIds: number[];
  /** Logits at the last prompt position, vocabulary order. */
  lastPromptLogits: Float32Array;
  stopReason: 'eos' | 'length';
  timings: Timings;
}

export interface TokenEvent {
  /** The generated token; absent on a last event that only flushes held-back text. */
  id?: number;
  /**
   * Text that became final with this token. Byte-level tokens can end mid-character: that text is held
   * back ('' here) until the character completes, or flushed in a last event without `id`.
   */
  text: string;
}

export class Chat {
  readonly messages: ChatMessage[] = [];
  private cache: Promise<number>;
  private lastPrompt?: PromptTokens;
  private lastGenerated: number[] = [];
  private busy = false;
  private readonly sampler: TokenSampler;

  constructor(
    readonly model: Model,
    readonly options: ChatOptions = {},
  ) {
    this.sampler = new TokenSampler(validateSampling(options.sampling ?? { kind: 'greedy' }));
    this.cache = model.runtime.createCache();
    this.cache.catch(() => undefined);
    if (options.system) this.messages.push({ role: 'system', content: options.system });
  }

  async ask(input: TurnInput): Promise<Answer> {
    const it = this.stream(input);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  async *stream(input: TurnInput): AsyncGenerator<TokenEvent, Answer> {
    if (this.busy) throw new InputError('OPTION_INVALID', 'a turn is already running on this chat; await it first', { subject: 'chat' });
    this.busy = true;
    try {
      return yield* this.turn(input);
    } finally {
      this.busy = false;
    }
  }

  private async *turn(input: TurnInput): AsyncGenerator<TokenEvent, Answer> {
    const started = performance.now();
    const { model } = this;
    const maxNewTokens = input.maxNewTokens ?? this.options.maxNewTokens ?? 128;
    if (!(Number.isInteger(maxNewTokens) && maxNewTokens > 0)) {
      throw new InputError('OPTION_INVALID', `maxNewTokens must be a positive integer, got ${maxNewTokens}`, { subject: 'maxNewTokens' });
    }
    const images = input.images ?? [];
    const content = [...images.map(() => ({ type: 'image' as const })), { type: 'text' as const, text: input.text }];
    const messages: ChatMessage[] = [...this.messages, { role: 'user', content }];
    const promptOptions = { imageCount: images.length, imageTokenCount: model.spec.imageTokenCount };
    const prompt = this.lastPrompt
      ? buildTurnDelta(model.text, messages, { prompt: this.lastPrompt, generatedIds: this.lastGenerated }, promptOptions)
      : buildPrompt(model.text, messages, promptOptions);

    const imageEmbeds = images.length ? await this.encodeImages(images) : undefined;
    const imageDone = performance.now();
    const cache = await this.cache;
    const info = await model.runtime.cacheInfo(cache);
    const first = info.nextPosition;
    const positions = prompt.ids.map((_, i) => first + i);
    const pre = await prefill(model.runtime, {
      cache,
      ids: prompt.ids,
      positions,
      imageTokenId: model.spec.imageTokenId,
      imageEmbeds: imageEmbeds?.embeds,
      hidden: model.spec.text.hiddenSize,
      chunkSize: this.options.prefillChunk ?? 512,
      logits: 'last',
    });
    const lastPromptLogits = pre.logits.slice();

    const generated: number[] = [];
    const detok = model.text.createStream({ skipSpecial: true, contextIds: prompt.ids.slice(-4) });
    let logits = pre.logits;
    let position = first + prompt.ids.length;
    let stopReason: Answer['stopReason'] = 'length';
    let firstTokenAt = 0;
    let decodeSeconds = 0;
    for (;;) {
      const token = this.sampler.next(logits);
      if (!firstTokenAt) firstTokenAt = performance.now();
      if (model.text.eosTokenIds.includes(token)) {
        stopReason = 'eos';
        break;
      }
      generated.push(token);
      yield { id: token, text: detok.push(token) };
      if (generated.length >= maxNewTokens) break;
      const out = await model.runtime.step({ target: { cache }, ids: [token], positions: [position++], logits: 'last' });
      decodeSeconds += out.seconds;
      logits = out.logits;
    }
    const rest = detok.flush();
    if (rest) yield { text: rest };
    // The last token of a length stop was never fed: it is not in the cache, and the next turn's delta
    // re-encodes its text after the cached ones.
    const cachedGenerated = stopReason === 'length' ? generated.slice(0, -1) : generated;
    const text = model.text.decode(generated, { skipSpecial: true });
    this.messages.push(messages.at(-1)!, { role: 'assistant', content: text });
    this.lastPrompt = prompt;
    this.lastGenerated = cachedGenerated;
    const total = (performance.now() - started) / 1000;
    const steps = Math.max(0, cachedGenerated.length);
    return {
      text,
      tokenIds: generated,
      promptTokenIds: prompt.ids,
      lastPromptLogits,
      stopReason,
      timings: {
        imageSeconds: imageEmbeds?.imageSeconds ?? 0,
        visionSeconds: imageEmbeds ? (imageDone - started) / 1000 - imageEmbeds.imageSeconds : 0,
        prefillSeconds: pre.seconds,
        firstTokenSeconds: (firstTokenAt - started) / 1000,
        decodeSeconds,
        decodeTokensPerSecond: steps && decodeSeconds ? steps / decodeSeconds : 0,
        totalSeconds: total,
        promptTokens: prompt.ids.length,
        generatedTokens: generated.length,
        cachedTokens: info.length,
      },
    };
  }

  private async encodeImages(images: readonly ImageInput[]): Promise<{ embeds: Float32Array; imageSeconds: number }> {
    const t0 = performance.now();
    const pixels = await this.model.pixels(images);
    const imageSeconds = (performance.now() - t0) / 1000;
    const vision = await this.model.runtime.vision(pixels.data, pixels.dims);
    const [n, tokens, size] = vision.featureDims as [number, number, number];
    const embeds = await this.model.runtime.project(vision.features, [n * tokens, size]);
    return { embeds, imageSeconds };
  }

  /** Frees this conversation's KV cache in the worker. */
  async close(): Promise<void> {
    await this.model.runtime.dropCache(await this.cache);
  }
}
