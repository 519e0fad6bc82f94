/**
 * Step 3 of a turn, prefill: the turn's prompt (the chat template's delta after the cached conversation),
 * with the pruned image tokens dropped, through the LLM into the KV cache. Kept tokens take their original
 * rotary positions unless the method compacts them; a method that drops tokens inside the LLM runs its drop
 * stages here; a method that retrieves gets the question's attention mass over the whole cache.
 */
import { InputError } from '../errors.js';
import type { MediaLayout } from '../families/family.js';
import type { ChatMessage, PromptTokens } from '../text/index.js';
import { MASKED } from '../runtime/protocol.js';
import type { DropStage } from '../sparsity/method.js';
import { topK } from '../sparsity/topk.js';
import type { VisualTokenId } from '../trace/schema.js';
import type { Conversation, Turn } from './conversation.js';
import { checkTurnMemory } from './memory-check.js';
import { chatChunks } from './options.js';
import { prefill as chunkedPrefill, positionRowsOf, type PositionRows, type PrefillInput, type PrefillOutput } from './prefill.js';
import type { Pruned } from './prune.js';
import { mediaKind, mediaTokenId, promptPositions, turnPrompt, userMessage, type MediaKind } from './prompt.js';
import type { VideoFrames } from './types.js';

export interface Prefilled {
  prompt: PromptTokens;
  /** The ids that entered the LLM (pruned image tokens removed). */
  promptTokenIds: number[];
  positions: number[];
  /** M-RoPE models: each entered token's temporal, height and width positions. */
  positionRows?: PositionRows;
  lastPromptLogits: Float32Array;
  /** Per-layer question→cache attention mass [heads, rows], when the policy retrieves. */
  mass: Float32Array[] | undefined;
  cachedTokens: number;
  seconds: number;
  imageSeconds: { images: number; vision: number };
  /** This turn's image tokens before pruning, how many entered the LLM, and how many of each image / frame. */
  imageTokens: { total: number; kept: number; perImage: number[] };
  /** Each image's token count and grid. */
  layouts: MediaLayout[];
  /** Embeddings of every token of the turn's images, unpruned (for a dense twin). */
  imageEmbedsAll?: Float32Array;
  /** The turn's video, when it took one. */
  video?: VideoFrames;
  /** The user message the turn added (the conversation keeps it once the turn is decoded). */
  userMessage: ChatMessage;
  /** Whether the turn's visual tokens are images or one video (video tokens). */
  media: MediaKind;
}

/** Holds the conversation for the turn and prefills it; a failure rolls the cache and the visual rows back. */
export async function prefillTurn(turn: Turn, text: string, pruned?: Pruned): Promise<Prefilled> {
  const t0 = performance.now();
  const conv = turn.conversation;
  conv.hold(turn);
  const images = pruned?.encoded.images ?? 0;
  turn.emit(() => ({ type: 'turn.start', text, images }));
  try {
    return await prefillBody(turn, text, pruned, t0);
  } catch (err) {
    await conv.rollBack(turn);
    throw err;
  }
}

async function prefillBody(turn: Turn, text: string, pruned: Pruned | undefined, t0: number): Promise<Prefilled> {
  const conv = turn.conversation;
  const { model, options } = turn;
  const { method, policy } = options;
  const spec = model.spec;
  const images = pruned?.encoded.images ?? 0;
  const media = mediaKind(model, pruned?.encoded.video !== undefined);
  const user = userMessage(text, images, media);
  const messages = [...conv.messages, user];
  const layouts = pruned?.encoded.layouts ?? [];
  const prompt = turnPrompt(
    model,
    messages,
    conv.lastPrompt && { prompt: conv.lastPrompt, generatedIds: conv.lastGenerated, uncachedIds: conv.lastUncached },
    layouts,
    media,
  );
  const kept = pruned?.kept ?? [];
  const all = promptPositions(model, prompt, layouts, conv.nextPosition);
  const compact = (method.positions?.(policy) ?? 'original') === 'compact' && all.rows.length === 1;
  const { ids, positions, positionRows, newVisual } = dropPruned(conv, prompt, kept, all.rows, compact);
  const visualTotal = layouts.reduce((a, l) => a + l.tokens, 0);

  // Rotary positions past the model's trained range: refused, as the prompt is known, before the cache grows.
  const maxPositions = spec.text.maxPositionEmbeddings;
  const lastPosition = compact ? (positions.at(-1) ?? conv.nextPosition - 1) : all.next - 1;
  if (lastPosition >= maxPositions) {
    throw new InputError(
      'CONTEXT_OVERFLOW',
      `the prompt would take rotary positions up to ${lastPosition}, past the model's max_position_embeddings (${maxPositions}): ` +
        `start a new chat, use fewer images or frames, or prune more (a keep budget with compact positions)`,
      { subject: 'max_position_embeddings' },
    );
  }

  // The exact prompt is known now: refuse it before the cache grows if it would not fit.
  checkTurnMemory(conv, {
    encode: 0,
    visual: { total: visualTotal, kept: newVisual.length },
    images,
    promptTokens: ids.length,
    what: images ? `${images} image(s) or frame(s)` : 'text',
  });

  // The question: rows after the turn's last visual token (every row on a text-only turn).
  const questionStart = newVisual.length ? newVisual.at(-1)!.offset + 1 : 0;
  const rowsBefore = conv.rows;
  for (const v of newVisual) {
    conv.visualRows.push(rowsBefore + v.offset);
    conv.visualIds.push(v.id);
  }
  const input: PrefillInput = {
    cache: conv.cache,
    ids,
    positions,
    positionRows,
    imageTokenId: mediaTokenId(model, media),
    imageRows: newVisual.map((v) => v.offset),
    imageEmbeds: pruned?.embeds,
    hidden: spec.text.hiddenSize,
    chunks: chatChunks(options, spec.text.numHeads),
    logits: 'last',
    pastRows: rowsBefore,
  };
  // Room for the prompt and the longest answer now: no doubling copy of the whole cache mid-turn.
  await model.runtime.reserveCache(conv.cache, rowsBefore + ids.length + options.maxNewTokens + 1);
  const drops = method.drops?.(policy) ?? [];
  const out: PrefillOutput = drops.length
    ? await stagedDropPrefill(conv, input, drops)
    : await chunkedPrefill(model.runtime, {
        ...input,
        massWeights: method.retrieve?.(policy) ? questionWeights(ids.length, questionStart) : undefined,
        columnBias: hiddenBias(conv.hidden, rowsBefore + ids.length),
      });
  conv.rows = rowsBefore + ids.length;
  conv.nextPosition = compact ? (positions.at(-1) ?? conv.nextPosition - 1) + 1 : all.next;
  conv.imagesSeen += images;
  turn.span('prefill', t0, { tokens: ids.length, visual: newVisual.length });
  const encoded = pruned?.encoded;
  return {
    prompt,
    promptTokenIds: ids,
    positions,
    positionRows,
    lastPromptLogits: out.logits.slice(),
    mass: out.mass,
    cachedTokens: rowsBefore,
    seconds: out.seconds,
    imageSeconds: encoded?.seconds ?? { images: 0, vision: 0 },
    imageTokens: { total: visualTotal, kept: newVisual.length, perImage: pruned ? kept.map((k) => k.length) : [] },
    layouts,
    imageEmbedsAll: encoded?.embeds,
    video: encoded?.video,
    userMessage: user,
    media,
  };
}

