/**
 * Builds the ONNX graphs of a checkpoint on demand and caches them on disk, keyed by the checkpoint's
 * fingerprint, the build options and the builder version. A graph is written to a temporary folder and
 * renamed into place, so an interrupted build never leaves a half-written graph in the cache. A build killed
 * before its rename leaves that folder behind (gigabytes for a 7B checkpoint); the next build removes it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import { SparseVilaError } from '../errors.js';
import { autoAwqWeights } from '../weights/autoawq.js';
import { readAwqPlan, type AwqPlanRef } from '../weights/awq-plan.js';
import { awqWeights } from '../weights/awq-weights.js';
import type { Int4BlockSize } from '../weights/int4.js';
import type { WeightReader } from '../weights/weight-reader.js';
import { buildDecoderGraph, buildEmbedGraph, type KvType } from './decoder.js';
import type { LinearOptions, LinearPrecision, WeightPrecision } from './layers.js';
import { OnnxGraphBuilder } from './onnx-builder.js';

/** Bump when the emitted graphs change, so cached graphs of older builders are not reused. */
export const GRAPH_BUILDER_VERSION = 12;

export type GraphKind = 'vision' | 'projector' | 'embed' | 'decoder' | 'decoder-mass' | 'decoder-all' | 'decoder-all-mass' | 'decoder-present';

/** Whether graphs built under `options` compute in float16: precision fp16 on a GPU provider (LinearOptions.half). */
export function computesInHalf(options: GraphBuildOptions): boolean {
  return options.precision === 'fp16' && options.portable === true;
}

/**
 * The KV rows' type under `options`: float16 where the graph computes in half, or where the cache is asked to store
 * half (`kvCache: 'fp16'`: the graph casts the rows to float32 for its attention); float32 otherwise.
 */
export function kvTypeOf(options: GraphBuildOptions): KvType {
  return computesInHalf(options) || options.kvCache === 'fp16' ? 'float16' : 'float32';
}

/** The graphs a model family builds itself (its vision side); the decoder and embeddings are built here for all. */
export type FamilyGraphKind = 'vision' | 'projector';

/** Emits one of a family's own graphs (src/families/<family>/index.ts). */
export type FamilyGraphBuilder = (
  b: OnnxGraphBuilder,
  kind: FamilyGraphKind,
  w: WeightReader,
  checkpoint: Checkpoint,
  options: LinearOptions & { onLayer?: (done: number, total: number) => void },
) => void;

export interface GraphBuildOptions {
  /**
   * LLM linear weights. The vision tower and projector stay fp32 under int4 and awq (fp16 under fp16).
   * Linears a checkpoint stores in int4 (AutoAWQ) are used as stored under int4, dequantized otherwise.
   */
  precision: WeightPrecision;
  /** MatMulNBits block size for int4 and awq. */
  blockSize: Int4BlockSize;
  /** Where built graphs are kept; default `$SPARSEVILA_CACHE` or `~/.cache/sparsevila/graphs`. */
  cacheDir?: string;
  /** precision `awq`: the plan file (src/weights/awq-plan.ts) and its id, which enters the decoder graphs' key. */
  awq?: AwqPlanRef;
  /** Decoder graphs also output every linear group's input (graph/decoder.ts): AWQ calibration. */
  calibration?: boolean;
  /** Graphs for a GPU provider: standard ops in place of the CPU contrib fusions (LinearOptions.portable). */
  portable?: boolean;
  /**
   * The KV cache's precision: fp32 (default), or fp16 — half the cache's memory (llama.cpp's default f16 cache). The
   * decoder graphs take and return half rows and attend in float32, over a per-layer float32 copy of the past.
   */
  kvCache?: KvPrecision;
}

/** KV cache precisions (GraphBuildOptions.kvCache). */
export const KV_PRECISIONS = ['fp32', 'fp16'] as const;
export type KvPrecision = (typeof KV_PRECISIONS)[number];

/** What a progress event is about: a graph, or the AWQ stages (calibration runs, scale search). */
export type BuildStage = GraphKind | 'awq-calibration' | 'awq-search';

export interface BuildProgressEvent {
  graph: BuildStage;
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

/**
 * The cache folder name of a checkpoint's graphs under these options. AWQ plans and calibration outputs
 * change only the decoder graphs, so the other graphs of those builds are shared with the plain ones.
 */
export function graphCacheKey(fingerprint: string, options: GraphBuildOptions, kind?: GraphKind): string {
  const decoder = kind === undefined || kind.startsWith('decoder');
  const parts: Record<string, unknown> = { v: GRAPH_BUILDER_VERSION, fingerprint, precision: options.precision, blockSize: options.blockSize };
  if (options.portable) parts.portable = true;
  if (decoder && options.awq) parts.awq = options.awq.id;
  if (decoder && options.calibration) parts.calibration = true;
  if (decoder && options.kvCache === 'fp16') parts.kvCache = 'fp16';
  return crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 24);
}

/**
 * Returns the path of the requested graph, building it first if the cache does not hold it. The vision-side
 * graphs need the family's builder (src/families/registry.ts `ensureModelGraph` passes it).
 */
