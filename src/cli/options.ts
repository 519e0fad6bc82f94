/** Options every model-loading command shares, their parsing and help text, and the build progress line. */
import { DEFAULT_MAX_IMAGE_PIXELS } from '../media/image.js';
import { InputError } from '../errors.js';
import { KV_PRECISIONS, type BuildProgress, type BuildStage } from '../graph/build.js';
import { parseBytes } from '../runtime/memory.js';
import type { SessionSettings } from '../runtime/ort-session.js';
import { checkThreads, THREADS_PER_CORE } from '../runtime/threads.js';
import type { LoadOptions } from '../session/model.js';

export const modelOptionSpec = {
  model: { type: 'string' },
  precision: { type: 'string' },
  'block-size': { type: 'string' },
  'kv-cache': { type: 'string' },
  calibration: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  'cache-dir': { type: 'string' },
  'max-image-pixels': { type: 'string' },
  'execution-mode': { type: 'string' },
  'inter-op-threads': { type: 'string' },
  'graph-optimization': { type: 'string' },
  spinning: { type: 'string' },
  'mem-arena': { type: 'string' },
  'mem-pattern': { type: 'string' },
} as const;

export const MODEL_OPTIONS_HELP = `Model options:
  --precision P          LLM weights: fp32 (default), fp16, int4 (MatMulNBits, round-to-nearest),
                         awq (int4 with activation-aware scales and clipping, searched once on calibration
                         prompts and cached). A checkpoint quantized by AutoAWQ loads its own int4 weights.
  --block-size N         int4 / awq group size: 16, 32 (default), 64, 128
  --kv-cache P           KV cache precision: fp32 (default) or fp16 (half the cache's memory; attention still
                         in float32)
  --calibration N        awq: calibration samples, synthetic-world images with a question and answer (default 16)
  --provider EP          cpu (default), cuda (needs onnxruntime-node's CUDA binaries), webgpu (needs a GPU adapter)
  --threads N            ORT threads per operator (default: all cores; at most ${THREADS_PER_CORE} per core)
  --cache-dir DIR        built-graph cache (default $SPARSEVILA_CACHE or ~/.cache/sparsevila/graphs)
  --max-image-pixels N   refuse images over N pixels from their header, before decoding (default ${DEFAULT_MAX_IMAGE_PIXELS},
                         Pillow's decompression-bomb bound); decoded pixels also count toward --memory-limit

onnxruntime session settings (defaults measured on CPU; change them to measure your machine):
  --execution-mode M     sequential (default) or parallel (independent operators at once)
  --inter-op-threads N   threads running independent operators (parallel mode; default: ORT's choice)
  --graph-optimization L disabled, basic, extended, all (default)
  --spinning on|off      intra-op threads spin between operators (default off: faster on a shared CPU)
  --mem-arena on|off     onnxruntime's CPU memory arena (default on)
  --mem-pattern on|off   onnxruntime's memory-pattern planning (default on)
`;

export function parseInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InputError('OPTION_INVALID', `${flag} must be an integer, got '${value}'`, { subject: flag });
  return n;
}

/** A size flag: bytes, or with K, M, G, T (binary units; runtime/memory.ts parseBytes). */
export function parseSize(value: string, flag: string): number {
  const bytes = parseBytes(value);
  if (bytes === undefined) {
    throw new InputError('OPTION_INVALID', `${flag} must be a size in bytes or with K, M, G, T (binary units): got '${value}'`, { subject: flag });
  }
  return bytes;
}

function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseInteger(value, flag);
  if (n < 1) throw new InputError('OPTION_INVALID', `${flag} must be ≥ 1; got ${n}`, { subject: flag });
  return n;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) {
    throw new InputError('OPTION_INVALID', `${flag} must be one of ${allowed.join(', ')}; got '${value}'`, { subject: flag });
  }
  return value as T;
}

/** The values parseArgs returns for modelOptionSpec. */
export type ModelOptionValues = Partial<Record<keyof typeof modelOptionSpec, string>>;

export function parseModelOptions(values: ModelOptionValues): LoadOptions {
  const blockSize = values['block-size'] === undefined ? undefined : parseInteger(values['block-size'], '--block-size');
  if (blockSize !== undefined && ![16, 32, 64, 128].includes(blockSize)) {
    throw new InputError('OPTION_INVALID', `--block-size must be 16, 32, 64 or 128; got ${blockSize}`, { subject: '--block-size' });
  }
  const calibration = positiveInteger(values.calibration, '--calibration');
  const threads = checkThreads(positiveInteger(values.threads, '--threads'), '--threads');
  return {
    precision: oneOf(values.precision, ['fp32', 'fp16', 'int4', 'awq'] as const, '--precision'),
    blockSize: blockSize as LoadOptions['blockSize'],
    kvCache: oneOf(values['kv-cache'], KV_PRECISIONS, '--kv-cache'),
    calibration,
    provider: oneOf(values.provider, ['cpu', 'cuda', 'webgpu'] as const, '--provider'),
    threads,
    cacheDir: values['cache-dir'],
    maxImagePixels: positiveInteger(values['max-image-pixels'], '--max-image-pixels'),
    session: parseSessionSettings(values),
  };
}

function onOff(value: string | undefined, flag: string): boolean | undefined {
  const v = oneOf(value, ['on', 'off'] as const, flag);
  return v === undefined ? undefined : v === 'on';
}

function parseSessionSettings(values: ModelOptionValues): SessionSettings {
  return {
    executionMode: oneOf(values['execution-mode'], ['sequential', 'parallel'] as const, '--execution-mode'),
    interOpThreads: checkThreads(positiveInteger(values['inter-op-threads'], '--inter-op-threads'), '--inter-op-threads'),
    graphOptimizationLevel: oneOf(values['graph-optimization'], ['disabled', 'basic', 'extended', 'all'] as const, '--graph-optimization'),
    spinning: onOff(values.spinning, '--spinning'),
    memArena: onOff(values['mem-arena'], '--mem-arena'),
    memPattern: onOff(values['mem-pattern'], '--mem-pattern'),
  };
}

/** Progress stages that are not graphs. */
const STAGE_NAMES: Partial<Record<BuildStage, string>> = { 'awq-calibration': 'AWQ calibration activations', 'awq-search': 'AWQ scales' };

/**
 * Graph build progress on stderr: a bar per graph on a terminal, a line per graph otherwise. Cache hits
 * stay quiet.
 */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): BuildProgress {
  return (e) => {
    if (e.cached) return;
    if (e.phase === 'layer' && stream.isTTY && e.total) {
      const width = 30;
      const filled = Math.round((width * e.done!) / e.total);
      const unit = e.graph === 'awq-calibration' ? 'samples' : 'layers';
      stream.write(
        `\rbuilding ${STAGE_NAMES[e.graph] ?? `${e.graph} graph`} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${e.done}/${e.total} ${unit}`,
      );
    } else if (e.phase === 'start') {
      stream.write(`building ${STAGE_NAMES[e.graph] ?? `${e.graph} graph`}…${stream.isTTY ? '' : '\n'}`);
    } else if (e.phase === 'done') {
      stream.write(`${stream.isTTY ? '\r\x1b[K' : ''}built ${STAGE_NAMES[e.graph] ?? `${e.graph} graph`} in ${e.seconds?.toFixed(1)} s\n`);
    }
  };
}
