/**
 * Fuzzing the loaders with a seeded generator (src/seeded-random.ts; a failure is reproduced by its seed):
 * mutated safetensors files (header JSON fields, raw bytes, length prefixes, truncation), mutated config.json
 * values (as parsed and as whole checkpoints) and generated chat templates. The property: loading never
 * throws anything but a typed error (a SparseVilaError with a code and a subject), and never kills the process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors, parseQuantizationConfig } from '../src/checkpoint/index.js';
import { openCheckpoint, parseLlavaConfig } from '../src/families/index.js';
import { SparseVilaError } from '../src/errors.js';
import { seededRandom } from '../src/seeded-random.js';
import { loadTextProcessor, renderChat, type ChatMessage, type TextProcessor } from '../src/text/index.js';
import { CLIP_FIXTURE, SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/temp.js';

type Random = () => number;
const pick = <T>(rnd: Random, items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
const int = (rnd: Random, n: number): number => Math.floor(rnd() * n);

/** Runs `fn`; anything it throws must be a typed error with a code and a subject. Returns whether it threw. */
function typedOrNothing(fn: () => unknown, what: string): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    if (!(err instanceof SparseVilaError) || !err.code || !err.subject) {
      throw new Error(`${what}: untyped failure ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
    }
    return true;
  }
}

/** Values that break assumptions: wrong types, zero, negatives, huge and fractional numbers, nesting. */
function oddValue(rnd: Random, depth = 0): unknown {
  const scalars = [null, true, false, 0, -1, 1, 2, 3, 7, 64, 0.5, -0.5, 1e-12, 2 ** 31, 2 ** 53 + 2, 1e308, -1e308, '', 'x', '12', 'NaN', 'llama', 'qwen2'];
  const r = rnd();
  if (depth < 2 && r < 0.1) return Array.from({ length: int(rnd, 4) }, () => oddValue(rnd, depth + 1));
  if (depth < 2 && r < 0.2)
    return Object.fromEntries(Array.from({ length: int(rnd, 4) }, (_, i) => [pick(rnd, ['type', 'factor', 'x', `k${i}`]), oddValue(rnd, depth + 1)]));
  return pick(rnd, scalars);
}

function safetensorsParts(bytes: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

function withHeader(header: unknown, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

/** One mutated safetensors file from a valid one. */
function mutateSafetensors(rnd: Random, bytes: Buffer): Buffer {
  const { header, data } = safetensorsParts(bytes);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  switch (int(rnd, 5)) {
    case 0: {
      // A field of some entries replaced, removed or added.
      const h = structuredClone(header) as Record<string, Record<string, unknown>>;
      for (let i = 0, n = 1 + int(rnd, 3); i < n; i++) {
        const entry = h[pick(rnd, names)]!;
        const field = pick(rnd, ['dtype', 'shape', 'data_offsets', 'extra']);
        if (rnd() < 0.2) delete entry[field];
        else if (field === 'dtype') entry.dtype = pick(rnd, ['F32', 'F16', 'BF16', 'I64', 'I8', 'U8', 'F64', 'BOOL', 'F8_E4M3', 'Q4', '', 3, null]);
        else if (field === 'shape') entry.shape = rnd() < 0.5 ? oddValue(rnd) : [int(rnd, 5), -1 + int(rnd, 3) * 2 ** int(rnd, 40)];
        else if (field === 'data_offsets') entry.data_offsets = rnd() < 0.5 ? oddValue(rnd) : [int(rnd, data.length * 2), int(rnd, data.length * 2)];
        else entry[field] = oddValue(rnd);
      }
      return withHeader(h, data);
    }
    case 1: {
      // The header replaced by another JSON value, or its metadata by odd values.
      if (rnd() < 0.5) return withHeader(oddValue(rnd), data);
      return withHeader({ ...header, __metadata__: oddValue(rnd) }, data);
    }
    case 2: {
      // Random bytes overwritten, mostly inside the header.
      const out = Buffer.from(bytes);
      const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
      for (let i = 0, n = 1 + int(rnd, 8); i < n; i++) out[rnd() < 0.9 ? int(rnd, headerEnd) : int(rnd, out.length)] = int(rnd, 256);
      return out;
    }
    case 3: {
      // A length prefix that does not fit: zero, past the file, past 2^53, or off by a little.
      const out = Buffer.from(bytes);
      const n = Number(bytes.readBigUInt64LE(0));
      out.writeBigUInt64LE(pick(rnd, [0n, 1n, BigInt(n - 1), BigInt(n + 1), BigInt(out.length), 2n ** 63n, 2n ** 64n - 1n]), 0);
      return out;
    }
    default:
      // Cut anywhere.
      return bytes.subarray(0, int(rnd, bytes.length));
  }
}

/** Paths of config fields: the fixture's own and ones it leaves to defaults. */
function configPaths(config: Record<string, unknown>): string[][] {
  const paths: string[][] = [];
  for (const [k, v] of Object.entries(config)) {
    paths.push([k]);
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const k2 of Object.keys(v)) paths.push([k, k2]);
  }
  const absent = ['rope_scaling', 'rope_theta', 'head_dim', 'num_key_value_heads', 'tie_word_embeddings', 'max_position_embeddings', 'model_type'];
  for (const k of absent) paths.push(['text_config', k]);
  paths.push(['quantization_config'], ['quantization_config', 'bits'], ['quantization_config', 'group_size'], ['vision_feature_layer'], ['image_seq_length']);
  return paths;
}

function mutateConfig(rnd: Random, config: Record<string, unknown>, paths: string[][]): Record<string, unknown> {
  const out = structuredClone(config);
  for (let i = 0, n = 1 + int(rnd, 3); i < n; i++) {
    const p = pick(rnd, paths);
    let obj = out as Record<string, unknown>;
    for (const key of p.slice(0, -1)) {
      if (!obj[key] || typeof obj[key] !== 'object') obj[key] = {};
      obj = obj[key] as Record<string, unknown>;
    }
    if (rnd() < 0.15) delete obj[p.at(-1)!];
    else obj[p.at(-1)!] = oddValue(rnd);
  }
  return out;
}

const FUZZ_SEED = 22;

describe('safetensors headers', () => {
  it('600 mutated files: each opens (and its tensors read) or fails with a typed error naming the file', () => {
    const rnd = seededRandom(FUZZ_SEED);
    const dir = tempDir('fuzz-st');
    const sources = [SIGLIP_FIXTURE, CLIP_FIXTURE].map((d) => fs.readFileSync(path.join(d, 'model.safetensors')));
    let failed = 0;
    for (let c = 0; c < 600; c++) {
      const file = path.join(dir, `case-${c}.safetensors`);
      fs.writeFileSync(file, mutateSafetensors(rnd, pick(rnd, sources)));
      const threw = typedOrNothing(() => {
        const st = openSafetensors(file);
        try {
          for (const name of st.names()) typedOrNothing(() => st.read(name), `case ${c} ${name}`);
        } finally {
          st.close();
        }
      }, `safetensors case ${c}`);
      if (threw) failed++;
      fs.rmSync(file);
    }
    // Most mutations are refused; some (a changed __metadata__, a byte inside a name) still load.
    expect(failed).toBeGreaterThan(300);
    expect(failed).toBeLessThan(600);
  });
});

describe('config.json', () => {
  it('1,000 mutated configs parse or fail with a typed error naming the field; 200 more as whole checkpoints with byte damage', () => {
    const rnd = seededRandom(FUZZ_SEED + 1);
    const configs = [SIGLIP_FIXTURE, CLIP_FIXTURE].map((d) => JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')) as Record<string, unknown>);
    const paths = configs.map(configPaths);
    let failed = 0;
    for (let c = 0; c < 1000; c++) {
      const k = int(rnd, 2);
      const config = mutateConfig(rnd, configs[k]!, paths[k]!);
      if (
        typedOrNothing(
          () => {
            parseLlavaConfig(config, 'config.json');
            parseQuantizationConfig(config, 'config.json');
          },
          `config case ${c}: ${JSON.stringify(config)}`,
        )
      )
        failed++;
    }
    expect(failed).toBeGreaterThan(200);

    // Whole checkpoints: the config's text damaged byte by byte (or replaced by a folder), weights intact.
    const dir = tempDir('fuzz-ckpt');
    fs.copyFileSync(path.join(SIGLIP_FIXTURE, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const text = Buffer.from(JSON.stringify(mutateConfig(rnd, configs[0]!, paths[0]!), null, 2));
    for (let c = 0; c < 200; c++) {
      const bytes = Buffer.from(text);
      for (let i = 0, n = int(rnd, 4); i < n; i++) bytes[int(rnd, bytes.length)] = pick(rnd, [0x7b, 0x7d, 0x22, 0x2c, 0x30, 0x2d, 0xff, 0x00, int(rnd, 256)]);
      const configFile = path.join(dir, 'config.json');
      fs.rmSync(configFile, { recursive: true, force: true });
      if (c % 50 === 49) fs.mkdirSync(configFile);
      else fs.writeFileSync(configFile, rnd() < 0.1 ? bytes.subarray(0, int(rnd, bytes.length)) : bytes);
      typedOrNothing(() => openCheckpoint(dir).close(), `checkpoint case ${c}`);
    }
  });
});

/** Template pieces, well-formed and not: loops, tests, filters, errors, recursion, runaway sizes, stray delimiters. */
const TEMPLATE_PIECES = [
  '{% for m in messages %}',
  '{% endfor %}',
  "{% if m['role'] == 'user' %}",
  '{% elif loop.first %}',
  '{% else %}',
  '{% endif %}',
  '{{ m.content }}',
  "{{ m['content'][0]['type'] }}",
  '{{ messages[0].content | trim }}',
  '{{ messages | length }}',
  '{{ messages | tojson }}',
  '{{ bos_token }}{{ eos_token }}',
  '{% if add_generation_prompt %}ASSISTANT:{% endif %}',
  "{{ raise_exception('roles must alternate') }}",
  '{{ undefined_thing.attribute }}',
  '{{ 1 / 0 }}',
  '{{ 10 ** 400 }}',
  '{{ none.x }}',
  "{% set ns = namespace(n=0, s='ab') %}",
  '{% set ns.n = ns.n + 1 %}{{ ns.n }}',
  '{% for i in range(8) %}{% set ns.s = ns.s + ns.s %}{% endfor %}',
  '{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}',
  '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
  '{% for i in range(1000000000) %}{% endfor %}',
  '{{ range(5) | list | join(",") }}',
  "{{ 'x' | indent(4) }}",
  '{{ strftime_now("%Y") }}',
  '{%',
  '}}',
  '{{',
  '{% endfor',
  '<|im_start|>',
  '<image>',
  'plain text ',
  '\n',
];

function randomTemplate(rnd: Random): string {
  const parts: string[] = [];
  for (let i = 0, n = 1 + int(rnd, 10); i < n; i++) parts.push(pick(rnd, TEMPLATE_PIECES));
  if (rnd() < 0.1) parts.push(String.fromCharCode(...Array.from({ length: 1 + int(rnd, 12) }, () => 32 + int(rnd, 95))));
  return parts.join('');
}

function randomMessages(rnd: Random): ChatMessage[] {
  return Array.from({ length: 1 + int(rnd, 3) }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: rnd() < 0.5 ? pick(rnd, ['hi', '', 'what is in the picture?']) : [{ type: 'image' as const }, { type: 'text' as const, text: 'describe it' }],
  }));
}

describe('chat templates', () => {
  it('500 generated templates render or fail with a typed error naming the template file or the messages', async () => {
    const rnd = seededRandom(FUZZ_SEED + 2);
    const base = await loadTextProcessor(SIGLIP_FIXTURE);
    let failed = 0;
    for (let c = 0; c < 500; c++) {
      const text = randomTemplate(rnd);
      // A processor that differs only in its template (rendering caches the parsed template per processor).
      const tp = Object.create(base, { chatTemplate: { value: { text, file: `template-${c}.jinja` } } }) as TextProcessor;
      if (typedOrNothing(() => renderChat(tp, randomMessages(rnd)), `template case ${c}: ${JSON.stringify(text)}`)) failed++;
    }
    expect(failed).toBeGreaterThan(100);
    expect(failed).toBeLessThan(500);
  });
});
