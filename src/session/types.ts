/** What a turn takes and gives back: the public shapes of a conversation turn. */
import type { ModelSpec } from '../families/registry.js';
import type { VideoInput } from '../media/video.js';
import type { Runtime } from '../runtime/runtime.js';
import type { PolicyValue } from '../sparsity/method.js';
import type { TextProcessor } from '../text/index.js';

/** What a conversation needs of a loaded model (`Model` is one). */
export interface LoadedModel {
  readonly dir: string;
  readonly spec: ModelSpec;
  readonly text: TextProcessor;
  /** The family's image processor config (families/<family> `loadProcessor`). */
  readonly processor: unknown;
  readonly runtime: Runtime;
  /** Images over this many pixels are refused before decoding (LoadOptions.maxImagePixels). */
  readonly maxImagePixels?: number;
  /** The execution provider its graphs run on, and the device (name, memory where known). */
  readonly provider?: string;
  readonly device?: { name: string; memoryBytes?: number };
}

/** Images for one turn: file paths or encoded bytes. */
export type ImageInput = string | Uint8Array;

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

/** The frames a video turn saw: stream frame numbers and their times (seconds from the first frame). */
export interface VideoFrames {
  file: string;
  frames: { index: number; timestamp: number }[];
  /** Frames per second of video the frames were sampled at. */
  fps: number;
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
  /**
   * On a GPU provider, what a decode step moves between host and device once the past it decodes over is on the
   * device (the turn's last step): the token's id, positions and biases up, its logits down (its KV rows stay on
   * the device; the host copy gets them when it next needs them). `pastUploadBytes`: the turn's first step also
   * uploads that past (the cache, or the turn's retrieval view) once, as the prefill left it on the host.
   */
  deviceTransfer?: { hostToDeviceBytesPerStep: number; deviceToHostBytesPerStep: number; pastUploadBytes: number };
}

/** What the policy did on this turn. */
export interface SparsitySummary {
  policy: PolicyValue['method'];
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

/** A turn against the dense twin (fidelity.ts). */
export interface FidelityReport {
  steps: number;
  tokenAgreement: number;
  firstDivergence: number | null;
  klPerStep: number[];
  meanKl: number;
  /** Per layer; null when the turn attended every visual token (nothing to recall). */
  retrievalRecall: number[] | null;
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
