/**
 * Builds the ONNX graphs of a checkpoint on demand and caches them on disk, keyed by the checkpoint's
 * fingerprint, the build options and the builder version. A graph is written to a temporary folder and
 * renamed into place, so an interrupted build never leaves a half-written graph in the cache.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import { SparseVilaError } from '../errors.js';
import { buildDecoderGraph, buildEmbedGraph } from './decoder.js';
import type { Int4BlockSize } from './int4.js';
import type { LinearOptions, WeightPrecision, WeightReader } from './layers.js';
import { OnnxGraphBuilder } from './onnx-builder.js';
import { buildProjectorGraph, buildVisionGraph } from './vision.js';

/** Bump when the emitted graphs change, so cached graphs of older builders are not reused. */
export const GRAPH_BUILDER_VERSION = 4;

export type GraphKind = 'vision' | 'projector' | 'embed' | 'decoder' | 'decoder-mass' | 'decoder-all' | 'decoder-all-mass';

export interface GraphBuildOptions {
  /** LLM linear weights. The vision tower and projector stay fp32 under int4 (fp16 under fp16). */
  precision: WeightPrecision;
  /** MatMulNBits block size for int4. */
  blockSize: Int4BlockSize;
  /** Where built graphs are kept; default `$SPARSEVILA_CACHE` or `~/.cache/sparsevila/graphs`. */
  cacheDir?: string;
}

export interface BuildProgressEvent {
  graph: GraphKind;
  phase: 'start' | 'layer' | 'done';
  cached: boolean;
  /** 'layer': layers emitted so far, of `total`. */
  done?: number;
  total?: number;
  seconds?: number;
}

export type BuildProgress = (event: BuildProgressEvent) => void;

export function defaultCacheDir(): string {
  return process.env.SPARSEVILA_CACHE ?? path.join(os.homedir(), '.cache', 'sparsevila', 'graphs');
}

export function graphCacheKey(fingerprint: string, options: GraphBuildOptions): string {
  const key = JSON.stringify({ v: GRAPH_BUILDER_VERSION, fingerprint, precision: options.precision, blockSize: options.blockSize });
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 24);
}

/** Returns the path of the requested graph, building it first if the cache does not hold it. */
export function ensureGraph(
  checkpoint: Checkpoint,
  kind: GraphKind,
  options: GraphBuildOptions,
  onProgress?: BuildProgress,
): string {
  const dir = path.join(options.cacheDir ?? defaultCacheDir(), graphCacheKey(checkpoint.fingerprint, options));
  const modelPath = path.join(dir, kind, `${kind}.onnx`);
  if (fs.existsSync(modelPath)) {
    onProgress?.({ graph: kind, phase: 'done', cached: true });
    return modelPath;
  }
  onProgress?.({ graph: kind, phase: 'start', cached: false });
  const started = performance.now();
  const tmp = path.join(dir, `.${kind}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
  try {
    const b = new OnnxGraphBuilder(kind, tmp);
    emit(b, checkpoint, kind, options, (done, total) => onProgress?.({ graph: kind, phase: 'layer', cached: false, done, total }));
    b.save();
    fs.rmSync(path.join(dir, kind), { recursive: true, force: true });
    fs.renameSync(tmp, path.join(dir, kind));
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (err instanceof SparseVilaError) throw err;
    throw new SparseVilaError('GRAPH_BUILD', `building the ${kind} graph of ${checkpoint.dir} failed: ${(err as Error).message}`, {
      subject: kind,
      cause: err,
    });
  }
  onProgress?.({ graph: kind, phase: 'done', cached: false, seconds: (performance.now() - started) / 1000 });
  return modelPath;
}

function emit(
  b: OnnxGraphBuilder,
  checkpoint: Checkpoint,
  kind: GraphKind,
  options: GraphBuildOptions,
  onLayer: (done: number, total: number) => void,
): void {
  const w: WeightReader = checkpoint;
  const spec = checkpoint.spec;
  const llm: LinearOptions = { precision: options.precision, blockSize: options.blockSize };
  // The vision side is small next to the LLM and sensitive to 4-bit error: it stays in float.
  const vision: LinearOptions = { precision: options.precision === 'int4' ? 'fp32' : options.precision, blockSize: options.blockSize };
  switch (kind) {
    case 'vision':
      return buildVisionGraph(b, w, spec, { ...vision, onLayer });
    case 'projector':
      return buildProjectorGraph(b, w, spec, vision);
    case 'embed':
      return buildEmbedGraph(b, w, spec);
    default:
      return buildDecoderGraph(b, w, spec, {
        ...llm,
        logits: kind.startsWith('decoder-all') ? 'all' : 'last',
        attentionMass: kind.endsWith('mass'),
        onLayer,
      });
  }
}