/**
 * The prompt without its pruned image tokens: ids, rotary positions (the temporal row, and all rows under
 * M-RoPE), and where the kept visual tokens sit. Kept tokens keep their original positions; with `compact`
 * (one position row only: M-RoPE positions are coordinates in the image, which re-packing would move) the
 * surviving tokens take consecutive positions.
 */
function dropPruned(conv: Conversation, prompt: PromptTokens, kept: number[][], rows: number[][], compact: boolean) {
  const keepRow = new Uint8Array(prompt.ids.length).fill(1);
  prompt.imageSpans.forEach((span, img) => {
    keepRow.fill(0, span.start, span.end);
    for (const k of kept[img]!) keepRow[span.start + k] = 1;
  });
  const ids: number[] = [];
  const kept3: number[][] = rows.map(() => []);
  const newVisual: { offset: number; id: VisualTokenId }[] = [];
  let spanIndex = 0;
  prompt.ids.forEach((id, row) => {
    while (spanIndex < prompt.imageSpans.length && row >= prompt.imageSpans[spanIndex]!.end) spanIndex++;
    if (!keepRow[row]) return;
    const span = prompt.imageSpans[spanIndex];
    if (span && row >= span.start && row < span.end)
      newVisual.push({ offset: ids.length, id: { image: conv.imagesSeen + spanIndex, token: row - span.start } });
    if (compact) kept3[0]!.push(conv.nextPosition + ids.length);
    else rows.forEach((r, i) => kept3[i]!.push(r[row]!));
    ids.push(id);
  });
  return { ids, positions: kept3[0]!, positionRows: positionRowsOf(kept3), newVisual };
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
 * In-LLM drops (FastV, PyramidDrop): at each stage's layer, rank the turn's surviving visual tokens by the
 * last prompt token's attention at the layer before, and hide the rest from that layer on. A pass computes
 * the attention; the cache is rolled back and the prompt prefilled again with the dropped tokens hidden from
 * the later layers (−1e9 column bias), once per stage. The extra passes make these baselines slower here
 * than in their papers: they are fidelity baselines.
 */
async function stagedDropPrefill(conv: Conversation, input: PrefillInput, stages: DropStage[]): Promise<PrefillOutput> {
  const { runtime, spec } = conv.model;
  const layers = spec.text.numLayers;
  const pastRows = input.pastRows!;
  const lastRow = new Float32Array(input.ids.length);
  lastRow[input.ids.length - 1] = 1;
  const columns = pastRows + input.ids.length;
  let seconds = 0;
  // Only this turn's visual tokens are candidates; earlier turns' drops stay as they were.
  const candidates = conv.visualRows.filter((r) => r >= pastRows);
  let surviving = candidates;
  for (const stage of stages) {
    if (stage.layer >= layers) break;
    const pass = await chunkedPrefill(runtime, { ...input, massWeights: lastRow, columnBias: hiddenBias(conv.hidden, columns) });
    seconds += pass.seconds;
    await runtime.truncateCache(conv.cache, pastRows);
    // Attention of the last prompt token at the layer before the drop, heads averaged.
    const mass = pass.mass![stage.layer - 1]!;
    const heads = mass.length / columns;
    const score = (r: number) => {
      let s = 0;
      for (let h = 0; h < heads; h++) s += mass[h * columns + r]!;
      return s;
    };
    const keep = new Set(topK(Float64Array.from(surviving, score), stage.keep(candidates.length)).map((i) => surviving[i]!));
    const dropped = surviving.filter((r) => !keep.has(r));
    for (let l = stage.layer; l < layers; l++) {
      const h = (conv.hidden[l] ??= new Set());
      for (const r of dropped) h.add(r);
    }
    surviving = surviving.filter((r) => keep.has(r));
  }
  const final = await chunkedPrefill(runtime, { ...input, columnBias: hiddenBias(conv.hidden, columns) });
  return { ...final, seconds: seconds + final.seconds };
}
