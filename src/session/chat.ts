/**
 * A multi-turn conversation over one KV cache, under one sparsity policy. Each turn prefills only its new
 * tokens (earlier turns, answers included, stay in the cache), then decodes token by token — over a
 * per-layer retrieval view when the policy retrieves. `ask()` runs a whole turn; the step API (`encode`,
 * then `prune`, `prefill`, `retrieve`, `decode` on each step's result; steps.ts) runs it one inspectable
 * step at a time.
 */
import { InputError } from '../errors.js';
import { imagePixelCounts } from '../media/image.js';
import { decodeVideo, planVideo, type VideoInput } from '../media/video.js';
import { familyOf } from '../families/registry.js';
import type { PolicyValue } from '../sparsity/method.js';
import { needsAttentionMass } from '../sparsity/registry.js';
import type { ChatMessage } from '../text/index.js';
import { Tracer } from '../trace/tracer.js';
import { Conversation } from './conversation.js';
import { encode, imageFrames } from './encode.js';
import { checkTurnMemory } from './memory-check.js';
import { checkPolicyFits, resolveChatOptions, resolveLimits, type ChatOptions, type ResolvedOptions } from './options.js';
import { prefillTurn } from './prefill-turn.js';
import { EncodedImages, PrefilledTurn } from './steps.js';
import type { Answer, ImageInput, LoadedModel, TokenEvent, TurnInput } from './types.js';

export class Chat {
  readonly messages: ChatMessage[] = [];
  readonly policy: PolicyValue;
  readonly tracer: Tracer;
  readonly options: Readonly<ResolvedOptions>;
  private readonly conversation: Promise<Conversation>;

  constructor(
    readonly model: LoadedModel,
    options: ChatOptions = {},
  ) {
    this.options = resolveChatOptions(options);
    checkPolicyFits(this.options, model.spec.text.numLayers);
    this.policy = this.options.policy;
    this.tracer = options.tracer ?? new Tracer();
    if (this.options.system) this.messages.push({ role: 'system', content: this.options.system });
    // Policies that score attention (and the dense twin's recall) need the attention-mass graph: load it
    // now, not inside the first prefill's timing.
    const graphs = needsAttentionMass(this.policy) || this.options.fidelity ? model.runtime.ensureGraphs(['decoder-mass']) : Promise.resolve();
    this.conversation = Promise.all([model.runtime.createCache(), graphs]).then(
      ([cache]) => new Conversation(model, this.options, this.messages, this.tracer, cache),
    );
    this.conversation.catch(() => undefined);
    this.emitRunStart();
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
    resolveLimits(limits, this.options);
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
    const conv = await this.conversation;
    const turn = conv.turn();
    if (!images.length)
      throw new InputError('OPTION_INVALID', 'encode() needs at least one image; use prefill(text) for a text-only turn', { subject: 'images' });
    // Decoded pixels count too: sized from the images' headers, before any is decoded.
    const imagePixels = await imagePixelCounts(images, { maxPixels: this.model.maxImagePixels });
    checkTurnMemory(conv, { encode: images.length, imagePixels, what: `${images.length} image(s)` });
    return new EncodedImages(turn, await encode(turn, imageFrames(this.model, images), undefined, images));
  }

  /**
   * Step 1 for a video: probes it, samples its frames (by count or fps), refuses the turn if it would not fit
   * in `memoryLimit`, then decodes, preprocesses and encodes the frames a vision batch at a time.
   */
  async encodeVideo(video: VideoInput): Promise<EncodedImages> {
    const conv = await this.conversation;
    const turn = conv.turn();
    // A model with its own frame rule (Qwen2-VL: fps 2 within min/max frames) samples by it when the video names no count.
    const family = familyOf(this.model.spec);
    const rule =
      family.videoFrames && ((info: { frameCount: number; fps: number }, fps: number | undefined) => family.videoFrames!(this.model.processor, info, fps));
    const plan = await planVideo(video, rule);
    const n = plan.indices.length;
    checkTurnMemory(conv, { encode: n, video: { framePixels: plan.info.width * plan.info.height }, what: `${n} frame(s) of ${plan.info.file}` });
    const frames = plan.indices.map((index, i) => ({ index, timestamp: plan.timestamps[i]! }));
    // The rate the frames were sampled at: what a model with a time axis (Qwen2.5-VL's M-RoPE) counts seconds by.
    const fps = n > 1 ? (n - 1) / (plan.timestamps[n - 1]! - plan.timestamps[0]!) || plan.info.fps : plan.info.fps;
    return new EncodedImages(turn, await encode(turn, decodeVideo(plan), { file: plan.info.file, frames, fps }));
  }

  /** A text-only turn's prefill (turns with images: `encode(images)` → `prune()` → `prefill(text)`). */
  async prefill(text: string): Promise<PrefilledTurn> {
    const turn = (await this.conversation).turn();
    return new PrefilledTurn(turn, await prefillTurn(turn, text));
  }

  /** Frees this conversation's KV cache in the worker. */
  async close(): Promise<void> {
    const conv = await this.conversation;
    await this.model.runtime.dropCache(conv.cache);
    await conv.twin?.close();
  }

  private emitRunStart(): void {
    if (!this.tracer.enabled) return;
    const s = this.model.spec;
    const o = this.options;
    const tower = familyOf(s).describe(s);
    this.tracer.emit({
      type: 'run.start',
      version: 1,
      model: {
        dir: this.model.dir,
        vision: tower.vision,
        text: s.text.kind,
        layers: s.text.numLayers,
        heads: s.text.numHeads,
        kvHeads: s.text.numKvHeads,
        imageTokens: tower.imageTokens,
        ...(this.model.provider && { provider: this.model.provider }),
        ...(this.model.device && { device: this.model.device.name }),
        ...(this.model.device?.memoryBytes && { deviceMemoryBytes: this.model.device.memoryBytes }),
      },
      policy: this.policy,
      label: o.method.label(this.policy),
      options: {
        maxNewTokens: o.maxNewTokens,
        minNewTokens: o.minNewTokens,
        sampling: o.sampling,
        prefillChunk: o.prefillChunk,
        prefillScoreBytes: o.prefillScoreBytes,
      },
    });
  }
}
