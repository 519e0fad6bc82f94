/**
 * Visual-token salience from the vision tower's own feature-layer self-attention, averaged over heads
 * (docs/design.md, "The SparseVILA path"): the CLS row on towers with a CLS token, otherwise the mean
 * attention each token receives (Qwen2-VL: at a full-attention block, summed over each merged 2×2 unit). The
 * family's encode step computes the candidates per LLM token (families/family.ts SalienceInputs); this picks one.
 */
import type { MediaLayout, SalienceInputs } from '../families/family.js';
import { InputError } from '../errors.js';
import { policyFieldError } from './budget.js';

/**
 * Salience source: `auto` = CLS attention on towers with a CLS token, attention received otherwise;
 * `{ summary }` = mean attention from the listed leading tower tokens (RADIO-style summary tokens; the
 * vision graph returns the first 8 tokens' rows); `{ block }` = attention received at that tower block, on towers that
 * score several (Qwen2-VL: any full-attention block; the default is the last one).
 */
export type SalienceSource = 'auto' | 'cls' | 'received' | { summary: number[] } | { block: number };

/** A salience source from a policy value, or OPTION_INVALID naming `field`. */
export function validateSalienceSource(v: unknown, field: string): SalienceSource {
  if (typeof v === 'object' && v !== null && 'block' in v) {
    const block = (v as { block: unknown }).block;
    if (!Number.isInteger(block) || (block as number) < 0) policyFieldError(`${field}.block`, `must be a tower block index ≥ 0, got ${JSON.stringify(block)}`);
    return { block: block as number };
  }
  if (typeof v === 'object' && v !== null) {
    const rows = (v as { summary?: unknown }).summary;
    if (!Array.isArray(rows) || !rows.length || !rows.every((i) => Number.isInteger(i) && i >= 0 && i < 8)) {
      policyFieldError(`${field}.summary`, `must be a non-empty list of leading token indices in 0..7, got ${JSON.stringify(rows)}`);
    }
    return { summary: rows as number[] };
  }
  if (v !== 'auto' && v !== 'cls' && v !== 'received')
    policyFieldError(field, `must be 'auto', 'cls', 'received', { summary: [indices] } or { block: index }, got ${JSON.stringify(v)}`);
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

/** Which score a source means on this tower: `auto` is the CLS row where the tower has a CLS token, else attention received. */
export function resolveSalienceSource(inputs: SalienceInputs, source: SalienceSource): 'cls' | 'received' | 'summary' {
  if (typeof source === 'object' && 'block' in source) {
    if (!inputs.atBlock?.(source.block)) {
      const blocks = inputs.blocks?.length ? `its full-attention blocks are ${inputs.blocks.join(', ')}` : 'it scores one layer only';
      throw new InputError('OPTION_INVALID', `salience block ${source.block} is not one this tower scores: ${blocks}`, { subject: 'policy.salience.block' });
    }
    return 'received';
  }
  if (typeof source === 'object') {
    const bad = source.summary.find((i) => i >= inputs.summaryRows);
    if (bad !== undefined) {
      throw new InputError('OPTION_INVALID', `summary token ${bad} is not among the tower's first ${inputs.summaryRows} tokens`, {
        subject: 'policy.salience.summary',
      });
    }
    return 'summary';
  }
  if (source === 'auto') return inputs.cls ? 'cls' : 'received';
  if (source === 'cls' && !inputs.cls) {
    throw new InputError('OPTION_INVALID', `salience 'cls' needs a tower with a CLS token; this one has none (use 'received')`, {
      subject: 'policy.salience',
    });
  }
  return source;
}

/** Salience per image, one score per LLM image token, on the image's token grid. */
export function imageSalience(inputs: readonly SalienceInputs[], layouts: readonly MediaLayout[], source: SalienceSource): ImageSalience[] {
  return inputs.map((input, i) => {
    const kind = resolveSalienceSource(input, source);
    const scores =
      typeof source === 'object' && 'block' in source
        ? input.atBlock!(source.block)
        : kind === 'summary'
          ? input.summary?.((source as { summary: number[] }).summary)
          : kind === 'cls'
            ? input.cls
            : input.received;
    if (!scores) {
      throw new InputError('OPTION_INVALID', 'the vision feature layer is the embedding output (layer 0): it has no attention to score salience by', {
        subject: 'vision_feature_layer',
      });
    }
    const { grid, leading } = layouts[i]!;
    return { scores, grid: { rows: grid.t * grid.rows, cols: grid.cols }, leading, source: kind };
  });
}
