/**
 * One conversation turn as inspectable steps: encode → prune → prefill → retrieve → decode. Each step's
 * result holds what it decided (salience with its patch grid, kept tokens, prompt ids and logits, per-layer
 * retrieval sets and scores) and starts the next step. `Chat.ask` composes them with the chat's policy; a
 * notebook can call them one by one and override a budget at any step.
 */
import type { MediaLayout } from '../families/family.js';
import type { RetrieveBudget } from '../sparsity/budget.js';
import type { KeptTokens } from '../sparsity/keep.js';
import type { LayerRetrieval } from '../sparsity/retrieve.js';
import type { ImageSalience } from '../sparsity/salience.js';
import type { VisualTokenId } from '../trace/schema.js';
import type { Turn } from './conversation.js';
import { decode } from './decode.js';
import type { Encoded } from './encode.js';
import type { DecodeLimits } from './options.js';
import { prefillTurn, type Prefilled } from './prefill-turn.js';
import { prune, type KeepOverride, type Pruned } from './prune.js';
import { retrieve, type Retrieved } from './retrieve-step.js';
import type { Answer, TokenEvent, VideoFrames } from './types.js';

export class EncodedImages implements Encoded {
  readonly images: number;
  readonly embeds: Float32Array;
  readonly salience: ImageSalience[];
  readonly seconds: { images: number; vision: number };
  readonly features: Float32Array;
  readonly keyMetric: Float32Array | undefined;
  readonly layouts: MediaLayout[];
  readonly video?: VideoFrames;

  constructor(
    private readonly turn: Turn,
    encoded: Encoded,
  ) {
    ({
      images: this.images,
      embeds: this.embeds,
      salience: this.salience,
      seconds: this.seconds,
      features: this.features,
      keyMetric: this.keyMetric,
      layouts: this.layouts,
      video: this.video,
    } = encoded);
  }

  /**
   * Drops tokens per the chat's policy, or keeps the top `keep` by salience when given (scope default
   * per-image; `minPerImage` keeps every frame's top few under a global budget).
   */
  async prune(keep?: KeepOverride): Promise<PrunedImages> {
    return new PrunedImages(this.turn, await prune(this.turn, this, keep));
  }
}

export class PrunedImages implements Pruned {
  readonly encoded: Encoded;
  /** Kept token indices per image, ascending. */
  readonly kept: KeptTokens;
  /** Embeddings of the kept tokens only, in prompt order. */
  readonly embeds: Float32Array;

  constructor(
    private readonly turn: Turn,
    pruned: Pruned,
  ) {
    ({ encoded: this.encoded, kept: this.kept, embeds: this.embeds } = pruned);
  }

  get keptCount(): number {
    return this.kept.reduce((n, k) => n + k.length, 0);
  }

  async prefill(text: string): Promise<PrefilledTurn> {
    return new PrefilledTurn(this.turn, await prefillTurn(this.turn, text, this));
  }
}

export class PrefilledTurn implements Prefilled {
  readonly prompt!: Prefilled['prompt'];
  /** The ids that entered the LLM (pruned image tokens removed). */
  readonly promptTokenIds!: number[];
  /** Rotary position of each entered token (under M-RoPE its temporal row; `positionRows` has all three). */
  readonly positions!: number[];
  readonly positionRows?: Prefilled['positionRows'];
  readonly lastPromptLogits!: Float32Array;
  /** Per-layer question→cache attention mass [heads, rows], when the policy retrieves. */
  readonly mass!: Float32Array[] | undefined;
  readonly cachedTokens!: number;
  readonly seconds!: number;
  readonly imageSeconds!: { images: number; vision: number };
  /** This turn's image tokens before pruning, how many entered the LLM, and how many of each image / frame. */
  readonly imageTokens!: Prefilled['imageTokens'];
  /** Each image's token count and grid. */
  readonly layouts!: MediaLayout[];
  /** Embeddings of every token of the turn's images, unpruned (for a dense twin). */
  readonly imageEmbedsAll?: Float32Array;
  /** The turn's video, when it took one. */
  readonly video?: VideoFrames;
  readonly userMessage!: Prefilled['userMessage'];
  /** Whether the turn's visual tokens are images or one video (video tokens). */
  readonly media!: Prefilled['media'];

  constructor(
    private readonly turn: Turn,
    prefilled: Prefilled,
  ) {
    Object.assign(this, prefilled);
  }

  /**
   * Per-layer retrieval sets for this turn's decode, by the chat's policy or the given budget. Policies that
   * do not retrieve (dense, pruning-only) attend to every retained token.
   */
  retrieve(budget?: RetrieveBudget): RetrievedTurn {
    return new RetrievedTurn(this.turn, retrieve(this.turn, this, budget));
  }
}

export class RetrievedTurn implements Retrieved {
  readonly prefilled: Prefilled;
  /** Per-layer retrieval (null: decode attends every retained token). */
  readonly layers: LayerRetrieval[] | null;
  /** The budget the sets were chosen by: its refreshes (if any) re-rank during decode. */
  readonly budget?: RetrieveBudget;

  constructor(
    private readonly turn: Turn,
    retrieved: Retrieved,
  ) {
    ({ prefilled: this.prefilled, layers: this.layers, budget: this.budget } = retrieved);
  }

  /** Retrieved visual tokens per layer, as ids (image, token). */
  get retrievedIds(): VisualTokenId[][] | null {
    const { visualRows, visualIds } = this.turn.conversation;
    const index = new Map(visualRows.map((r, i) => [r, i]));
    return this.layers?.map((l) => l.rows.map((r) => visualIds[index.get(r)!]!)) ?? null;
  }

  /** Generates the answer. `withLogits` adds each token's logits to its event (fidelity, inspection). */
  decode(options: DecodeLimits & { withLogits?: boolean } = {}): AsyncGenerator<TokenEvent, Answer> {
    return decode(this.turn, this, options, options.withLogits ?? false);
  }
}
