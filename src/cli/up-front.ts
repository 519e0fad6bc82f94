/**
 * Checks a command makes before it loads a model: loading takes seconds to minutes (graph builds), so a bad
 * flag must not wait for it, and must be named as the user typed it. The rules themselves are the session's
 * (session/options.ts) and the registry's; these only run them early and name the flag.
 */
import fs from 'node:fs';
import { InputError, SparseVilaError } from '../errors.js';
import type { ModelSpecBase } from '../checkpoint/spec.js';
import { checkPolicyFits, resolveChatOptions, resolveLimits, type ChatOptions } from '../session/options.js';
import type { CliValues, PolicyValue } from '../sparsity/method.js';
import { cliFlags, sparsityMethod, sparsityMethods } from '../sparsity/registry.js';

/** The flag that sets each chat option (subjects of session/options.ts and session/sampling.ts errors). */
const CHAT_OPTION_FLAGS: Record<string, string> = {
  maxNewTokens: '--max-new-tokens',
  minNewTokens: '--min-new-tokens',
  temperature: '--temperature',
  topP: '--top-p',
  seed: '--seed',
  prefillChunk: '--prefill-chunk',
  prefillScoreBytes: '--prefill-scores',
  visionBatch: '--vision-batch',
  memoryLimit: '--memory-limit',
};

/** The chat's options checked by the session's own rules (resolveChatOptions, resolveLimits), errors naming the flag. */
export function checkChatOptions(options: ChatOptions): void {
  try {
    resolveLimits({}, resolveChatOptions(options));
  } catch (err) {
    const flag = err instanceof SparseVilaError && err.subject !== undefined ? CHAT_OPTION_FLAGS[err.subject] : undefined;
    if (flag === undefined) throw err;
    throw new InputError('OPTION_INVALID', `${flag}: ${err instanceof Error ? err.message : String(err)}`, { subject: flag, cause: err });
  }
}

/**
 * Sparsity flags read only by methods other than the chosen one (`--fastv-layer` under `--policy dense`)
 * would be silently ignored: refused, naming the flag and the methods that read it.
 */
export function checkPolicyFlags(values: CliValues): void {
  const chosen = sparsityMethod(values.policy ?? 'dense');
  const own = chosen.cli?.flags ?? {};
  for (const name of Object.keys(cliFlags())) {
    if (name === 'policy' || values[name] === undefined || name in own) continue;
    const readers = sparsityMethods()
      .filter((m) => m.cli && name in m.cli.flags)
      .map((m) => m.name);
    throw new InputError(
      'OPTION_INVALID',
      `--${name} is read by --policy ${readers.join(' / ')}, not by --policy ${chosen.name}: drop it or change the policy`,
      {
        subject: `--${name}`,
      },
    );
  }
}

/**
 * In-LLM drops after a layer the model does not have: the session's rule (checkPolicyFits, which a chat runs
 * when it is made), with the error naming the method's flag that sets the layers.
 */
export function checkDropLayers(policy: PolicyValue, spec: ModelSpecBase): void {
  try {
    checkPolicyFits(resolveChatOptions({ policy }), spec.text.numLayers);
  } catch (err) {
    if (!(err instanceof SparseVilaError) || err.subject !== 'policy') throw err;
    const method = sparsityMethod(policy.method);
    const flag = Object.keys(method.cli?.flags ?? {}).find((f) => /layers?$/.test(f));
    if (flag === undefined) throw err;
    throw new InputError('OPTION_INVALID', `--${flag}: ${err.message.replace(/^policy: /, '')}`, { subject: `--${flag}`, cause: err });
  }
}

/** Opens (creating, not truncating) a file the command will write at the end, so an unwritable path fails now. */
export function checkWritable(file: string | undefined, flag: string): void {
  if (file === undefined) return;
  try {
    fs.closeSync(fs.openSync(file, 'a'));
  } catch (cause) {
    throw new InputError('OPTION_INVALID', `${flag} ${file} cannot be written: ${(cause as Error).message}`, { subject: flag, cause });
  }
}
