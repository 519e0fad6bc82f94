/**
 * A conversation's state between turns — its KV cache rows, the retained visual tokens, what earlier turns
 * dropped, the messages — and the `Turn`: the one object every step of a turn (encode → prune → prefill →
 * retrieve → decode) is a function of. A conversation runs one turn at a time; a turn holds it from its
 * prefill until its decode ends (or its prefill fails and is rolled back).
 */
import { InputError } from '../errors.js';
import type { ChatMessage, PromptTokens } from '../text/index.js';
import type { Stage, TraceEvent, VisualTokenId } from '../trace/schema.js';
import type { Tracer } from '../trace/tracer.js';
import { DenseTwin } from './fidelity.js';
import { chatChunks, type ResolvedOptions } from './options.js';
import { TokenSampler } from './sampling.js';
import type { LoadedModel } from './types.js';

/** Distributes Omit over the event union, so each event keeps its own fields. */
type EventBody<E> = E extends TraceEvent ? Omit<E, 'run' | 't' | 'turn'> : never;
type Payload<E> = E extends TraceEvent ? Omit<E, 'run' | 't'> : never;

export class Conversation {
  /** KV cache rows, and the rotary position the next token takes (pruning leaves gaps in positions). */
  rows = 0;
  nextPosition = 0;
  /** Retained visual tokens, in cache-row order, and their ids (image, token). */
  readonly visualRows: number[] = [];
  readonly visualIds: VisualTokenId[] = [];
  imagesSeen = 0;
  /** Per layer, rows hidden from it for good (in-LLM drops); null = none. */
  readonly hidden: (Set<number> | null)[];
  /** The last turn's prompt and the generated ids its cache holds: the next turn's prompt is their delta. */
  lastPrompt?: PromptTokens;
  lastGenerated: number[] = [];
  /** The previous answer's tokens after `lastGenerated` that are not in the cache (a length stop's last one). */
  lastUncached: number[] = [];
  /** Turns ended so far: the index of the next (or current) turn. */
  turns = 0;
  private current: Turn | null = null;
  /** The state when the current turn took the conversation: what a failed or abandoned turn rolls back to. */
  private before?: { rows: number; nextPosition: number; visual: number; imagesSeen: number; hidden: (Set<number> | null)[] };
  readonly sampler: TokenSampler;
  readonly twin?: DenseTwin;

  constructor(
    readonly model: LoadedModel,
    readonly options: ResolvedOptions,
    readonly messages: ChatMessage[],
    readonly tracer: Tracer,
    readonly cache: number,
  ) {
    this.hidden = Array(model.spec.text.numLayers).fill(null);
    this.sampler = new TokenSampler(options.sampling);
    if (options.fidelity) this.twin = new DenseTwin(model, chatChunks(options, model.spec.text.numHeads));
  }

  /** A new turn, not yet holding the conversation (its encode may run while no other turn does). */
  turn(started = performance.now()): Turn {
    this.checkIdle();
    return new Turn(this, this.turns, started);
  }

  checkIdle(): void {
    if (this.current)
      throw new InputError('OPTION_INVALID', 'a turn is in progress on this chat: finish its decode() before starting another', { subject: 'chat' });
  }

  /** The turn takes the conversation: from its prefill to the end of its decode. */
  hold(turn: Turn): void {
    this.checkIdle();
    if (turn.index !== this.turns)
      throw new InputError('OPTION_INVALID', `turn ${turn.index} was started before turn ${this.turns - 1} ended: encode it again`, { subject: 'turn' });
    this.current = turn;
    const hidden = this.hidden.map((h) => h && new Set(h));
    this.before = { rows: this.rows, nextPosition: this.nextPosition, visual: this.visualRows.length, imagesSeen: this.imagesSeen, hidden };
  }

  /**
   * A turn that failed (or whose decode was abandoned) leaves the conversation as it was before it: the cache
   * loses the turn's rows, the retained visual tokens and in-LLM drops are the earlier turns' again.
   */
  async rollBack(turn: Turn): Promise<void> {
    if (this.current !== turn || !this.before) return;
    const b = this.before;
    this.rows = b.rows;
    this.nextPosition = b.nextPosition;
    this.visualRows.length = b.visual;
    this.visualIds.length = b.visual;
    this.imagesSeen = b.imagesSeen;
    b.hidden.forEach((h, l) => (this.hidden[l] = h));
    this.release(turn, false);
    await this.model.runtime.truncateCache(this.cache, b.rows);
  }

  /** Whether `turn` holds the conversation now (prefilled, not yet decoded). */
  holds(turn: Turn): boolean {
    return this.current === turn;
  }

  /** The turn ended: its answer is in the cache and the messages. */
  release(turn: Turn, ended: boolean): void {
    if (this.current !== turn) return;
    this.current = null;
    if (ended) this.turns++;
  }
}

export class Turn {
  constructor(
    readonly conversation: Conversation,
    /** 0-based index within the chat. */
    readonly index: number,
    /** performance.now() when the turn began (its first step): time to first token counts from here. */
    readonly started: number,
  ) {}

  get model(): LoadedModel {
    return this.conversation.model;
  }

  get options(): ResolvedOptions {
    return this.conversation.options;
  }

  /** Emits a trace event of this turn, only when something listens (the event is built lazily). */
  emit(event: () => EventBody<TraceEvent>): void {
    const { tracer } = this.conversation;
    if (tracer.enabled) tracer.emit({ ...event(), turn: this.index } as Payload<TraceEvent>);
  }

  /** A stage span from `start` (performance.now()) to `end` (default now). */
  span(stage: Stage, start: number, detail?: Record<string, number>, end = performance.now()): void {
    const { tracer } = this.conversation;
    if (!tracer.enabled) return;
    const offset = tracer.now() - performance.now();
    tracer.emit({ type: 'span', turn: this.index, stage, start: start + offset, duration: end - start, detail });
  }
}