export function ensureGraph(
  checkpoint: Checkpoint,
  kind: GraphKind,
  options: GraphBuildOptions,
  onProgress?: BuildProgress,
  family?: FamilyGraphBuilder,
): string {
  const dir = path.join(options.cacheDir ?? defaultCacheDir(), graphCacheKey(checkpoint.fingerprint, options, kind));
  const modelPath = path.join(dir, kind, `${kind}.onnx`);
  if (fs.existsSync(modelPath)) {
    onProgress?.({ graph: kind, phase: 'done', cached: true });
    return modelPath;
  }
  onProgress?.({ graph: kind, phase: 'start', cached: false });
  const started = performance.now();
  removeStaleBuilds(options.cacheDir ?? defaultCacheDir());
  const tmp = path.join(dir, `.${kind}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
  try {
    const b = new OnnxGraphBuilder(kind, tmp);
    emit(b, checkpoint, kind, options, (done, total) => onProgress?.({ graph: kind, phase: 'layer', cached: false, done, total }), family);
    b.save();
    publish(tmp, path.join(dir, kind), modelPath);
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

/**
 * Moves a finished build into place. Another process (or worker) sharing the cache may have finished the same graph
 * meanwhile and be loading it: then its copy stays and ours goes, rather than removing a graph under a session that
 * is opening it. @internal (exported for its test)
 */
export function publish(tmp: string, target: string, modelPath: string): void {
  if (!fs.existsSync(modelPath)) {
    // A folder without its model file is what an older, interrupted layout left: nobody can be loading it.
    fs.rmSync(target, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, target);
      return;
    } catch (err) {
      // Renaming onto a folder another build has just filled fails (ENOTEMPTY, EEXIST): theirs stands.
      if (!fs.existsSync(modelPath)) throw err;
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** A build's temporary folder: `.<graph>.<pid>.<random>` inside its key's folder. */
const BUILD_TEMP = /^\.([a-z-]+)\.(\d+)\.[0-9a-f]{8}$/;
/** A temporary folder untouched this long is stale even if its pid is alive (a reused pid, another host). */
export const STALE_BUILD_MS = 24 * 3600 * 1000;

/**
 * Removes the temporary folders of builds that can no longer finish: their process is gone (builds run in a
 * process of this host; a pid that `kill(pid, 0)` does not find is dead), or they are older than STALE_BUILD_MS.
 * A live build's folder is left alone, so two processes sharing a cache do not remove each other's work.
 */
export function removeStaleBuilds(cacheDir: string, now = Date.now()): string[] {
  const removed: string[] = [];
  for (const key of readdirOrEmpty(cacheDir)) {
    const keyDir = path.join(cacheDir, key);
    for (const name of readdirOrEmpty(keyDir)) {
      const m = BUILD_TEMP.exec(name);
      if (!m) continue;
      const tmp = path.join(keyDir, name);
      const age = now - (fs.statSync(tmp, { throwIfNoEntry: false })?.mtimeMs ?? now);
      if (processAlive(Number(m[2])) && age < STALE_BUILD_MS) continue;
      fs.rmSync(tmp, { recursive: true, force: true });
      removed.push(tmp);
    }
  }
  return removed;
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user's process.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function emit(
  b: OnnxGraphBuilder,
  checkpoint: Checkpoint,
  kind: GraphKind,
  options: GraphBuildOptions,
  onLayer: (done: number, total: number) => void,
  family: FamilyGraphBuilder | undefined,
): void {
  const spec = checkpoint.spec;
  // Checkpoints quantized by AutoAWQ: int4 linears as stored, floats dequantized on read.
  const stored: WeightReader = checkpoint.quantization ? autoAwqWeights(checkpoint) : checkpoint;
  const int4 = options.precision === 'int4' || options.precision === 'awq';
  // fp16 on a GPU provider computes in half; on the CPU it only stores half (ORT folds the Cast, computes in float32).
  const half = computesInHalf(options);
  const llm: LinearOptions = {
    precision: int4 ? 'int4' : (options.precision as LinearPrecision),
    blockSize: options.blockSize,
    portable: options.portable,
    half,
  };
  // The vision side is small next to the LLM and sensitive to 4-bit error: it stays in float.
  const vision: LinearOptions = { precision: int4 ? 'fp32' : llm.precision, blockSize: options.blockSize, portable: options.portable };
  const w = kind.startsWith('decoder') && options.precision === 'awq' ? awqReader(stored, checkpoint, options) : stored;
  switch (kind) {
    case 'vision':
    case 'projector':
      if (!family)
        throw new SparseVilaError('GRAPH_BUILD', `the ${kind} graph is the model family's own: build it through ensureModelGraph`, { subject: kind });
      return family(b, kind, w, checkpoint, { ...vision, onLayer });
    case 'embed':
      return buildEmbedGraph(b, w, spec, llm);
    default:
      return buildDecoderGraph(b, w, spec, {
        ...llm,
        logits: kind.startsWith('decoder-all') ? 'all' : 'last',
        attentionMass: kind.endsWith('mass'),
        present: kind === 'decoder-present',
        calibration: options.calibration,
        kvType: kvTypeOf(options),
        onLayer,
      });
  }
}

/** The checkpoint's weights with the AWQ plan applied (its scales folded in, its clips applied). */
function awqReader(stored: WeightReader, checkpoint: Checkpoint, options: GraphBuildOptions): WeightReader {
  if (!options.awq) {
    throw new SparseVilaError('GRAPH_BUILD', "precision 'awq' needs an AWQ plan (GraphBuildOptions.awq); Model.load makes one", { subject: 'awq' });
  }
  const plan = readAwqPlan(options.awq.file);
  if (plan.blockSize !== options.blockSize) {
    throw new SparseVilaError('GRAPH_BUILD', `the AWQ plan ${options.awq.file} was searched for blocks of ${plan.blockSize}, not ${options.blockSize}`, {
      subject: options.awq.file,
    });
  }
  return awqWeights(stored, checkpoint.spec.text, plan);
}
