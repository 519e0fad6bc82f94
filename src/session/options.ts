/**
 * A chat's options and every default they take, resolved once when the chat is made: the turn steps read
 * the resolved value, never `?? default` of their own.
 */
import { InputError } from '../errors.js';
import { defaultMemoryLimit, type ChunkRule } from '../runtime/memory.js';
import type { PolicyValue, SparsityMethod } from '../sparsity/method.js';
import { DENSE, sparsityMethod, validatePolicy, type SparsityPolicy } from '../sparsity/registry.js';
import type { Tracer } from '../trace/tracer.js';
import { validateSampling, type Sampling } from './sampling.js';

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
  /**
   * The most bytes one prefill chunk's attention scores may take (heads × chunk × context × 4, float32): past that
   * length chunks shrink (to 32 rows at the least), so long prompts do not grow prefill memory with the context.
   * Default 256 MiB, which keeps 512-row chunks up to ~9k tokens of context on a 14-head model. Infinity: every
   * chunk is `prefillChunk` rows.
   */
  prefillScoreBytes?: number;
  /** Images / video frames per vision-tower call: bounds the tower's activations on long videos. Default 8. */
  visionBatch?: number;
  /**
   * Refuse a turn whose estimated memory (KV cache, prefill chunk, vision batch, visual embeddings; see
   * runtime/memory.ts) exceeds this many bytes, before any work. Default: half of this machine's memory.
   */
  memoryLimit?: number;
  /** An optional system message, rendered by the chat template. */
  system?: string;
  /** Default dense. Any registered method's policy (see `registerSparsityMethod`). */
  policy?: SparsityPolicy;
  /** Where trace events go (default: a tracer with no sinks, which costs nothing). */
  tracer?: Tracer;
  /**
   * Run a dense twin beside the chat and report, per turn, token agreement, per-step KL and retrieval
   * recall against it (see fidelity.ts). Roughly doubles the work.
   */
  fidelity?: boolean;
}

export const CHAT_DEFAULTS = {
  maxNewTokens: 128,
  minNewTokens: 0,
  prefillChunk: 512,
  prefillScoreBytes: 256 * 1024 * 1024,
  visionBatch: 8,
  sampling: { kind: 'greedy' } as Sampling,
} as const;

/** ChatOptions with every default applied and every value checked, and the policy's method looked up. */
export interface ResolvedOptions {
  maxNewTokens: number;
  minNewTokens: number;
  sampling: Sampling;
  prefillChunk: number;
  prefillScoreBytes: number;
  visionBatch: number;
  memoryLimit: number;
  system?: string;
  policy: PolicyValue;
  method: SparsityMethod;
  fidelity: boolean;
}

/** The chat's prefill chunk rule on a model with `heads` attention heads: what its prefills and its dense twin's split by. */
export function chatChunks(options: Pick<ResolvedOptions, 'prefillChunk' | 'prefillScoreBytes'>, heads: number): ChunkRule {
  return { rows: options.prefillChunk, scoreBytes: options.prefillScoreBytes, heads };
}

export function resolveChatOptions(o: ChatOptions): ResolvedOptions {
  const policy = validatePolicy(o.policy ?? DENSE);
  return {
    // Checked with each turn's overrides, when a turn starts (resolveLimits).
    maxNewTokens: o.maxNewTokens ?? CHAT_DEFAULTS.maxNewTokens,
    minNewTokens: o.minNewTokens ?? CHAT_DEFAULTS.minNewTokens,
    sampling: validateSampling(o.sampling ?? CHAT_DEFAULTS.sampling),
    prefillChunk: positiveInteger(o.prefillChunk ?? CHAT_DEFAULTS.prefillChunk, 'prefillChunk'),
    prefillScoreBytes: positiveBytes(o.prefillScoreBytes ?? CHAT_DEFAULTS.prefillScoreBytes, 'prefillScoreBytes'),
    visionBatch: positiveInteger(o.visionBatch ?? CHAT_DEFAULTS.visionBatch, 'visionBatch'),
    memoryLimit: positiveBytes(o.memoryLimit ?? defaultMemoryLimit(), 'memoryLimit'),
    system: o.system,
    policy,
    method: sparsityMethod(policy.method),
    fidelity: o.fidelity ?? false,
  };
}

/**
 * Refuses a policy the model cannot run: in-LLM drops after a layer it does not have would never happen, and
 * per-layer retrieve budgets must name every layer.
 */
export function checkPolicyFits(options: ResolvedOptions, numLayers: number): void {
  const { method, policy } = options;
  const perLayer = method.retrieve?.(policy)?.perLayer;
  if (perLayer && perLayer.length !== numLayers) {
    throw new InputError('OPTION_INVALID', `policy.retrieve.perLayer: the model has ${numLayers} LLM layers, the policy gives ${perLayer.length} budgets`, {
      subject: 'policy.retrieve.perLayer',
    });
  }
  for (const { layer } of method.drops?.(policy) ?? []) {
    if (layer >= numLayers) {
      throw new InputError(
        'OPTION_INVALID',
        `policy: ${method.name} drops tokens after layer ${layer}, but the model has ${numLayers} layers (pick 1 to ${numLayers - 1})`,
        {
          subject: 'policy',
        },
      );
    }
  }
}

/** A turn's limits: its overrides, else the chat's; checked. */
export function resolveLimits(overrides: DecodeLimits, chat: Required<DecodeLimits>): Required<DecodeLimits> {
  const maxNewTokens = overrides.maxNewTokens ?? chat.maxNewTokens;
  const minNewTokens = overrides.minNewTokens ?? chat.minNewTokens;
  positiveInteger(maxNewTokens, 'maxNewTokens');
  if (!(Number.isInteger(minNewTokens) && minNewTokens >= 0 && minNewTokens <= maxNewTokens)) {
    throw new InputError('OPTION_INVALID', `minNewTokens must be an integer from 0 to maxNewTokens (${maxNewTokens}), got ${minNewTokens}`, {
      subject: 'minNewTokens',
    });
  }
  return { maxNewTokens, minNewTokens };
}

/** A size in bytes: positive, or Infinity for no bound. */
function positiveBytes(v: number, field: string): number {
  if (!(typeof v === 'number' && v > 0)) {
    throw new InputError('OPTION_INVALID', `${field} must be a positive number of bytes (Infinity for none), got ${v}`, { subject: field });
  }
  return v;
}

function positiveInteger(v: number, field: string): number {
  if (!(Number.isInteger(v) && v > 0)) throw new InputError('OPTION_INVALID', `${field} must be a positive integer, got ${v}`, { subject: field });
  return v;
}
