/**
 * One conversation turn as inspectable steps: encode → prune → prefill → retrieve → decode. Each step returns
 * what it decided (salience with its patch grid, kept tokens, prompt ids and logits, per-layer retrieval
 * sets and scores) and the next step. `Chat.ask` composes them with the chat's policy; a notebook can call
 * them one by one and override a budget at any step.
 */
import { InputError } from '../errors.js';
import { buildPrompt, buildTurnDelta, type ChatMessage, type PromptTokens } from '../text/index.js';
import { budgetCount, validatePolicy, type Budget, type KeepBudget, type RetrieveBudget, type SparsityPolicy } from '../sparsity/policy.js';
import { keepAll, selectKept, type KeptTokens } from '../sparsity/prune.js';
import { retrieve, type LayerRetrieval } from '../sparsity/retrieve.js';
import { imageSalience, type ImageSalience } from '../sparsity/salience.js';
import { topK } from '../sparsity/topk.js';
import { visionZip } from '../sparsity/visionzip.js';
import type { VisualTokenId } from '../trace/schema.js';
import type { Answer, Chat, DecodeLimits, TokenEvent } from './chat.js';
import { MASKED } from '../runtime/llm-step.js';
import { concatFloat32 } from '../runtime/arrays.js';
import { checkTurnMemory } from './encode.js';
import { prefill, type PrefillOutput } from './prefill.js';

/** The frames a video turn saw: stream frame numbers and their times (seconds from the first frame). */
export interface VideoFrames {
  file: string;
  frames: { index: number; timestamp: number }[];
}

/** What the chat keeps between turns about its KV cache. */
export interface ConversationState {
  cache: number;
  rows: number;
  nextPosition: number;
  /** Retained visual tokens, in cache-row order. */
  visualRows: number[];
  visualIds: VisualTokenId[];
  imagesSeen: number;
  /** Rows hidden from a layer for good (FastV / PyramidDrop drops); null = none. */
  hidden: (Set<number> | null)[];
  lastPrompt?: PromptTokens;
  lastGenerated: number[];
}

export class EncodedImages {
  constructor(
    private readonly chat: Chat,
    readonly images: number,
    /** Projected embeddings of every token of every image: [images · tokensPerImage, hidden]. */
    readonly embeds: Float32Array,
    readonly salience: ImageSalience[],
    readonly seconds: { images: number; vision: number },
    /** Vision features before the projector, [images · tokensPerImage, featureSize] (VisionZip merges these). */
    readonly features: Float32Array,
    /** Feature-layer keys averaged over heads, per LLM image token: [images · tokensPerImage, headDim]. */
    readonly keyMetric: Float32Array | undefined,
    /** The video the images are frames of, when the turn took one. */
    readonly video?: VideoFrames,
  ) {}

  /**
   * Drops tokens per the chat's policy, or keeps the top `keep` by salience when given (scope default
   * per-image; `minPerImage` keeps every frame's top few under a global budget).
   */
  async prune(keep?: { budget: Budget } & Partial<KeepBudget>): Promise<PrunedImages> {
    const t0 = performance.now();
    const spec = this.chat.model.spec;
    const tokens = spec.imageTokenCount;
    const hidden = spec.text.hiddenSize;
    const policy: SparsityPolicy = keep ? validatePolicy({ method: 'sparsevila', keep, retrieve: { budget: { ratio: 1 } } }) : this.chat.policy;
    let kept: KeptTokens;
    let embeds: Float32Array;
    if (policy.method === 'visionzip') {
      ({ kept, embeds } = await this.zip(policy.dominant, policy.contextual));
    } else {
      kept = selectKept(policy, this.salience, tokens);
      embeds = new Float32Array(kept.reduce((n, k) => n + k.length, 0) * hidden);
      let at = 0;
      kept.forEach((ks, img) => {
        for (const k of ks) embeds.set(this.embeds.subarray((img * tokens + k) * hidden, (img * tokens + k + 1) * hidden), at++ * hidden);
      });
    }
    const first = this.chat.state.imagesSeen;
    this.chat.trace((tr, turn) =>
      kept.forEach((ks, i) => tr.emit({ type: 'kept', turn, image: first + i, total: tokens, kept: ks })),
    );
    this.chat.span('prune', t0);
    return new PrunedImages(this.chat, this, kept, embeds);
  }

