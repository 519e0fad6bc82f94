/**
 * Command-line flags of the sparsity methods: each method declares the flags it reads (sparsity/method.ts),
 * the registry merges them for the CLI. The keep-budget flags are shared by every method that keeps a share.
 */
import { parseBudget, type KeepBudget } from './budget.js';

/** A command-line flag a method reads (node:util parseArgs spec, plus its help line). */
export interface CliFlag {
  type: 'string' | 'boolean';
  help: string;
  /** The value's name in `--help` (`--keep B`); default V. */
  arg?: string;
}

export type CliValues = Readonly<Record<string, string | boolean | undefined>>;

/** The keep-budget flags every method that keeps a top share at prefill reads. */
export const KEEP_FLAGS: Record<string, CliFlag> = {
  keep: { type: 'string', arg: 'B', help: 'tokens kept per image at prefill: a ratio with a decimal point or % (0.5, 50%), or a count (64); default 0.5' },
  'keep-scope': { type: 'string', arg: 'S', help: "per-image (default) or global (one top-k across the turn's images / frames)" },
};

/** A keep budget from KEEP_FLAGS (validated later, with the rest of the policy). */
export function keepFromFlags(v: CliValues): Partial<KeepBudget> {
  return { budget: parseBudget(String(v.keep ?? '0.5'), '--keep'), scope: (v['keep-scope'] as KeepBudget['scope'] | undefined) ?? 'per-image' };
}
