/**
 * What a sparsity method is to the session: one object per method (one file each under `methods/`) that
 * declares what the session needs — policy validation and defaults, which visual tokens enter the LLM at
 * prefill, which it drops inside the LLM, what each layer retrieves for decode, its CLI flags and its label.
 * The session asks these capabilities; it never compares method names. A method registers with one line in
 * `registry.ts`, or with `registerSparsityMethod` from outside the package.
 */
import type { RetrieveBudget } from './budget.js';
import type { CliFlag, CliValues } from './flags.js';
import type { KeptTokens } from './keep.js';
import type { PolicyValue } from '../trace/schema.js';
import type { ImageSalience, SalienceSource } from './salience.js';

/**
 * A sparsity policy is a plain, serializable value naming its method (`{ method: 'sparsevila', keep, … }`).
 * Every run records it in the trace, so a run or sweep can be reproduced from the trace alone.
 */
export type { PolicyValue, CliFlag, CliValues };

/**
 * Rotary positions of kept visual tokens: their original positions (gaps left by pruning) or re-packed.
 * `original` keeps the rotary distances the model was trained with — to each other across the patch grid,
 * and to the question — so a pruned prompt is the dense prompt with columns removed (FastV keeps positions
 * the same way) and keep = 100% is exactly dense. `compact` shortens the position range.
 */
export type PositionMode = 'original' | 'compact';

/** A knob's value in a tuning space: what a CLI flag or a policy field takes. */
export type TuneValue = string | number | boolean;

/**
 * What `tune` may search for a method (src/tune): candidate values per knob, and the raw policy one choice
 * of them gives (validated afterwards). The values are the method's own judgement of a useful grid, each
 * knob's plain setting first (labels name where a candidate leaves it); the tuner samples the grid and
 * measures, it knows no knob's meaning.
 */
export interface TuneSpace {
  knobs: Readonly<Record<string, readonly TuneValue[]>>;
  policy(choice: Readonly<Record<string, TuneValue>>): Record<string, unknown>;
}

/** A turn's encoded visual tokens, as a prefill-pruning method sees them. */
export interface VisualTokens {
  /** Images / video frames of the turn. */
  images: number;
  /** LLM tokens of each image (native-resolution towers give every image its own count). */
  tokensPerImage: readonly number[];
  /** Per image: salience from the tower's own attention, on the patch grid. */
  salience: ImageSalience[];
  /** Projected embeddings (the LLM's inputs), [Σ tokensPerImage, hidden], image after image. */
  embeds: Float32Array;
  hidden: number;
  /** Vision features before the projector, [Σ tokensPerImage, featureSize]. */
  features: Float32Array;
  /** Feature-layer keys averaged over heads, [Σ tokensPerImage, keyDim], when the vision graph has them. */
  keyMetric?: Float32Array;
  /** Runs the projector on features [n, featureSize] → embeddings [n, hidden] (methods that merge tokens). */
  project(features: Float32Array, dims: [number, number]): Promise<Float32Array>;
}

/** What a prefill-pruning method decided. */
export interface PruneResult {
  /** Kept token indices per image, ascending: the only visual tokens of the turn that enter the LLM. */
  kept: KeptTokens;
  /** Embeddings to feed in place of the kept tokens' own, [kept, hidden] in prompt order (merging methods). */
  embeds?: Float32Array;
}

/** One in-LLM drop: from `layer` on, only the turn's visual tokens that survive are attended. */
export interface DropStage {
  layer: number;
  /** How many of the turn's `n` visual tokens survive this stage (ranked by the last prompt token's attention). */
  keep(n: number): number;
}

export interface SparsityMethod<P extends PolicyValue = PolicyValue> {
  /** The policy's `method`. */
  readonly name: string;
  /** One line for `--help` and docs, with the paper it follows. */
  readonly summary: string;
  /** A policy value of this method, checked and completed with defaults; throws OPTION_INVALID naming the field. */
  validate(raw: Readonly<Record<string, unknown>>): P;
  /** A short human label ("SparseVILA keep 50% · retrieve 25%"): tables, the trace's run.start, the profiler. */
  label(policy: P): string;
  /** Flags the CLI offers for this method, and the raw policy they give (validated afterwards). */
  cli?: { flags: Record<string, CliFlag>; policy(values: CliValues): Record<string, unknown> };
  /** The knobs `sparsevila tune` searches for this method; a method without one is not tunable. */
  tune?: TuneSpace;

  /** Salience the encode step scores tokens by. Default 'auto'. */
  salience?(policy: P): SalienceSource;
  /** Prefill pruning: which tokens of each image enter the LLM. Default: all. */
  prune?(policy: P, tokens: VisualTokens): PruneResult | Promise<PruneResult>;
  /** Visual tokens that will enter the LLM for `images` images, known before encoding (memory checks). Default: all. */
  keptCount?(policy: P, tokensPerImage: readonly number[]): number;
  /** Rotary positions of the kept tokens. Default 'original'. */
  positions?(policy: P): PositionMode;
  /** In-LLM drops at prefill (FastV, PyramidDrop); they stay for every later turn. Default none. */
  drops?(policy: P): DropStage[];
  /** Query-aware retrieval for decode, scored on the turn's question. Default none: decode attends every retained token. */
  retrieve?(policy: P): RetrieveBudget | undefined;
}
