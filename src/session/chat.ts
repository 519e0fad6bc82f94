/**
 * A multi-turn conversation over one KV cache, under one sparsity policy. Each turn prefills only its new
 * tokens (earlier turns, answers included, stay in the cache), then decodes token by token — over a
 * per-layer retrieval view when the policy retrieves. `ask()` runs a whole turn; the step API (`encode`,
 * then `prune`, `prefill`, `retrieve`, `decode` on each step's result) runs it one inspectable step at a time.
 */
import { InputError } from '../errors.js';
import { DENSE, validatePolicy, type SparsityPolicy } from '../sparsity/policy.js';
import { decodeVideo, pixelBatches, planVideo, type VideoInput } from '../media/video.js';
import type { Stage } from '../trace/schema.js';
import { Tracer } from '../trace/tracer.js';
import type { ChatMessage } from '../text/index.js';
import type { ImageInput, Model } from './model.js';
import { DenseTwin, type FidelityReport } from './fidelity.js';
import { TokenSampler, validateSampling, type Sampling } from './sampling.js';
import { checkTurnMemory, encodeVisual, imageBatches, validateBounds, visionBatch } from './encode.js';
import { prefillTurn, type EncodedImages, type ConversationState, type PrefilledTurn, type RetrievedTurn, type VideoFrames } from './turn.js';

/** How many tokens a turn may and must generate. */
export interface DecodeLimits {
  /** Stop after this many new tokens. Default 128. */
  maxNewTokens?: number;
  /**
   * End-of-sequence tokens cannot be chosen before this many new tokens (transformers' min_new_tokens: their
   * logits are masked). Default 0. For benchmarks that must decode a fixed length on a trained model.
   */
  minNewTokens?: number;
}

export interface ChatOptions extends DecodeLimits {
  /** Default greedy. */
  sampling?: Sampling;
  /**
   * Prefill chunk length in tokens. Default 512. Activation memory grows with the chunk (its attention
   * scores are heads × chunk × context), not with the whole prompt; the KV cache grows with the prompt.
   */
  prefillChunk?: number;
  /** Images / video frames per vision-tower call: bounds the tower's activations on long videos. Default 8. */
  visionBatch?: number;
  /**
   * Refuse a turn whose estimated memory (KV cache, prefill chunk, vision batch, visual embeddings; see
   * runtime/memory.ts) exceeds this many bytes, before any work. Default: half of this machine's memory.
   */
  memoryLimit?: number;
  /** An optional system message, rendered by the chat template. */
  system?: string;
  /** Default dense. */
  policy?: SparsityPolicy;
  /** Where trace events go (default: a tracer with no sinks, which costs nothing). */
  tracer?: Tracer;
  /**
   * Run a dense twin beside the chat and report, per turn, token agreement, per-step KL and retrieval
   * recall against it (see fidelity.ts). Roughly doubles the work.
   */
  fidelity?: boolean;
}

export interface TurnInput {
  images?: readonly ImageInput[];
  /**
   * A video instead of images: a path (8 frames) or `{ path, frames }` / `{ path, fps }`. Its frames enter
   * the prompt as consecutive images, labelled as the chat template labels several images.
   */
  video?: VideoInput;
  text: string;
  /** Overrides the chat's maxNewTokens for this turn. */
  maxNewTokens?: number;
  /** Overrides the chat's minNewTokens for this turn. */
  minNewTokens?: number;
}

export interface Timings {
  /** Decoding and preprocessing the turn's images. */
  imageSeconds: number;
  /** Vision tower + projector. */
  visionSeconds: number;
  /** LLM prefill of the turn's new tokens. */
  prefillSeconds: number;
  /** From the start of the turn to the first generated token (time to first token). */
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
  sparsity: SparsitySummary;
  /** Against the dense twin, when the chat was made with `fidelity: true`. */
  fidelity?: FidelityReport;
  /** The turn's video: which frames it saw, when. */
  video?: VideoFrames;
}

