/** Sparsity policy flags shared by commands that run a chat: parsed into a validated `SparsityPolicy`. */
import { InputError } from '../errors.js';
import { validatePolicy, type Budget, type SparsityPolicy } from '../sparsity/policy.js';

export const policyOptionSpec = {
  policy: { type: 'string' },
  keep: { type: 'string' },
  'keep-scope': { type: 'string' },
  retrieve: { type: 'string' },
  'min-per-image': { type: 'string' },
  'per-kv-head': { type: 'boolean' },
  positions: { type: 'string' },
  salience: { type: 'string' },
  'fastv-layer': { type: 'string' },
  'fastv-drop': { type: 'string' },
  'pdrop-layers': { type: 'string' },
  'pdrop-keep': { type: 'string' },
  'prune-seed': { type: 'string' },
  dominant: { type: 'string' },
  contextual: { type: 'string' },
} as const;

export const POLICY_OPTIONS_HELP = `Sparsity options:
  --policy P             dense (default), sparsevila, fastv, pdrop, visionzip, random, stride
  --keep B               tokens kept per image at prefill (sparsevila, random, stride): a ratio with a
                         decimal point or % (0.5, 50%), or a count (64)
  --keep-scope S         per-image (default) or global (one top-k across the turn's images / frames)
  --retrieve B           visual tokens each layer attends per decode step (sparsevila), ratio or count
  --min-per-image N      keep at least N retrieved tokens of every image / frame per layer (default 0)
  --per-kv-head          retrieve per KV head (union of each head's top-k) instead of heads summed
  --positions M          original (default) or compact rotary positions for kept tokens
  --salience S           auto (default: CLS on CLIP, attention received otherwise), cls, received, or
                         summary:I,J,… (mean attention from those leading tower tokens, indices 0–7)
  --fastv-layer K        FastV: drop after layer K (default 2)
  --fastv-drop R         FastV: share of visual tokens dropped (default 0.5)
  --pdrop-layers L       PyramidDrop: comma-separated layers (default 8,16,24)
  --pdrop-keep R         PyramidDrop: comma-separated keep ratios (default 0.5,0.25,0.125)
  --prune-seed S         random pruning seed (default 0)
  --dominant N           VisionZip: dominant tokens per image (default 54)
  --contextual N         VisionZip: contextual (merged) tokens per image (default 10)
`;

type PolicyValues = Partial<Record<Exclude<keyof typeof policyOptionSpec, 'per-kv-head'>, string>> & { 'per-kv-head'?: boolean };

/** "0.5" / "50%" → ratio; "64" → count. Range checks happen in validatePolicy, which names the field. */
export function parseBudget(value: string, flag: string): Budget {
  const v = value.trim();
  if (v.endsWith('%')) return { ratio: Number(v.slice(0, -1)) / 100 };
  if (/^\d+$/.test(v)) return { count: Number(v) };
  const n = Number(v);
  if (v === '' || Number.isNaN(n)) throw new InputError('OPTION_INVALID', `${flag} must be a ratio (0.5, 50%) or a count (64); got '${value}'`, { subject: flag });
  return { ratio: n };
}

function numberList(value: string, flag: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => Number.isNaN(n))) throw new InputError('OPTION_INVALID', `${flag} must be comma-separated numbers; got '${value}'`, { subject: flag });
  return list;
}

export function parsePolicyOptions(v: PolicyValues): SparsityPolicy {
  const method = v.policy ?? 'dense';
  const keep = { budget: parseBudget(v.keep ?? '0.5', '--keep'), scope: v['keep-scope'] ?? 'per-image' };
  switch (method) {
    case 'sparsevila':
      return validatePolicy({
        method,
        keep,
        retrieve: { budget: parseBudget(v.retrieve ?? '0.1', '--retrieve'), minPerImage: Number(v['min-per-image'] ?? 0), perKvHead: v['per-kv-head'] ?? false },
        salience: v.salience?.startsWith('summary:') ? { summary: numberList(v.salience.slice(8), '--salience') } : (v.salience ?? 'auto'),
        positions: v.positions ?? 'original',
      });
    case 'fastv':
      return validatePolicy({ method, layer: Number(v['fastv-layer'] ?? 2), dropRatio: Number(v['fastv-drop'] ?? 0.5) });
    case 'pdrop':
      return validatePolicy({ method, layers: numberList(v['pdrop-layers'] ?? '8,16,24', '--pdrop-layers'), keepRatios: numberList(v['pdrop-keep'] ?? '0.5,0.25,0.125', '--pdrop-keep') });
    case 'visionzip':
      return validatePolicy({ method, dominant: Number(v.dominant ?? 54), contextual: Number(v.contextual ?? 10) });
    case 'random':
      return validatePolicy({ method, keep, seed: Number(v['prune-seed'] ?? 0) });
    default:
      return validatePolicy({ method, keep });
  }
}