  /** VisionZip per image: dominant + merged contextual features, projected again. */
  private async zip(dominant: number, contextual: number): Promise<{ kept: KeptTokens; embeds: Float32Array }> {
    const spec = this.chat.model.spec;
    const tokens = spec.imageTokenCount;
    const size = this.features.length / (this.images * tokens);
    if (!this.keyMetric) throw new InputError('OPTION_INVALID', 'VisionZip needs the feature layer keys, which this vision graph lacks', { subject: 'policy' });
    const keyDim = this.keyMetric.length / (this.images * tokens);
    const zipped = this.salience.map((s, img) =>
      visionZip(
        this.features.subarray(img * tokens * size, (img + 1) * tokens * size),
        s.scores,
        this.keyMetric!.subarray(img * tokens * keyDim, (img + 1) * tokens * keyDim),
        keyDim,
        dominant,
        contextual,
      ),
    );
    const features = concatFloat32(zipped.map((z) => z.features));
    const embeds = await this.chat.model.runtime.project(features, [features.length / size, size]);
    return { kept: zipped.map((z) => z.tokens), embeds };
  }
}

export class PrunedImages {
  constructor(
    private readonly chat: Chat,
    readonly encoded: EncodedImages,
    /** Kept token indices per image, ascending. */
    readonly kept: KeptTokens,
    /** Embeddings of the kept tokens only, in prompt order. */
    readonly embeds: Float32Array,
  ) {}

  get keptCount(): number {
    return this.kept.reduce((n, k) => n + k.length, 0);
  }

  prefill(text: string): Promise<PrefilledTurn> {
    return prefillTurn(this.chat, text, this);
  }
}

export class PrefilledTurn {
  constructor(
    private readonly chat: Chat,
    readonly prompt: PromptTokens,
    /** The ids that entered the LLM (pruned image tokens removed). */
    readonly promptTokenIds: number[],
    readonly positions: number[],
    readonly lastPromptLogits: Float32Array,
    /** Per-layer question→cache attention mass [heads, rows], when the policy retrieves. */
    readonly mass: Float32Array[] | undefined,
    readonly cachedTokens: number,
    readonly seconds: number,
    readonly imageSeconds: { images: number; vision: number },
    /** This turn's image tokens before pruning, how many entered the LLM, and how many of each image / frame. */
    readonly imageTokens: { total: number; kept: number; perImage: number[] },
    /** Embeddings of every token of the turn's images, unpruned (for a dense twin). */
    readonly imageEmbedsAll?: Float32Array,
    /** The turn's video, when it took one. */
    readonly video?: VideoFrames,
  ) {}

  /**
   * Per-layer retrieval sets for this turn's decode, by the chat's policy or the given budget. Policies that
   * do not retrieve (dense, pruning-only) attend to every retained token.
   */
  retrieve(budget?: RetrieveBudget): RetrievedTurn {
    const t0 = performance.now();
    const { chat } = this;
    const policy = chat.policy;
    const b = budget ?? (policy.method === 'sparsevila' ? policy.retrieve : undefined);
    const state = chat.state;
    let layers: LayerRetrieval[] | null = null;
    if (b && state.visualRows.length) {
      if (!this.mass) {
        throw new InputError('OPTION_INVALID', `retrieval needs the question's attention mass, which the '${policy.method}' policy's prefill does not compute`, {
          subject: 'retrieve',
        });
      }
      layers = retrieve(this.mass, state.rows, { rows: state.visualRows, image: state.visualIds.map((v) => v.image) }, b, chat.model.spec.text.numKvHeads);
      chat.trace((tr, turn) => {
        // One snapshot for the turn: the chat's list grows with later turns' images.
        const candidates = state.visualIds.slice();
        layers!.forEach((l, layer) => {
          const picked = new Set(l.rows);
          tr.emit({
            type: 'retrieval',
            turn,
            layer,
            candidates,
            scores: Array.from(l.scores),
            retrieved: state.visualRows.flatMap((r, i) => (picked.has(r) ? [i] : [])),
          });
        });
      });
    }
    chat.span('retrieve', t0);
    return new RetrievedTurn(chat, this, layers);
  }
}

export class RetrievedTurn {
  constructor(
    private readonly chat: Chat,
    readonly prefilled: PrefilledTurn,
    /** Per-layer retrieval (null: decode attends every retained token). */
    readonly layers: LayerRetrieval[] | null,
  ) {}

  /** Retrieved visual tokens per layer, as ids (image, token). */
  get retrievedIds(): VisualTokenId[][] | null {
    const { visualRows, visualIds } = this.chat.state;
    const index = new Map(visualRows.map((r, i) => [r, i]));
    return this.layers?.map((l) => l.rows.map((r) => visualIds[index.get(r)!]!)) ?? null;
  }

