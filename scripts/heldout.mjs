/**
 * The held-out conversations a trained demo model is judged on, shared by the benchmarks that judge it. The
 * split, the rendering and the scoring rules live in the package (src/world/heldout.ts, also the tuner's named
 * workloads); this file re-exports them and adds the benchmarks' shared command line.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { world } from 'sparsevila-ts/testing';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const { heldOutConversations, renderMedia, isCorrect, captionCellsRight, CAPTION_PROMPT } = world;

/**
 * The command line every demo-model benchmark takes — --quick, --model DIR (default the shipped demo model),
 * --count N, --out DIR (default bench-results/), --threads N — plus `extra` options; model and out resolved.
 */
export function demoBenchArgs(extra = {}) {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      model: { type: 'string' },
      count: { type: 'string' },
      out: { type: 'string' },
      threads: { type: 'string' },
      ...extra,
    },
    strict: true,
  });
  return {
    args: values,
    model: path.resolve(values.model ?? path.join(REPO, 'src/models/sparsevila-demo')),
    out: path.resolve(values.out ?? path.join(REPO, 'bench-results')),
    threads: values.threads ? Number(values.threads) : undefined,
  };
}
