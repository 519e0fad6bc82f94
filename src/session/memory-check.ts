/** The up-front memory check every turn passes before any of its work (runtime/memory.ts estimates). */
import { checkMemoryLimit, estimateTurnMemory } from '../runtime/memory.js';
import { familyOf } from '../families/registry.js';
import { budgetCount } from '../sparsity/budget.js';
import type { Conversation } from './conversation.js';

/** What a turn will put through the model, as far as it is known when it is checked. */
export interface TurnSize {
  /** Images / frames the turn still has to encode. */
  encode: number;
  /** The turn's visual tokens before pruning and how many enter the LLM; default: what the policy plans for `encode`. */
  visual?: { total: number; kept: number };
  /** With `visual`: the images they came from. */
  images?: number;
  /** The turn's exact prompt length once it is built; default: its kept visual tokens. */
  promptTokens?: number;
  /** A video's frames: their size (ffprobe), which sizes a native-resolution model's tokens. */
  video?: { framePixels: number };
  /** Native pixel counts of the turn's image files, from their headers (media/image.ts imagePixelCounts). */
  imagePixels?: readonly number[];
  /** The turn in words, for the message ("8 frame(s) of clip.mp4"). */
  what: string;
}

/** Refuses a turn that would exceed the chat's `memoryLimit` (MEMORY_LIMIT), before any of its work. */
export function checkTurnMemory(conv: Conversation, size: TurnSize): void {
  const { model, options } = conv;
  const { policy, method } = options;
  const spec = model.spec;
  // Tokens per image before encoding: each image's own from its header, or the processor's largest.
  const family = familyOf(spec);
  const video = size.video && family.videoFootprint?.(spec, model.processor, size.video.framePixels, size.encode);
  const tokens = video
    ? [video.tokens]
    : Array.from({ length: size.encode }, (_, i) => family.footprint(spec, model.processor, size.imagePixels?.[i] ?? size.video?.framePixels).tokens);
  const total = tokens.reduce((a, n) => a + n, 0);
  const visual = size.visual ?? { total, kept: method.keptCount?.(policy, tokens) ?? total };
  const prompt = size.promptTokens ?? visual.kept;
  const rowsAfter = conv.rows + prompt + options.maxNewTokens;
  const visualAfter = conv.visualRows.length + visual.kept;
  const retrieve = method.retrieve?.(policy);
  const images = conv.imagesSeen + (size.visual ? (size.images ?? 0) : tokens.length);
  const retrieved = retrieve ? Math.min(visualAfter, budgetCount(retrieve.budget, visualAfter) + retrieve.minPerImage * images) : 0;
  const estimate = estimateTurnMemory(spec, {
    cachedRows: conv.rows,
    kvType: model.runtime.kvType,
    promptTokens: prompt,
    maxNewTokens: options.maxNewTokens,
    chunk: options.prefillChunk,
    chunkScoreBytes: options.prefillScoreBytes,
    frames: size.encode,
    visionBatch: options.visionBatch,
    imagePixels: size.imagePixels,
    viewRows: retrieve ? rowsAfter - visualAfter + retrieved : 0,
    // At least this: the twin also holds what earlier turns pruned.
    twinRows: options.fidelity ? rowsAfter + visual.total - visual.kept : 0,
    processor: model.processor,
    framePixels: size.video?.framePixels,
    embedBytes: video?.embedBytes,
  });
  checkMemoryLimit(estimate, options.memoryLimit, `${size.what}, ${conv.rows + prompt} tokens in the cache after its prompt`);
}