  /** Generates the answer. `withLogits` adds each token's logits to its event (fidelity, inspection). */
  decode(options: DecodeLimits & { withLogits?: boolean } = {}): AsyncGenerator<TokenEvent, Answer> {
    return this.chat.decodeTurn(this, options, options.withLogits);
  }
}

/** Builds the turn's prompt, drops pruned image tokens, prefills, and records the new visual rows. */
export async function prefillTurn(chat: Chat, text: string, pruned?: PrunedImages): Promise<PrefilledTurn> {
  const t0 = performance.now();
  const { model, state } = chat;
  const images = pruned?.encoded.images ?? 0;
  chat.beginTurn(text, images);
  const rowsBefore = state.rows;
  const visualBefore = state.visualRows.length;
  try {
    return await prefillTurnBody(chat, text, pruned, t0);
  } catch (err) {
    // Leave the conversation as it was: the failed turn's rows are rolled back.
    state.visualRows.length = visualBefore;
    state.visualIds.length = visualBefore;
    await model.runtime.truncateCache(state.cache, rowsBefore);
    chat.abortTurn();
    throw err;
  }
}

async function prefillTurnBody(chat: Chat, text: string, pruned: PrunedImages | undefined, t0: number): Promise<PrefilledTurn> {
  const { model, state, policy } = chat;
  const images = pruned?.encoded.images ?? 0;
  const content = [...Array.from({ length: images }, () => ({ type: 'image' as const })), { type: 'text' as const, text }];
  const messages: ChatMessage[] = [...chat.messages, { role: 'user', content }];
  const promptOptions = { imageCount: images, imageTokenCount: model.spec.imageTokenCount };
  const prompt = state.lastPrompt
    ? buildTurnDelta(model.text, messages, { prompt: state.lastPrompt, generatedIds: state.lastGenerated }, promptOptions)
    : buildPrompt(model.text, messages, promptOptions);

  // Drop pruned image tokens; positions stay the original ones unless the policy compacts them.
  const kept = pruned?.kept ?? keepAll(model.spec.imageTokenCount, 0);
  const keepRow = new Uint8Array(prompt.ids.length).fill(1);
  prompt.imageSpans.forEach((span, img) => {
    keepRow.fill(0, span.start, span.end);
    for (const k of kept[img]!) keepRow[span.start + k] = 1;
  });
  // VisionZip feeds a shorter sequence of merged tokens: compact positions, as in its repo.
  const compact = (policy.method === 'sparsevila' && policy.positions === 'compact') || policy.method === 'visionzip';
  const ids: number[] = [];
  const positions: number[] = [];
  const newVisual: { offset: number; id: VisualTokenId }[] = [];
  let spanIndex = 0;
  prompt.ids.forEach((id, row) => {
    while (spanIndex < prompt.imageSpans.length && row >= prompt.imageSpans[spanIndex]!.end) spanIndex++;
    if (!keepRow[row]) return;
    const span = prompt.imageSpans[spanIndex];
    if (span && row >= span.start && row < span.end) newVisual.push({ offset: ids.length, id: { image: state.imagesSeen + spanIndex, token: row - span.start } });
    positions.push(state.nextPosition + (compact ? ids.length : row));
    ids.push(id);
  });

  // The exact prompt is known now: refuse it before the cache grows if it would not fit.
  checkTurnMemory(chat, {
    encode: 0,
    visual: { total: images * model.spec.imageTokenCount, kept: newVisual.length },
    promptTokens: ids.length,
    what: images ? `${images} image(s) or frame(s)` : 'text',
  });

  // The question: rows after the turn's last visual token (every row on a text-only turn).
  const questionStart = newVisual.length ? newVisual.at(-1)!.offset + 1 : 0;
  const retrieves = policy.method === 'sparsevila';
  const massWeights = retrieves ? questionWeights(ids.length, questionStart) : undefined;
  const rowsBefore = state.rows;
  for (const v of newVisual) {
    state.visualRows.push(rowsBefore + v.offset);
    state.visualIds.push(v.id);
  }
  const input = {
    cache: state.cache,
    ids,
    positions,
    imageTokenId: model.spec.imageTokenId,
    imageEmbeds: pruned?.embeds,
    hidden: model.spec.text.hiddenSize,
    chunkSize: chat.options.prefillChunk ?? 512,
    logits: 'last' as const,
    pastRows: rowsBefore,
  };
  // Room for the prompt and the longest answer now: no doubling copy of the whole cache mid-turn.
  await model.runtime.reserveCache(state.cache, rowsBefore + ids.length + (chat.options.maxNewTokens ?? 128) + 1);
  const out: PrefillOutput =
    policy.method === 'fastv' || policy.method === 'pdrop'
      ? await stagedDropPrefill(chat, input, policy)
      : await prefill(model.runtime, { ...input, massWeights, columnBias: hiddenBias(state.hidden, rowsBefore + ids.length) });
  state.rows = rowsBefore + ids.length;
  state.nextPosition = (positions.at(-1) ?? state.nextPosition - 1) + 1;
  state.imagesSeen += images;
  chat.pendingUserMessage = messages.at(-1)!;
  chat.span('prefill', t0, { tokens: ids.length, visual: newVisual.length });
  const imageTokens = { total: images * model.spec.imageTokenCount, kept: newVisual.length, perImage: pruned ? kept.map((k) => k.length) : [] };
  const encoded = pruned?.encoded;
  const seconds = encoded?.seconds ?? { images: 0, vision: 0 };
  return new PrefilledTurn(chat, prompt, ids, positions, out.logits.slice(), out.mass, rowsBefore, out.seconds, seconds, imageTokens, encoded?.embeds, encoded?.video);
}

