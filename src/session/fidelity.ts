/**
 * Fidelity against a dense twin: a second KV cache on the same runtime that sees every turn densely (all
 * image tokens, no retrieval) and is teacher-forced on the sparse chat's tokens. Per turn it reports:
 *   - token agreement: the share of steps where the dense argmax equals the sparse token, and the first
 *     step where they differ (teacher forcing: both see the same prefix at every step);
 *   - per-step KL(dense ‖ sparse) of the next-token distributions;
 *   - retrieval recall per layer: the share of the dense step's attention mass over visual tokens that
 *     falls on the tokens the sparse step attended (its retrieval set, minus pruned tokens), averaged
 *     over the turn's decode steps.
 */
import type { MediaLayout } from '../families/family.js';
import type { ChunkRule } from '../runtime/memory.js';
import type { ChatMessage, PromptTokens } from '../text/index.js';
import type { VisualTokenId } from '../trace/schema.js';
import { positionRowsOf, prefill } from './prefill.js';
import { mediaTokenId, promptPositions, turnPrompt, type MediaKind } from './prompt.js';
import { argmax } from './sampling.js';
import type { FidelityReport, LoadedModel } from './types.js';

export interface SparseTurnRecord {
  messages: ChatMessage[];
  /** The turn's images: each one's token count and grid. */
  layouts: MediaLayout[];
  /** Images, or one video (video tokens). */
  media: MediaKind;
  /** Projected embeddings of every token of the turn's images (unpruned). */
  imageEmbeds?: Float32Array;
  tokens: number[];
  /** The sparse chat's logits for each generated token (step 0 = the prefill's last logits). */
  logits: Float32Array[];
  /** Per layer, the visual tokens the sparse decode attended (null: all). */
  attended: VisualTokenId[][] | null;
  /**
   * Where the attended sets changed during the decode (retrieval refreshes): from the feed of generated token
   * `token` on, the sparse steps attended `attended` (null: every retained token, a dense refresh step).
   */
  attendedFrom?: { token: number; attended: VisualTokenId[][] | null }[];
  /** Generated tokens that went into the sparse cache (a length stop leaves the last one out). */
  cachedGenerated: number[];
}

export class DenseTwin {
  private cache?: number;
  private nextPosition = 0;
  private rows = 0;
  private lastPrompt?: PromptTokens;
  private lastGenerated: number[] = [];
  private lastUncached: number[] = [];
  private imagesSeen = 0;
  /** Visual token id of each visual row, keyed by cache row. */
  private readonly visual = new Map<number, string>();

  /** `chunks`: the chat's prefill chunk rule, so the twin's float rounding follows the same chunks as the chat's. */
  constructor(
    private readonly model: LoadedModel,
    private readonly chunks: ChunkRule,
  ) {}

  async turn(record: SparseTurnRecord): Promise<FidelityReport> {
    const { model } = this;
    const rt = model.runtime;
    this.cache ??= await rt.createCache();
    const spec = model.spec;
    const prompt = turnPrompt(
      model,
      record.messages,
      this.lastPrompt && { prompt: this.lastPrompt, generatedIds: this.lastGenerated, uncachedIds: this.lastUncached },
      record.layouts,
      record.media,
    );
    prompt.imageSpans.forEach((span, img) => {
      for (let r = span.start; r < span.end; r++) this.visual.set(this.rows + r, key({ image: this.imagesSeen + img, token: r - span.start }));
    });
    const positions = promptPositions(model, prompt, record.layouts, this.nextPosition);
    const pre = await prefill(rt, {
      cache: this.cache,
      ids: prompt.ids,
      positions: positions.rows[0]!,
      positionRows: positionRowsOf(positions.rows),
      imageTokenId: mediaTokenId(model, record.media),
      imageRows: prompt.imageSpans.flatMap((s) => Array.from({ length: s.end - s.start }, (_, k) => s.start + k)),
      imageEmbeds: record.imageEmbeds,
      hidden: spec.text.hiddenSize,
      chunks: this.chunks,
      logits: 'last',
      pastRows: this.rows,
    });
    this.rows += prompt.ids.length;
    this.nextPosition = positions.next;
    this.imagesSeen += record.layouts.length;

    const kl: number[] = [];
    let agree = 0;
    let firstDivergence: number | null = null;
    const layers = spec.text.numLayers;
    const recallSum = new Float64Array(layers);
    let recallSteps = 0;
    const keysOf = (sets: VisualTokenId[][] | null) => sets?.map((ids) => new Set(ids.map(key))) ?? null;
    const changes = record.attendedFrom?.map((c) => ({ token: c.token, keys: keysOf(c.attended) }));
    let attendedKeys = keysOf(record.attended);
    const scored = attendedKeys !== null;
    let dense = pre.logits;
    for (let step = 0; step < record.tokens.length; step++) {
      const token = record.tokens[step]!;
      kl.push(klDivergence(dense, record.logits[step]!));
      if (argmax(dense) === token) agree++;
      else firstDivergence ??= step;
      // Feed exactly what the sparse chat fed (a length stop leaves the last token out of its cache).
      if (step >= record.cachedGenerated.length) break;
      for (const c of changes ?? []) if (c.token === step) attendedKeys = c.keys;
      const scoring = scored && step + 1 < record.tokens.length;
      const out = await rt.step({
        target: { cache: this.cache },
        ids: [token],
        positions: [this.nextPosition],
        logits: 'last',
        massWeights: scoring ? new Float32Array([1]) : undefined,
      });
      this.nextPosition++;
      this.rows++;
      dense = out.logits;
      if (scoring) {
        // A dense refresh step attended every retained token.
        out.mass!.forEach((m, l) => (recallSum[l]! += attendedKeys ? recall(m, this.rows, this.visual, attendedKeys[l]!) : 1));
        recallSteps++;
      }
    }
    this.lastPrompt = prompt;
    this.lastGenerated = record.cachedGenerated;
    this.lastUncached = record.tokens.slice(record.cachedGenerated.length);
    return {
      steps: record.tokens.length,
      tokenAgreement: record.tokens.length ? agree / record.tokens.length : 1,
      firstDivergence,
      klPerStep: kl,
      meanKl: kl.length ? kl.reduce((a, b) => a + b, 0) / kl.length : 0,
      retrievalRecall: scored && recallSteps ? Array.from(recallSum, (s) => s / recallSteps) : null,
    };
  }

  async close(): Promise<void> {
    if (this.cache !== undefined) await this.model.runtime.dropCache(this.cache);
  }
}

const key = (id: VisualTokenId) => `${id.image}:${id.token}`;

/** Share of the step's visual attention mass (heads summed) on the attended visual tokens. */
function recall(mass: Float32Array, columns: number, visual: Map<number, string>, attended: Set<string>): number {
  const heads = mass.length / columns;
  let all = 0;
  let hit = 0;
  for (const [row, id] of visual) {
    let m = 0;
    for (let h = 0; h < heads; h++) m += mass[h * columns + row]!;
    all += m;
    if (attended.has(id)) hit += m;
  }
  return all > 0 ? hit / all : 1;
}

export function klDivergence(pLogits: Float32Array, qLogits: Float32Array): number {
  const lp = logSoftmax(pLogits);
  const lq = logSoftmax(qLogits);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
  return Math.max(0, kl);
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const z = Math.log(sum) + max;
  return Float64Array.from(x, (v) => v - z);
}
