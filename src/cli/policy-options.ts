/**
 * Sparsity policy flags shared by commands that run a chat: every registered method's flags (sparsity/
 * registry.ts parses them into a policy with `policyFromFlags` and writes their help with `cliHelp`), or a
 * policy file (`--policy-file`: a policy value as JSON, what `sparsevila tune` writes as policy.json).
 */
import fs from 'node:fs';
import { InputError, SparseVilaError } from '../errors.js';
import type { CliValues, PolicyValue } from '../sparsity/method.js';
import { cliFlags, policyFromFlags, validatePolicy } from '../sparsity/registry.js';
import { checkPolicyFlags } from './up-front.js';

export const POLICY_FILE_HELP = `  --policy-file FILE     the sparsity policy as a JSON value ({"method": "sparsevila", "keep": …}), e.g. the
                         policy.json \`sparsevila tune\` writes; instead of the sparsity flags
`;

/** node:util parseArgs options for every registered method's flags. */
export function policyOptionSpec(): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(Object.entries(cliFlags()).map(([name, f]) => [name, { type: f.type }]));
}

/** The policy a command's flags give: `--policy-file`'s value, or the sparsity flags' (checked, each flag named on error). */
export function policyOfFlags(values: CliValues, file: string | undefined): PolicyValue {
  if (file === undefined) {
    checkPolicyFlags(values);
    return policyFromFlags(values);
  }
  const flag = Object.keys(cliFlags()).find((f) => values[f] !== undefined);
  if (flag) throw new InputError('OPTION_INVALID', `--${flag} and --policy-file both set the policy: give one of them`, { subject: `--${flag}` });
  return readPolicyFile(file);
}

/** A policy value from a JSON file, validated by its method; errors name the file (and the field). */
export function readPolicyFile(file: string): PolicyValue {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new InputError('OPTION_INVALID', `--policy-file ${file}: not a readable JSON file: ${(cause as Error).message}`, { subject: '--policy-file', cause });
  }
  try {
    return validatePolicy(raw);
  } catch (err) {
    if (!(err instanceof SparseVilaError)) throw err;
    throw new InputError('OPTION_INVALID', `--policy-file ${file}: ${err.message}`, { subject: err.subject ?? '--policy-file', cause: err });
  }
}
