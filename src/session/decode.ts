/**
 * Step 5 of a turn, decode: token by token over the turn's KV view, then the answer — its text, timings,
 * what the policy did, and (with `fidelity`) the dense twin's verdict. `decodeTokens` is the loop alone,
 * like gpt-fast's `decode_n_tokens`: sample, stop on end of sequence or length, feed the token back.
 */
import { InputError, RuntimeError } from '../errors.js';
import type { Turn } from './conversation.js';
import { resolveLimits, type DecodeLimits } from './options.js';
import { DecodeViews, type DecodeView, type Retrieved } from './retrieve-step.js';
import type { Answer, FidelityReport, SparsitySummary, Timings, TokenEvent } from './types.js';

interface Generated {
  tokens: number[];
  /** The logits each token was chosen from (kept only for the dense twin). */
  logits: Float32Array[];
  stopReason: Answer['stopReason'];
  firstTokenAt: number;
  decodeSeconds: number;
  /** Host↔device bytes of each decode step (GPU providers). */
  transfer?: { hostToDevice: number; deviceToHost: number }[];
}

/** Generates the turn's answer; `withLogits` adds each token's logits to its event. */
export async function* decode(turn: Turn, retrieved: Retrieved, overrides: DecodeLimits, withLogits: boolean): AsyncGenerator<TokenEvent, Answer> {
  const conv = turn.conversation;
  if (!conv.holds(turn)) throw new InputError('OPTION_INVALID', 'this turn was already decoded', { subject: 'decode' });
  const limits = resolveLimits(overrides, turn.options);
  const t0 = performance.now();
  const views = await DecodeViews.open(turn, retrieved);
  const viewMs = performance.now() - t0;
  const pre = retrieved.prefilled;
  const detok = turn.model.text.createStream({ skipSpecial: true, contextIds: pre.promptTokenIds.slice(-4) });
  let answer: Answer | undefined;
  try {
    let gen: Generated;
    try {
      gen = yield* decodeTokens(turn, pre.lastPromptLogits, views, limits, detok, withLogits);
    } finally {
      views.close();
    }
    const rest = detok.flush();
    if (rest) yield { text: rest };
    // viewMs: gathering the retrieval view, before the first step (a per-turn fixed cost).
    turn.span('decode', t0, { tokens: gen.tokens.length, viewMs });
    answer = await finishTurn(turn, retrieved, views, gen);
    return answer;
  } finally {
    // A decode that failed, or that its consumer stopped reading, leaves the conversation as before the turn.
    if (!answer) await conv.rollBack(turn);
  }
}

async function* decodeTokens(
  turn: Turn,
  first: Float32Array,
  views: DecodeViews,
  { maxNewTokens, minNewTokens }: Required<DecodeLimits>,
  detok: { push(id: number): string },
  withLogits: boolean,
): AsyncGenerator<TokenEvent, Generated> {
  const conv = turn.conversation;
  const { runtime, text } = turn.model;
  const keepLogits = conv.twin !== undefined;
  const out: Generated = { tokens: [], logits: [], stopReason: 'length', firstTokenAt: 0, decodeSeconds: 0 };
  const maxPositions = turn.model.spec.text.maxPositionEmbeddings;
  let logits = first;
  for (;;) {
    checkFinite(logits, out.tokens.length);
    const token = conv.sampler.next(out.tokens.length < minNewTokens ? withoutEos(logits, text.eosTokenIds) : logits);
    out.firstTokenAt ||= performance.now();
    if (text.eosTokenIds.includes(token)) {
      out.stopReason = 'eos';
      return out;
    }
    out.tokens.push(token);
    if (keepLogits) out.logits.push(logits);
    const piece = detok.push(token);
    const step = out.tokens.length - 1;
    turn.emit(() => ({ type: 'token', step, id: token, text: piece }));
    yield withLogits ? { id: token, text: piece, logits } : { id: token, text: piece };
    // The answer also ends where the model's rotary positions end (max_position_embeddings).
    if (out.tokens.length >= maxNewTokens || conv.nextPosition >= maxPositions) return out;
    const next = await runtime.step({ ...views.target(step + 1), ids: [token], positions: [conv.nextPosition], logits: 'last' });
    conv.nextPosition++;
    conv.rows++;
    const { attended, visualAttended } = views.attendedAt(step + 1);
    // A refresh step (dense) re-ranks by its attention and opens the next view: decode time too.
    const refreshStarted = performance.now();
    if (next.mass) await views.refresh(step + 1, next.mass);
    const seconds = next.seconds + (next.mass ? (performance.now() - refreshStarted) / 1000 : 0);
    out.decodeSeconds += seconds;
    logits = next.logits;
    const moved = next.transfer;
    if (moved) (out.transfer ??= []).push(moved);
    turn.emit(() => ({
      type: 'decode.step',
      step: step + 1,
      ms: seconds * 1000,
      attended,
      visualAttended,
      ...(moved && { hostToDeviceBytes: moved.hostToDevice, deviceToHostBytes: moved.deviceToHost }),
    }));
  }
}

/**
 * A turn's host↔device traffic: a step after the first moves only its token's inputs up and its logits (and
 * one KV row per layer) down; the first also uploads the past it decodes over (the turn's view), once.
 */
function deviceTransfer(steps: { hostToDevice: number; deviceToHost: number }[]): NonNullable<Timings['deviceTransfer']> {
  const steady = steps.at(-1)!;
  return {
    hostToDeviceBytesPerStep: steady.hostToDevice,
    deviceToHostBytesPerStep: steady.deviceToHost,
    pastUploadBytes: steps[0]!.hostToDevice - steady.hostToDevice,
  };
}

