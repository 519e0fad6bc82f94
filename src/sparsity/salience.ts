/**
 * Visual-token salience from the vision tower's own feature-layer self-attention, averaged over heads
 * (docs/design.md, "The SparseVILA path"): the CLS row on towers with a CLS token, otherwise the mean
 * attention each token receives. The vision graph computes both reductions; this picks and aligns them with
 * the tokens the LLM sees (the `default` strategy drops tower token 0).
 */
import type { LlavaSpec } from '../checkpoint/spec.js';
import { InputError } from '../errors.js';
import type { VisionResult } from '../runtime/protocol.js';
import { policyFieldError } from './budget.js';

/**
 * Salience source: `auto` = CLS attention on towers with a CLS token, attention received otherwise;
 * `{ summary }` = mean attention from the listed leading tower tokens (RADIO-style summary tokens; the
 * vision graph returns the first 8 tokens' rows).
 */
export type SalienceSource = 'auto' | 'cls' | 'received' | { summary: number[] };

/** A salience source from a policy value, or OPTION_INVALID naming `field`. */
export function validateSalienceSource(v: unknown, field: string): SalienceSource {
  if (typeof v === 'object' && v !== null) {
    const rows = (v as { summary?: unknown }).summary;
    if (!Array.isArray(rows) || !rows.length || !rows.every((i) => Number.isInteger(i) && i >= 0 && i < 8)) {
      policyFieldError(`${field}.summary`, `must be a non-empty list of leading token indices in 0..7, got ${JSON.stringify(rows)}`);
    }
    return { summary: rows as number[] };
  }
  if (v !== 'auto' && v !== 'cls' && v !== 'received')
    policyFieldError(field, `must be 'auto', 'cls', 'received' or { summary: [indices] }, got ${JSON.stringify(v)}`);
  return v;
}

export interface ImageSalience {
  /** One score per LLM image token, in token order. */
  scores: Float32Array;
  /** The patch grid the scores lie on (row-major), after any leading non-patch tokens. */
  grid: { rows: number; cols: number };
  /** Leading tokens that are not patches (CLIP's CLS under the `full` strategy). */
  leading: number;
  source: 'cls' | 'received' | 'summary';
}

export function resolveSalienceSource(spec: LlavaSpec, source: SalienceSource): 'cls' | 'received' | 'summary' {
  if (typeof source === 'object') {
    const tokens = spec.vision.numPositions;
    const bad = source.summary.find((i) => i >= Math.min(8, tokens));
    if (bad !== undefined) {
      throw new InputError('OPTION_INVALID', `summary token ${bad} is not among the tower's first ${Math.min(8, tokens)} tokens`, {
        subject: 'policy.salience.summary',
      });
    }
    return 'summary';
  }
  if (source === 'auto') return spec.vision.kind === 'clip' ? 'cls' : 'received';
  if (source === 'cls' && spec.vision.kind !== 'clip') {
    throw new InputError('OPTION_INVALID', `salience 'cls' needs a tower with a CLS token; ${spec.vision.kind} has none (use 'received')`, {
      subject: 'policy.salience',
    });
  }
  return source;
}

/** Salience per image, aligned with the LLM's image tokens. */
export function imageSalience(spec: LlavaSpec, vision: VisionResult, source: SalienceSource): ImageSalience[] {
  const kind = resolveSalienceSource(spec, source);
  const rows =
    kind === 'summary'
      ? summaryAttention(vision, (source as { summary: number[] }).summary, spec.vision.numPositions)
      : kind === 'cls'
        ? vision.clsAttention
        : vision.meanAttention;
  if (!rows) {
    throw new InputError('OPTION_INVALID', 'the vision feature layer is the embedding output (layer 0): it has no attention to score salience by', {
      subject: 'vision_feature_layer',
    });
  }
  const n = vision.featureDims[0]!;
  const positions = spec.vision.numPositions;
  const skip = spec.selectStrategy === 'default' ? 1 : 0;
  const grid = { rows: spec.vision.gridSize, cols: spec.vision.gridSize };
  return Array.from({ length: n }, (_, i) => ({
    scores: rows.slice(i * positions + skip, (i + 1) * positions),
    grid,
    leading: spec.imageTokenCount - grid.rows * grid.cols,
    source: kind,
  }));
}

/** [images, tokens]: the mean of the chosen leading rows of the head-mean attention. */
function summaryAttention(vision: VisionResult, summary: number[], tokens: number): Float32Array | undefined {
  const rows = vision.leadingRows;
  if (!rows) return undefined;
  const images = vision.featureDims[0]!;
  const r = rows.length / (images * tokens);
  const out = new Float32Array(images * tokens);
  for (let i = 0; i < images; i++) {
    for (const s of summary) {
      const row = rows.subarray((i * r + s) * tokens, (i * r + s + 1) * tokens);
      for (let j = 0; j < tokens; j++) out[i * tokens + j]! += row[j]! / summary.length;
    }
  }
  return out;
}
