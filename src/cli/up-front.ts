/**
 * Checks a command makes before it loads a model: loading takes seconds to minutes (graph builds), so a bad
 * flag must not wait for it, and must be named as the user typed it. The rules themselves are the session's
 * (session/options.ts) and the registry's; these only run them early and name the flag.
 */
import fs from 'node:fs';
import { InputError, SparseVilaError } from '../errors.js';
import type { LlavaSpec } from '../checkpoint/spec.js';
import { resolveChatOptions, resolveLimits, type ChatOptions } from '../session/options.js';
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
 * In-LLM drops after a layer the model does not have would never run: refused once the model's layer count is
 * known, naming the method's flags that set the layers.
 */
export function checkDropLayers(policy: PolicyValue, spec: LlavaSpec): void {
  const method = sparsityMethod(policy.method);
  const layers = spec.text.numLayers;
  for (const { layer } of method.drops?.(policy) ?? []) {
    if (layer < layers) continue;
    const flags = Object.keys(method.cli?.flags ?? {}).filter((f) => /layers?$/.test(f));
    const subject = flags.length ? `--${flags[0]}` : 'policy';
    throw new InputError(
      'OPTION_INVALID',
      `${subject}: ${method.name} drops tokens after layer ${layer}, but the model has ${layers} layers: pick layers from 1 to ${layers - 1}`,
      { subject },
    );
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
