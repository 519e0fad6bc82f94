/**
 * The main thread's handle on the inference worker: typed calls that resolve when the worker answers.
 */
import { Worker } from 'node:worker_threads';
import { SparseVilaError, type ErrorCode } from '../errors.js';
import type { GraphTensor } from '../families/family.js';
import { kvTypeOf, type BuildProgress, type FamilyGraphKind, type GraphBuildOptions, type GraphKind } from '../graph/build.js';
import type { KvType } from '../graph/decoder.js';
import type { RuntimeOptions } from './ort-session.js';
import { checkThreads } from './threads.js';
import type { CacheInfo, Request, StepRequest, StepResult, VisionResult, WorkerMessage } from './protocol.js';

export class Runtime {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    /** The KV rows' element type its caches hold (graph/build.ts kvTypeOf). */
    readonly kvType: KvType,
    private readonly onProgress?: BuildProgress,
  ) {
    worker.on('message', (msg: WorkerMessage) => this.receive(msg));
    worker.on('error', (err) => this.failAll(new SparseVilaError('RUNTIME', `inference worker crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      if (!this.closed) this.failAll(new SparseVilaError('RUNTIME', `inference worker exited (code ${code})`));
    });
  }

  /** Starts a worker, opens the checkpoint there and loads (building if needed) the core graphs. */
  static async start(checkpointDir: string, graphs: GraphBuildOptions, runtime: RuntimeOptions, onProgress?: BuildProgress): Promise<Runtime> {
    // Named as loadModel's options name them (`threads`, `session.interOpThreads`).
    checkThreads(runtime.intraOpThreads, 'threads');
    checkThreads(runtime.interOpThreads, 'session.interOpThreads');
    const worker = new Worker(new URL('./worker.js', import.meta.url));
    const rt = new Runtime(worker, kvTypeOf(graphs), onProgress);
    try {
      await rt.call({ op: 'init', checkpointDir, graphs, runtime });
    } catch (err) {
      await rt.close();
      throw err;
    }
    return rt;
  }

  private receive(msg: WorkerMessage): void {
    if ('progress' in msg) {
      this.onProgress?.(msg.progress);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else {
      const e = msg.error;
      p.reject(new SparseVilaError((e.code ?? 'RUNTIME') as ErrorCode, e.message, { subject: e.subject }));
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<T>(req: Request, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new SparseVilaError('RUNTIME', 'the runtime is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, req }, transfer);
    });
  }

  ensureGraphs(kinds: GraphKind[]): Promise<void> {
    return this.call({ op: 'graph.ensure', kinds });
  }

  /** pixels: [images, channels, height, width]. */
  vision(pixels: Float32Array, dims: number[]): Promise<VisionResult> {
    return this.call({ op: 'vision', pixels, dims });
  }

  /**
   * Runs one of the model family's own graphs (families/family.ts GraphRunner): the encode step's calls. The
   * feeds are copied to the worker, not moved: an encode step keeps some of them (Llava's features).
   */
  runGraph(kind: FamilyGraphKind, feeds: Record<string, GraphTensor>): Promise<Record<string, GraphTensor>> {
    return this.call({ op: 'graph.run', kind, feeds });
  }

  /** features: [tokens, featureSize] → [tokens, hidden]. */
  project(features: Float32Array, dims: [number, number]): Promise<Float32Array> {
    return this.call({ op: 'project', features, dims });
  }

  step(req: Omit<StepRequest, 'op'>): Promise<StepResult> {
    return this.call({ op: 'step', ...req });
  }

  createCache(): Promise<number> {
    return this.call({ op: 'cache.create' });
  }

  dropCache(id: number): Promise<void> {
    return this.call({ op: 'cache.drop', id });
  }

  truncateCache(id: number, length: number): Promise<void> {
    return this.call({ op: 'cache.truncate', id, length });
  }

  /** Makes room for `rows` tokens in every layer at once (no doubling copies later). */
  reserveCache(id: number, rows: number): Promise<void> {
    return this.call({ op: 'cache.reserve', id, rows });
  }

  cacheInfo(id: number): Promise<CacheInfo> {
    return this.call({ op: 'cache.info', id });
  }

  /** A per-layer subset view of a cache (row indices ascending; null = all rows) for decode steps. */
  createView(cache: number, subsets: (number[] | null)[]): Promise<number> {
    return this.call({ op: 'view.create', cache, subsets });
  }

  dropView(id: number): Promise<void> {
    return this.call({ op: 'view.drop', id });
  }

  /** Ends ORT's own profiling (when `profilePrefix` was set) and returns the Chrome-trace files it wrote. */
  endProfiling(): Promise<string[]> {
    return this.call({ op: 'profile.end' });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new SparseVilaError('RUNTIME', 'the runtime was closed'));
    await this.worker.terminate();
  }
}