/** The conversation takes the answer; the turn's timings, sparsity summary and fidelity become its Answer. */
async function finishTurn(turn: Turn, retrieved: Retrieved, views: DecodeViews, gen: Generated): Promise<Answer> {
  const conv = turn.conversation;
  const { model } = turn;
  const pre = retrieved.prefilled;
  const { tokens, stopReason } = gen;
  // The last token of a length stop was never fed: it is not in the cache, and the next turn's delta
  // re-encodes its text after the cached ones.
  const cachedGenerated = stopReason === 'length' ? tokens.slice(0, -1) : tokens;
  const text = model.text.decode(tokens, { skipSpecial: true });
  const timings: Timings = {
    imageSeconds: pre.imageSeconds.images,
    visionSeconds: pre.imageSeconds.vision,
    prefillSeconds: pre.seconds,
    firstTokenSeconds: (gen.firstTokenAt - turn.started) / 1000,
    decodeSeconds: gen.decodeSeconds,
    decodeTokensPerSecond: cachedGenerated.length && gen.decodeSeconds ? cachedGenerated.length / gen.decodeSeconds : 0,
    totalSeconds: (performance.now() - turn.started) / 1000,
    promptTokens: pre.promptTokenIds.length,
    generatedTokens: tokens.length,
    cachedTokens: pre.cachedTokens,
    ...(gen.transfer && { deviceTransfer: deviceTransfer(gen.transfer) }),
  };
  const sparsity: SparsitySummary = {
    policy: turn.options.policy.method,
    visualTokens: conv.visualRows.length,
    turnImageTokens: pre.imageTokens.total,
    turnKeptTokens: pre.imageTokens.kept,
    turnKeptPerImage: pre.imageTokens.perImage,
    attendedVisualPerLayer: views.visualPerLayer(cachedGenerated.length) ?? Array(model.spec.text.numLayers).fill(conv.visualRows.length),
  };
  // The dense twin runs after the turn is timed: its work is reported as its own 'fidelity' span.
  const fidelity = conv.twin ? await twinVerdict(turn, retrieved, views, tokens, gen.logits, cachedGenerated) : undefined;
  // The conversation keeps the answer as the tokens decode WITH their special tokens: the cache holds
  // them, and the next turn's delta is the template's rendering after exactly that text.
  conv.messages.push(pre.userMessage, { role: 'assistant', content: model.text.decode(tokens) });
  conv.lastPrompt = pre.prompt;
  conv.lastGenerated = cachedGenerated;
  conv.lastUncached = tokens.slice(cachedGenerated.length);
  turn.emit(() => {
    const { deviceTransfer, ...metrics } = timings;
    return { type: 'turn.end', answer: text, stopReason, metrics: { ...metrics, ...deviceTransfer } };
  });
  conv.release(turn, true);
  return {
    text,
    tokenIds: tokens,
    promptTokenIds: pre.promptTokenIds,
    lastPromptLogits: pre.lastPromptLogits,
    stopReason,
    timings,
    sparsity,
    fidelity,
    video: pre.video,
  };
}

/** The dense twin's run of the same turn, teacher-forced on the chat's tokens (fidelity.ts). */
async function twinVerdict(
  turn: Turn,
  retrieved: Retrieved,
  views: DecodeViews,
  tokens: number[],
  logits: Float32Array[],
  cachedGenerated: number[],
): Promise<FidelityReport> {
  const conv = turn.conversation;
  const pre = retrieved.prefilled;
  const t0 = performance.now();
  const visualIndex = new Map(conv.visualRows.map((r, i) => [r, i]));
  const ids = (view: DecodeView) => view.subsets.map((rows) => rows.flatMap((r) => (visualIndex.has(r) ? [conv.visualIds[visualIndex.get(r)!]!] : [])));
  const report = await conv.twin!.turn({
    messages: [...conv.messages, pre.userMessage],
    layouts: pre.layouts,
    media: pre.media,
    imageEmbeds: pre.imageEmbedsAll,
    tokens,
    logits,
    attended: views.first && ids(views.first),
    // Decode step s fed token s − 1: the twin's feed of token t is step t + 1.
    ...(views.spans.length > 1 && { attendedFrom: views.spans.map((s) => ({ token: s.from - 1, attended: s.view && ids(s.view) })) }),
    cachedGenerated,
  });
  turn.span('fidelity', t0);
  turn.emit(() => ({ type: 'fidelity', metrics: { ...report } }));
  return report;
}

/**
 * Refuses logits holding NaN or ±Infinity (weights that overflow at this precision, a corrupt checkpoint): the
 * sampler would otherwise return a garbage token silently. A pass over one vocabulary row per step.
 */
function checkFinite(logits: Float32Array, step: number): void {
  for (let id = 0; id < logits.length; id++) {
    if (Number.isFinite(logits[id]!)) continue;
    const where = step === 0 ? "the prompt's last position" : `decode step ${step}`;
    throw new RuntimeError(
      'NON_FINITE',
      `the model's logits at ${where} are not finite (vocabulary id ${id} is ${logits[id]}): the weights or activations overflow or hold NaN; ` +
        `check the checkpoint's tensors, or load it in fp32`,
      { subject: 'logits' },
    );
  }
}

/** A copy of `logits` in which no end-of-sequence token can win. */
function withoutEos(logits: Float32Array, eos: readonly number[]): Float32Array {
  const out = logits.slice();
  for (const id of eos) out[id] = -Infinity;
  return out;
}
