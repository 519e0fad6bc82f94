/**
 * The sparsity methods the session can run, by name. Built-in methods are one line each below; a method
 * from outside the package registers with `registerSparsityMethod`. Everything that needs to know about
 * methods — policy validation, labels, CLI flags and help — asks this registry, never a name.
 */
import { InputError } from '../errors.js';
import type { CliFlag, CliValues } from './flags.js';
import type { PolicyValue, SparsityMethod } from './method.js';
import { dense, type DensePolicy } from './methods/dense.js';
import { divprune, type DivPrunePolicy } from './methods/divprune.js';
import { fastv, type FastVPolicy } from './methods/fastv.js';
import { pdrop, type PyramidDropPolicy } from './methods/pdrop.js';
import { random, type RandomPolicy } from './methods/random.js';
import { sparsevila, type SparseVilaPolicy } from './methods/sparsevila.js';
import { stride, type StridePolicy } from './methods/stride.js';
import { visionzip, type VisionZipPolicy } from './methods/visionzip.js';

/** A policy of a built-in method, or of a registered one (any `{ method, … }`). */
export type SparsityPolicy =
  DensePolicy | SparseVilaPolicy | FastVPolicy | PyramidDropPolicy | VisionZipPolicy | RandomPolicy | StridePolicy | DivPrunePolicy | PolicyValue;

const methods = new Map<string, SparsityMethod<any>>();

/**
 * Makes a method available to policies, the CLI and the trace under `method.name`. Refuses a name already
 * taken and a CLI flag another method declares with another type.
 */
export function registerSparsityMethod<P extends PolicyValue>(method: SparsityMethod<P>): void {
  const { name } = method;
  if (typeof name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new InputError('OPTION_INVALID', `a sparsity method's name must be lower-case letters, digits and '-', got ${JSON.stringify(name)}`, {
      subject: 'method.name',
    });
  }
  if (methods.has(name)) throw new InputError('OPTION_INVALID', `a sparsity method named '${name}' is already registered`, { subject: 'method.name' });
  const taken = cliFlags();
  for (const [flag, spec] of Object.entries(method.cli?.flags ?? {})) {
    if (flag === 'policy')
      throw new InputError('OPTION_INVALID', `sparsity method '${name}' declares --policy, which selects the method`, { subject: `--${flag}` });
    if (taken[flag] && taken[flag].type !== spec.type) {
      throw new InputError('OPTION_INVALID', `sparsity method '${name}' declares --${flag} as ${spec.type}; another method has it as ${taken[flag].type}`, {
        subject: `--${flag}`,
      });
    }
  }
  methods.set(name, method);
}

for (const m of [dense, sparsevila, fastv, pdrop, visionzip, random, stride, divprune] as SparsityMethod<any>[]) registerSparsityMethod(m);

/** The registered method of that name, or OPTION_INVALID listing the known ones. */
export function sparsityMethod(name: unknown): SparsityMethod {
  const m = typeof name === 'string' ? methods.get(name) : undefined;
  if (!m)
    throw new InputError('OPTION_INVALID', `policy.method: unknown sparsity policy '${String(name)}'; known: ${[...methods.keys()].join(', ')}`, {
      subject: 'policy.method',
    });
  return m;
}

export function sparsityMethods(): SparsityMethod[] {
  return [...methods.values()];
}

export const DENSE: DensePolicy = { method: 'dense' };

/** A policy value checked and completed by its method (OPTION_INVALID naming the field otherwise). */
export function validatePolicy(p: unknown): PolicyValue {
  if (typeof p !== 'object' || p === null)
    throw new InputError('OPTION_INVALID', `policy: expected an object, got ${JSON.stringify(p)}`, { subject: 'policy' });
  const method = sparsityMethod((p as { method?: unknown }).method);
  const policy = method.validate(p as Record<string, unknown>);
  if (policy.method !== method.name)
    throw new InputError('OPTION_INVALID', `sparsity method '${method.name}' validated a policy of method '${policy.method}'`, { subject: 'policy.method' });
  return policy;
}

/** The policy's short human label, by its method. */
export function policyLabel(policy: PolicyValue): string {
  return sparsityMethod(policy.method).label(policy);
}

/**
 * Whether the policy's prefill needs the question's attention mass: methods that retrieve score the cache by
 * it, methods that drop inside the LLM rank by the last prompt token's. The chat loads that graph up front.
 */
export function needsAttentionMass(policy: PolicyValue): boolean {
  const m = sparsityMethod(policy.method);
  return m.retrieve?.(policy) !== undefined || (m.drops?.(policy).length ?? 0) > 0;
}

/** Every registered method's CLI flags (node:util parseArgs options), `--policy` first. */
export function cliFlags(): Record<string, CliFlag> {
  const flags: Record<string, CliFlag> = { policy: { type: 'string', help: '' } };
  for (const m of methods.values()) Object.assign(flags, m.cli?.flags);
  return flags;
}

/** The policy the CLI flags give (`--policy` names the method; default dense), validated. */
export function policyFromFlags(values: CliValues): PolicyValue {
  const method = sparsityMethod(values.policy ?? 'dense');
  return validatePolicy(method.cli ? method.cli.policy(values) : { method: method.name });
}

/** `--help`'s sparsity section, from the registered methods: each flag once, with the methods that read it. */
export function cliHelp(): string {
  const pad = (s: string) => (s.length < HELP_INDENT - 2 ? `  ${s.padEnd(HELP_INDENT - 2)}` : `  ${s}\n${''.padEnd(HELP_INDENT)}`);
  const lines = [`Sparsity options:`, pad('--policy P') + wrap(`${[...methods.keys()].join(', ')} (default dense)`)];
  for (const m of methods.values()) lines.push(''.padEnd(HELP_INDENT) + wrap(`${m.name}: ${m.summary}`));
  const readers = new Map<string, { flag: CliFlag; methods: string[] }>();
  for (const m of methods.values()) {
    for (const [name, flag] of Object.entries(m.cli?.flags ?? {})) {
      const r = readers.get(name) ?? readers.set(name, { flag, methods: [] }).get(name)!;
      r.methods.push(m.name);
    }
  }
  for (const [name, { flag, methods: by }] of readers) {
    lines.push(pad(`--${name}${flag.type === 'boolean' ? '' : ` ${flag.arg ?? 'V'}`}`) + wrap(`${flag.help} [${by.join(', ')}]`));
  }
  return lines.join('\n') + '\n';
}

/** Help columns: flags, then their text from this column, wrapped at HELP_WIDTH as the other commands' help is. */
const HELP_INDENT = 25;
const HELP_WIDTH = 112;

function wrap(text: string): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && HELP_INDENT + line.length + 1 + word.length > HELP_WIDTH) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(line);
  return out.join(`\n${''.padEnd(HELP_INDENT)}`);
}