/** What the policy did on this turn. */
export interface SparsitySummary {
  policy: SparsityPolicy['method'];
  /** Retained visual tokens in the cache after this turn's prefill (all turns' images). */
  visualTokens: number;
  /** Visual tokens this turn's images would have had without pruning, and how many entered the LLM. */
  turnImageTokens: number;
  turnKeptTokens: number;
  /** Of those, how many of each image / frame of this turn entered the LLM. */
  turnKeptPerImage: number[];
  /** Visual tokens each layer's decode steps attended (retrieval set, minus in-LLM drops). */
  attendedVisualPerLayer: number[];
}

export interface TokenEvent {
  /** The generated token; absent on a last event that only flushes held-back text. */
  id?: number;
  /** The logits the token was chosen from (vocabulary order), when decode() was asked for them. */
  logits?: Float32Array;
  /**
   * Text that became final with this token. Byte-level tokens can end mid-character: that text is held
   * back ('' here) until the character completes, or flushed in a last event without `id`.
   */
  text: string;
}

export class Chat {
  readonly messages: ChatMessage[] = [];
  readonly policy: SparsityPolicy;
  readonly tracer: Tracer;
  /** @internal the KV cache bookkeeping the turn steps share. */
  state!: ConversationState;
  /** @internal the user message of the turn in progress. */
  pendingUserMessage?: ChatMessage;
  /** @internal performance.now() at the start of the turn in progress. */
  turnStarted = 0;
  private ready: Promise<void>;
  private turnIndex = 0;
  private inTurn = false;
  private readonly sampler: TokenSampler;
  private readonly twin?: DenseTwin;

  constructor(
    readonly model: Model,
    readonly options: ChatOptions = {},
  ) {
    this.sampler = new TokenSampler(validateSampling(options.sampling ?? { kind: 'greedy' }));
    this.policy = validatePolicy(options.policy ?? DENSE);
    validateBounds(options);
    if (options.fidelity) this.twin = new DenseTwin(model);
    this.tracer = options.tracer ?? new Tracer();
    const layers = model.spec.text.numLayers;
    // Policies that score attention need the attention-mass graph: load it now, not inside the first
    // prefill's timing.
    const needsMass = ['sparsevila', 'fastv', 'pdrop'].includes(this.policy.method) || options.fidelity;
    const graphs = needsMass ? model.runtime.ensureGraphs(['decoder-mass']) : Promise.resolve();
    this.ready = Promise.all([model.runtime.createCache(), graphs]).then(([cache]) => {
      this.state = { cache, rows: 0, nextPosition: 0, visualRows: [], visualIds: [], imagesSeen: 0, hidden: Array(layers).fill(null), lastGenerated: [] };
    });
    this.ready.catch(() => undefined);
    if (options.system) this.messages.push({ role: 'system', content: options.system });
    this.trace((tr) => {
      const s = model.spec;
      tr.emit({
        type: 'run.start',
        version: 1,
        model: { dir: model.dir, vision: s.vision.kind, text: s.text.kind, layers: s.text.numLayers, heads: s.text.numHeads, kvHeads: s.text.numKvHeads, imageTokens: s.imageTokenCount },
        policy: this.policy,
        options: {
          maxNewTokens: options.maxNewTokens ?? 128,
          minNewTokens: options.minNewTokens ?? 0,
          sampling: options.sampling ?? { kind: 'greedy' },
          prefillChunk: options.prefillChunk ?? 512,
        },
      });
    });
  }