/** Uniform weights over the question rows [start, n): their attention mass, averaged. */
function questionWeights(n: number, start: number): Float32Array {
  const w = new Float32Array(n);
  const q = n - start;
  if (q > 0) w.fill(1 / q, start);
  return w;
}

/** Per-layer column bias hiding the rows each layer dropped for good. */
export function hiddenBias(hidden: (Set<number> | null)[], columns: number): (Float32Array | null)[] | undefined {
  if (hidden.every((h) => !h?.size)) return undefined;
  return hidden.map((h) => {
    if (!h?.size) return null;
    const b = new Float32Array(columns);
    for (const r of h) if (r < columns) b[r] = MASKED;
    return b;
  });
}

/**
 * FastV and PyramidDrop drop visual tokens inside the LLM by the last prompt token's attention at a layer,
 * for every layer after it. A pass computes the attention; the cache is rolled back and the prompt prefilled
 * again with the dropped tokens hidden from the later layers (−1e9 column bias), once per drop stage. The
 * extra passes make these baselines slower here than in their papers: they are fidelity baselines.
 */
async function stagedDropPrefill(
  chat: Chat,
  input: Parameters<typeof prefill>[1],
  policy: Extract<SparsityPolicy, { method: 'fastv' | 'pdrop' }>,
): Promise<PrefillOutput> {
  const { model, state } = chat;
  const stages =
    policy.method === 'fastv'
      ? [{ layer: policy.layer, keep: (n: number) => n - Math.round(policy.dropRatio * n) }]
      : policy.layers.map((layer, i) => ({ layer, keep: (n: number) => budgetCount({ ratio: policy.keepRatios[i]! }, n) }));
  const layers = model.spec.text.numLayers;
  const lastRow = new Float32Array(input.ids.length);
  lastRow[input.ids.length - 1] = 1;
  const columns = input.pastRows! + input.ids.length;
  let seconds = 0;
  // Only this turn's visual tokens are candidates; earlier turns' drops stay as they were.
  const candidates = state.visualRows.filter((r) => r >= input.pastRows!);
  let surviving = candidates;
  for (const stage of stages) {
    if (stage.layer >= layers) break;
    const pass = await prefill(model.runtime, { ...input, massWeights: lastRow, columnBias: hiddenBias(state.hidden, columns) });
    seconds += pass.seconds;
    await model.runtime.truncateCache(state.cache, input.pastRows!);
    // Attention of the last prompt token at the layer before the drop, heads averaged.
    const mass = pass.mass![stage.layer - 1]!;
    const heads = mass.length / columns;
    const score = (r: number) => {
      let s = 0;
      for (let h = 0; h < heads; h++) s += mass[h * columns + r]!;
      return s;
    };
    const scores = Float64Array.from(surviving, score);
    const keep = new Set(topK(scores, stage.keep(candidates.length)).map((i) => surviving[i]!));
    const dropped = surviving.filter((r) => !keep.has(r));
    for (let l = stage.layer; l < layers; l++) {
      const h = (state.hidden[l] ??= new Set());
      for (const r of dropped) h.add(r);
    }
    surviving = surviving.filter((r) => keep.has(r));
  }
  const final = await prefill(model.runtime, { ...input, columnBias: hiddenBias(state.hidden, columns) });
  return { ...final, seconds: seconds + final.seconds };
}
