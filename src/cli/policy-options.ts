/**
 * Sparsity policy flags shared by commands that run a chat: every registered method's flags (sparsity/
 * registry.ts parses them into a policy with `policyFromFlags` and writes their help with `cliHelp`).
 */
import { cliFlags } from '../sparsity/registry.js';

/** node:util parseArgs options for every registered method's flags. */
export function policyOptionSpec(): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(Object.entries(cliFlags()).map(([name, f]) => [name, { type: f.type }]));
}