  async ask(input: TurnInput): Promise<Answer> {
    const it = this.stream(input);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** A whole turn under the chat's policy, yielding tokens as they are generated. */
  async *stream(input: TurnInput): AsyncGenerator<TokenEvent, Answer> {
    const limits = { maxNewTokens: input.maxNewTokens, minNewTokens: input.minNewTokens };
    this.decodeLimits(limits);
    const images = input.images ?? [];
    if (images.length && input.video !== undefined) {
      throw new InputError('OPTION_INVALID', 'a turn takes images or a video, not both', { subject: 'video' });
    }
    const encoded = input.video !== undefined ? await this.encodeVideo(input.video) : images.length ? await this.encode(images) : undefined;
    const prefilled = encoded ? await (await encoded.prune()).prefill(input.text) : await this.prefill(input.text);
    return yield* prefilled.retrieve().decode(limits);
  }

  /** Step 1: decode, preprocess and encode the turn's images; salience per image with its patch grid. */
  async encode(images: readonly ImageInput[]): Promise<EncodedImages> {
    await this.ready;
    this.guardIdle();
    if (!images.length) throw new InputError('OPTION_INVALID', 'encode() needs at least one image; use prefill(text) for a text-only turn', { subject: 'images' });
    const t0 = performance.now();
    checkTurnMemory(this, { encode: images.length, what: `${images.length} image(s)` });
    return encodeVisual(this, imageBatches(this.model, images, visionBatch(this.options)), t0);
  }

  /**
   * Step 1 for a video: probes it, samples its frames (by count or fps), refuses the turn if it would not fit
   * in `memoryLimit`, then decodes, preprocesses and encodes the frames a vision batch at a time.
   */
  async encodeVideo(video: VideoInput): Promise<EncodedImages> {
    await this.ready;
    this.guardIdle();
    const t0 = performance.now();
    const plan = await planVideo(video);
    checkTurnMemory(this, { encode: plan.indices.length, what: `${plan.indices.length} frame(s) of ${plan.info.file}` });
    const { preprocessor, spec, dir } = this.model;
    const batches = pixelBatches(decodeVideo(plan), preprocessor, visionBatch(this.options), spec.vision.imageSize, dir);
    return encodeVisual(this, batches, t0, { file: plan.info.file, frames: plan.indices.map((index, i) => ({ index, timestamp: plan.timestamps[i]! })) });
  }

  /** A text-only turn's prefill (turns with images: `encode(images)` → `prune()` → `prefill(text)`). */
  async prefill(text: string): Promise<PrefilledTurn> {
    await this.ready;
    this.guardIdle();
    this.turnStarted = performance.now();
    return prefillTurn(this, text);
  }

  /** This turn's limits: the overrides, else the chat's options, else the defaults; validated. */
  private decodeLimits(overrides: DecodeLimits): Required<DecodeLimits> {
    return validateLimits(
      overrides.maxNewTokens ?? this.options.maxNewTokens ?? 128,
      overrides.minNewTokens ?? this.options.minNewTokens ?? 0,
    );
  }

  /** @internal the decode loop of a turn (reached through `RetrievedTurn.decode`). */
  async *decodeTurn(retrieved: RetrievedTurn, overrides: DecodeLimits = {}, withLogits = false): AsyncGenerator<TokenEvent, Answer> {
    const { model, state } = this;
    const pre = retrieved.prefilled;
    const { maxNewTokens, minNewTokens } = this.decodeLimits(overrides);
    if (!this.inTurn || !this.pendingUserMessage) throw new InputError('OPTION_INVALID', 'this turn was already decoded', { subject: 'decode' });
    const t0 = performance.now();
    const turn = this.turnIndex;
    const view = await this.decodeView(retrieved);
    const sparsity: SparsitySummary = {
      policy: this.policy.method,
      visualTokens: state.visualRows.length,
      turnImageTokens: pre.imageTokens.total,
      turnKeptTokens: pre.imageTokens.kept,
      turnKeptPerImage: pre.imageTokens.perImage,
      attendedVisualPerLayer: view?.visualPerLayer ?? Array(model.spec.text.numLayers).fill(state.visualRows.length),
    };
    const attended = view ? view.attended : state.rows;
    const generated: number[] = [];
    const stepLogits: Float32Array[] = [];
    const detok = model.text.createStream({ skipSpecial: true, contextIds: pre.promptTokenIds.slice(-4) });
    let logits = pre.lastPromptLogits;
    let stopReason: Answer['stopReason'] = 'length';
    let firstTokenAt = 0;
    let decodeSeconds = 0;
    try {
      for (;;) {
        const token = this.sampler.next(generated.length < minNewTokens ? withoutEos(logits, model.text.eosTokenIds) : logits);
        if (!firstTokenAt) firstTokenAt = performance.now();
        if (model.text.eosTokenIds.includes(token)) {
          stopReason = 'eos';
          break;
        }
        generated.push(token);
        if (this.twin) stepLogits.push(logits);
        const text = detok.push(token);
        this.trace((tr) => tr.emit({ type: 'token', turn, step: generated.length - 1, id: token, text }));
        yield withLogits ? { id: token, text, logits } : { id: token, text };
        if (generated.length >= maxNewTokens) break;
        const out = await model.runtime.step({
          target: view ? { view: view.id } : { cache: state.cache },
          ids: [token],
          positions: [state.nextPosition],
          logits: 'last',
        });
        state.nextPosition++;
        state.rows++;
        decodeSeconds += out.seconds;
        logits = out.logits;
        const step = generated.length;
        this.trace((tr) =>
          tr.emit({ type: 'decode.step', turn, step, ms: out.seconds * 1000, attended: attended + step, visualAttended: view?.visualAttended ?? state.visualRows.length }),
        );
      }
    } finally {
      if (view) await model.runtime.dropView(view.id);
    }
    const rest = detok.flush();
    if (rest) yield { text: rest };
    // The last token of a length stop was never fed: it is not in the cache, and the next turn's delta
    // re-encodes its text after the cached ones.
    const cachedGenerated = stopReason === 'length' ? generated.slice(0, -1) : generated;
    const visualIndex = new Map(state.visualRows.map((r, i) => [r, i]));
    const text = model.text.decode(generated, { skipSpecial: true });
    // The conversation keeps the answer as the tokens decode WITH their special tokens: the cache holds
    // them, and the next turn's delta is the template's rendering after exactly that text.
    const spoken = model.text.decode(generated);
    this.messages.push(this.pendingUserMessage!, { role: 'assistant', content: spoken });
    state.lastPrompt = pre.prompt;
    state.lastGenerated = cachedGenerated;
    this.span('decode', t0, { tokens: generated.length });
    const timings: Timings = {
      imageSeconds: pre.imageSeconds.images,
      visionSeconds: pre.imageSeconds.vision,
      prefillSeconds: pre.seconds,
      firstTokenSeconds: (firstTokenAt - this.turnStarted) / 1000,
      decodeSeconds,
      decodeTokensPerSecond: cachedGenerated.length && decodeSeconds ? cachedGenerated.length / decodeSeconds : 0,
      totalSeconds: (performance.now() - this.turnStarted) / 1000,
      promptTokens: pre.promptTokenIds.length,
      generatedTokens: generated.length,
      cachedTokens: pre.cachedTokens,
    };
    // The dense twin runs after the turn is timed: its work is reported as its own 'fidelity' span.
    let fidelity: FidelityReport | undefined;
    if (this.twin) {
      const t1 = performance.now();
      fidelity = await this.twin.turn({
        messages: this.messages.slice(0, -1),
        images: pre.imageTokens.total / model.spec.imageTokenCount,
        imageEmbeds: pre.imageEmbedsAll,
        tokens: generated,
        logits: stepLogits,
        attended: view ? view.subsets.map((rows) => rows.flatMap((r) => (visualIndex.has(r) ? [state.visualIds[visualIndex.get(r)!]!] : []))) : null,
        cachedGenerated,
      });
      const report = fidelity;
      this.span('fidelity', t1);
      this.trace((tr) => tr.emit({ type: 'fidelity', turn, metrics: { ...report } }));
    }
    this.trace((tr) => tr.emit({ type: 'turn.end', turn, answer: text, stopReason, metrics: { ...timings } }));
    this.endTurn();
    return { text, tokenIds: generated, promptTokenIds: pre.promptTokenIds, lastPromptLogits: pre.lastPromptLogits, stopReason, timings, sparsity, fidelity, video: pre.video };
  }

  /** The per-layer KV view a turn's decode reads: every non-visual row plus the layer's retrieved visual rows. */
  private async decodeView(
    retrieved: RetrievedTurn,
  ): Promise<{ id: number; subsets: number[][]; attended: number; visualAttended: number; visualPerLayer: number[] } | null> {
    const { state } = this;
    const hidden = state.hidden;
    if (!retrieved.layers && hidden.every((h) => !h?.size)) return null;
    const visual = new Set(state.visualRows);
    const subsets = hidden.map((h, l) => {
      const picked = retrieved.layers ? new Set(retrieved.layers[l]!.rows) : null;
      const rows: number[] = [];
      for (let r = 0; r < state.rows; r++) {
        if (h?.has(r)) continue;
        if (picked && visual.has(r) && !picked.has(r)) continue;
        rows.push(r);
      }
      return rows;
    });
    const id = await this.model.runtime.createView(state.cache, subsets);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const visualPerLayer = subsets.map((s) => s.filter((r) => visual.has(r)).length);
    return { id, subsets, attended: Math.round(mean(subsets.map((s) => s.length))), visualAttended: Math.round(mean(visualPerLayer)), visualPerLayer };
  }

  private guardIdle(): void {
    if (this.inTurn) {
      throw new InputError('OPTION_INVALID', 'a turn is in progress on this chat: finish its decode() before starting another', { subject: 'chat' });
    }
  }

  /** @internal */
  beginTurn(text: string, images: number): void {
    this.guardIdle();
    this.inTurn = true;
    const turn = this.turnIndex;
    this.trace((tr) => tr.emit({ type: 'turn.start', turn, text, images }));
  }

  /** @internal a turn that failed before its decode. */
  abortTurn(): void {
    this.inTurn = false;
    this.pendingUserMessage = undefined;
  }

  private endTurn(): void {
    this.inTurn = false;
    this.pendingUserMessage = undefined;
    this.turnIndex++;
  }

  /** @internal the index of the turn in progress (or the next one). */
  get turn(): number {
    return this.turnIndex;
  }

  /** @internal emits through the tracer only when something listens. */
  trace(fn: (tracer: Tracer, turn: number) => void): void {
    if (this.tracer.enabled) fn(this.tracer, this.turnIndex);
  }

  /** @internal a stage span from `start` (performance.now()) to `end` (default now). */
  span(stage: Stage, start: number, detail?: Record<string, number>, end = performance.now()): void {
    this.trace((tr, turn) => {
      const offset = tr.now() - performance.now();
      tr.emit({ type: 'span', turn, stage, start: start + offset, duration: end - start, detail });
    });
  }

  /** Frees this conversation's KV cache in the worker. */
  async close(): Promise<void> {
    await this.ready;
    await this.model.runtime.dropCache(this.state.cache);
    await this.twin?.close();
  }
}

function validateLimits(maxNewTokens: number, minNewTokens: number): Required<DecodeLimits> {
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens > 0)) {
    throw new InputError('OPTION_INVALID', `maxNewTokens must be a positive integer, got ${maxNewTokens}`, { subject: 'maxNewTokens' });
  }
  if (!(Number.isInteger(minNewTokens) && minNewTokens >= 0 && minNewTokens <= maxNewTokens)) {
    throw new InputError('OPTION_INVALID', `minNewTokens must be an integer from 0 to maxNewTokens (${maxNewTokens}), got ${minNewTokens}`, {
      subject: 'minNewTokens',
    });
  }
  return { maxNewTokens, minNewTokens };
}

/** A copy of `logits` in which no end-of-sequence token can win. */
function withoutEos(logits: Float32Array, eos: readonly number[]): Float32Array {
  const out = logits.slice();
  for (const id of eos) out[id] = -Infinity;
  return out;
}
