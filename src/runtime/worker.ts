/**
 * The inference worker: owns the checkpoint reader, the ORT sessions, the KV caches and their views.
 * Graphs are built (or taken from the cache) here too, so a first build never blocks the main thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import type ort from 'onnxruntime-node';
import onnxruntime from 'onnxruntime-node';
import type { Checkpoint } from '../checkpoint/index.js';
import type { GraphTensor } from '../families/family.js';
import { ensureModelGraph, familyOf, openCheckpoint, type ModelSpec } from '../families/registry.js';
import { SparseVilaError } from '../errors.js';
import { kvTypeOf, type GraphKind } from '../graph/build.js';
import { OnnxGraphBuilder } from '../graph/onnx-builder.js';
import { KvCache, KvView, type KvRows } from './kv-cache.js';
import { DecoderStepper, type DevicePast } from './llm-step.js';
import { createSession } from './ort-session.js';
import type { CacheInfo, DeviceTransfer, InitRequest, Request, StepRequest, StepResult, VisionResult, WorkerMessage } from './protocol.js';

const port = parentPort!;

class Engine {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly steppers = new Map<GraphKind, Promise<DecoderStepper>>();
  private readonly caches = new Map<number, KvCache>();
  private readonly views = new Map<number, KvView>();
  /** Decode targets' pasts on the device (GPU providers), kept from step to step (DecoderStepper.runResident). */
  private readonly devicePasts = new Map<KvCache | KvView, DevicePast>();
  private nextId = 1;

  constructor(
    private readonly checkpoint: Checkpoint<ModelSpec>,
    private readonly init: InitRequest,
  ) {}

  /** The graphs every turn needs, opened when the worker starts: the family's own, the embeddings, the decoder. */
  startupGraphs(): GraphKind[] {
    return [...familyOf(this.checkpoint.spec).graphs, 'embed', 'decoder'];
  }

  /** A graph's session; `onDevice`: the embeddings graph's second session, whose output stays on the device (a resident decode's input). */
  session(kind: GraphKind, onDevice = false): Promise<ort.InferenceSession> {
    const key = onDevice ? `${kind}:device` : kind;
    let s = this.sessions.get(key);
    if (!s) {
      const path = ensureModelGraph(this.checkpoint, kind, this.init.graphs, (progress) => port.postMessage({ progress } satisfies WorkerMessage));
      const layers = this.checkpoint.spec.text.numLayers;
      // A resident decode's outputs that stay on the device: the past-plus-new rows and the new rows themselves.
      const names = ['present_key', 'present_value', 'present_bias', 'new_key', 'new_value'];
      const present = kind === 'decoder-present' ? names.flatMap((name) => Array.from({ length: layers }, (_, l) => `${name}.${l}`)) : [];
      s = createSession(path, this.init.runtime, onDevice ? ['inputs_embeds'] : present);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  stepper(kind: GraphKind): Promise<DecoderStepper> {
    let s = this.steppers.get(kind);
    if (!s) {
      const t = this.checkpoint.spec.text;
      s = this.session(kind).then(
        (session) =>
          new DecoderStepper(
            session,
            t.numLayers,
            t.numKvHeads,
            t.headDim,
            t.hiddenSize,
            t.mropeSection ? 3 : 1,
            this.init.runtime.executionProvider !== 'cpu',
            kvTypeOf(this.init.graphs),
          ),
      );
      this.steppers.set(kind, s);
      s.catch(() => this.steppers.delete(kind));
    }
    return s;
  }

  async vision(pixels: Float32Array, dims: number[]): Promise<VisionResult> {
    const session = await this.session('vision');
    const out = await session.run({ pixel_values: new onnxruntime.Tensor('float32', pixels, dims) });
    return {
      features: out.image_features!.data as Float32Array,
      featureDims: [...out.image_features!.dims],
      clsAttention: out.cls_attention?.data as Float32Array | undefined,
      meanAttention: out.mean_attention?.data as Float32Array | undefined,
      keyMetric: out.key_metric?.data as Float32Array | undefined,
      leadingRows: out.leading_rows?.data as Float32Array | undefined,
    };
  }

  async runGraph(kind: GraphKind, feeds: Record<string, GraphTensor>): Promise<Record<string, GraphTensor>> {
    const session = await this.session(kind);
    const inputs = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, new onnxruntime.Tensor(t.type, t.data, t.dims)]));
    const out = await session.run(inputs);
    return Object.fromEntries(
      Object.entries(out).map(([name, t]) => [name, { type: t.type as GraphTensor['type'], data: t.data as Float32Array & BigInt64Array, dims: [...t.dims] }]),
    );
  }

  async project(features: Float32Array, dims: [number, number]): Promise<Float32Array> {
    const session = await this.session('projector');
    const out = await session.run({ image_features: new onnxruntime.Tensor('float32', features, dims) });
    return out.image_embeds!.data as Float32Array;
  }

  async step(req: StepRequest): Promise<StepResult> {
    const started = performance.now();
    const hidden = this.checkpoint.spec.text.hiddenSize;
    const ids = new onnxruntime.Tensor('int64', BigInt64Array.from(req.ids.map(BigInt)), [req.ids.length]);
    const target = 'cache' in req.target ? this.cache(req.target.cache) : this.view(req.target.view);
    const cache = target instanceof KvView ? target.cache : target;
    if (this.resident(req)) {
      await this.syncHost(cache, target);
      // The token's embedding stays on the device, as the decoder's input: only its id goes up.
      const embedding = (await (await this.session('embed', true)).run({ input_ids: ids })).inputs_embeds!;
      const out = await (
        await this.stepper('decoder-present')
      ).runResident(target, { embeds: embedding, positions: req.positions }, this.devicePasts.get(target));
      this.devicePasts.set(target, out.device);
      embedding.dispose();
      const transfer = { hostToDevice: out.transfer.hostToDevice + ids.data.byteLength, deviceToHost: out.transfer.deviceToHost };
      return { logits: out.logits, transfer, seconds: (performance.now() - started) / 1000 };
    }
    const embedSession = await this.session('embed');
    const embeds = (await embedSession.run({ input_ids: ids })).inputs_embeds!.data as Float32Array;
    if (req.splice) {
      const { rows, embeds: image } = req.splice;
      if (image.length !== rows.length * hidden) {
        throw new SparseVilaError('RUNTIME', `splice: ${rows.length} rows need ${rows.length * hidden} values, got ${image.length}`);
      }
      rows.forEach((row, i) => embeds.set(image.subarray(i * hidden, (i + 1) * hidden), row * hidden));
    }
    // Any other step reads and changes the target's rows on the host: device-only rows come back first, and
    // the target's device past is stale after it.
    await this.syncHost(cache);
    this.dropDevicePast(target);
    const kind: GraphKind = `decoder${req.logits === 'all' ? '-all' : ''}${req.massWeights ? '-mass' : ''}` as GraphKind;
    const stepper = await this.stepper(kind);
    const out = await stepper.run(target, { embeds, positions: req.positions, massWeights: req.massWeights, pastBias: req.pastBias, newBias: req.newBias });
    return { ...out, transfer: out.transfer && this.withEmbedding(out.transfer, ids, embeds), seconds: (performance.now() - started) / 1000 };
  }

  /** The embedding lookup is a graph call too: its ids go up, its embeddings come back (and go up again as the decoder's input). */
  private withEmbedding(transfer: DeviceTransfer, ids: ort.Tensor, embeds: Float32Array): DeviceTransfer {
    return { hostToDevice: transfer.hostToDevice + (ids.data as BigInt64Array).byteLength, deviceToHost: transfer.deviceToHost + embeds.byteLength };
  }

  /**
   * Whether a step decodes over a device-resident past: one token, last logits, on a GPU provider, with no
   * per-column bias of its own (in-LLM drops and masked twins pass theirs from the host).
   */
  private resident(req: StepRequest): boolean {
    return (
      this.init.runtime.executionProvider !== 'cpu' &&
      req.ids.length === 1 &&
      req.logits === 'last' &&
      !req.massWeights &&
      !req.pastBias &&
      !req.newBias &&
      !req.splice
    );
  }

  /** A cache's device past and its views'. */
  private dropDevicePasts(cache: KvCache): void {
    for (const target of [...this.devicePasts.keys()]) if (ofCache(target, cache)) this.dropDevicePast(target);
  }

  /**
   * Copies the rows that exist only in device pasts (a resident decode's `pending`) to the host stores of `cache`
   * and its views — before anything reads or changes them on the host. One Slice per layer and tensor, with a
   * host output (a device tensor cannot be read directly in onnxruntime-node). `except`: a target being decoded.
   */
  private async syncHost(cache: KvCache, except?: KvCache | KvView): Promise<void> {
    for (const [target, device] of this.devicePasts) {
      if (target === except || !device.pending.length || !ofCache(target, cache)) continue;
      const session = await this.rowsSession();
      const n = device.pending.length;
      const tail = async (t: ort.Tensor, rows: number) => {
        const out = (await session.run({ rows: t, start: new onnxruntime.Tensor('int64', BigInt64Array.of(BigInt(rows - n)), [1]) })).tail!;
        return out.data as KvRows;
      };
      const keys = await Promise.all(device.keys.map((t, l) => tail(t, device.rows[l]!)));
      const values = await Promise.all(device.values.map((t, l) => tail(t, device.rows[l]!)));
      target.append(keys, values, device.pending);
      device.pending = [];
    }
  }

  private rows?: Promise<ort.InferenceSession>;

  /** A graph returning the last rows of a device KV tensor to the host: Slice(rows, start). */
  private rowsSession(): Promise<ort.InferenceSession> {
    this.rows ??= (async () => {
      const t = this.checkpoint.spec.text;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-rows-'));
      const b = new OnnxGraphBuilder('rows', dir);
      const type = kvTypeOf(this.init.graphs);
      const rows = b.input('rows', type, ['past', t.numKvHeads, t.headDim]);
      const start = b.input('start', 'int64', [1]);
      b.output(b.op('Slice', [rows, start, b.constInt64([1 << 30]), b.constInt64([0])]), 'tail', type, ['new', t.numKvHeads, t.headDim]);
      const { modelPath } = b.save();
      try {
        return await createSession(modelPath, this.init.runtime);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    })();
    return this.rows;
  }

  private dropDevicePast(target: KvCache | KvView): void {
    const device = this.devicePasts.get(target);
    if (!device) return;
    for (const t of [...device.keys, ...device.values, ...device.bias]) t.dispose();
    this.devicePasts.delete(target);
  }

  /** Ends ORT profiling on every session; returns the profile files written. */
  async endProfiling(): Promise<string[]> {
    const prefix = this.init.runtime.profilePrefix;
    if (!prefix) return [];
    for (const s of this.sessions.values()) (await s).endProfiling();
    const dir = path.dirname(path.resolve(prefix));
    const base = path.basename(prefix);
    return fs
      .readdirSync(dir)
      .filter((f) => f.startsWith(`${base}-`) && f.endsWith('.json'))
      .map((f) => path.join(dir, f));
  }

  createCache(): number {
    const t = this.checkpoint.spec.text;
    const id = this.nextId++;
    this.caches.set(id, new KvCache({ layers: t.numLayers, kvHeads: t.numKvHeads, headDim: t.headDim, type: kvTypeOf(this.init.graphs) }));
    return id;
  }

  cache(id: number): KvCache {
    const c = this.caches.get(id);
    if (!c) throw new SparseVilaError('RUNTIME', `no KV cache ${id} (dropped?)`);
    return c;
  }

  view(id: number): KvView {
    const v = this.views.get(id);
    if (!v) throw new SparseVilaError('RUNTIME', `no KV view ${id} (dropped?)`);
    return v;
  }

  createView(cache: number, subsets: (number[] | null)[]): number {
    const id = this.nextId++;
    this.views.set(id, this.cache(cache).select(subsets));
    return id;
  }

  dropCache(id: number): void {
    const cache = this.caches.get(id);
    if (cache) this.dropDevicePasts(cache);
    this.caches.delete(id);
    for (const [vid, v] of this.views) if (v.cache === cache) this.views.delete(vid);
  }

  async handle(req: Request): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
    const none = { value: undefined, transfer: [] };
    switch (req.op) {
      case 'init':
        throw new SparseVilaError('RUNTIME', 'the worker is already initialised');
      case 'graph.ensure':
        await Promise.all(req.kinds.map((k) => this.session(k)));
        return none;
      case 'vision': {
        const r = await this.vision(req.pixels, req.dims);
        return { value: r, transfer: buffers(r.features, r.clsAttention, r.meanAttention, r.keyMetric, r.leadingRows) };
      }
      case 'graph.run': {
        const out = await this.runGraph(req.kind, req.feeds);
        return { value: out, transfer: buffers(...Object.values(out).map((t) => t.data)) };
      }
      case 'project': {
        const r = await this.project(req.features, req.dims);
        return { value: r, transfer: buffers(r) };
      }
      case 'step': {
        const r = await this.step(req);
        return { value: r, transfer: buffers(r.logits, ...(r.mass ?? []), ...Object.values(r.activations ?? {})) };
      }
      case 'cache.create':
        return { value: this.createCache(), transfer: [] };
      case 'cache.drop':
        this.dropCache(req.id);
        return none;
      case 'cache.truncate':
        await this.syncHost(this.cache(req.id));
        this.dropDevicePasts(this.cache(req.id));
        this.cache(req.id).truncate(req.length);
        return none;
      case 'cache.reserve':
        this.cache(req.id).reserve(req.rows);
        return none;
      case 'cache.info': {
        const c = this.cache(req.id);
        await this.syncHost(c);
        const info: CacheInfo = { length: c.length, positions: c.positions.slice(), nextPosition: c.nextPosition };
        return { value: info, transfer: [] };
      }
      case 'view.create':
        await this.syncHost(this.cache(req.cache));
        return { value: this.createView(req.cache, req.subsets), transfer: [] };
      case 'profile.end':
        return { value: await this.endProfiling(), transfer: [] };
      case 'view.drop':
        if (this.views.has(req.id)) {
          const view = this.views.get(req.id)!;
          await this.syncHost(view.cache);
          this.dropDevicePast(view);
        }
        this.views.delete(req.id);
        return none;
    }
  }
}

/** A cache, or a view of it. */
function ofCache(target: KvCache | KvView, cache: KvCache): boolean {
  return target === cache || (target instanceof KvView && target.cache === cache);
}

/** ORT output buffers are fresh per run, so they can be moved to the main thread. */
function buffers(...arrays: (Float32Array | BigInt64Array | undefined)[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const a of arrays) if (a && a.buffer instanceof ArrayBuffer && a.byteLength === a.buffer.byteLength) seen.add(a.buffer);
  return [...seen];
}

let engine: Engine | undefined;
// Requests run one at a time, in arrival order: steps on one cache must not interleave.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: { id: number; req: Request }) => {
  queue = queue.then(() => serve(msg));
});

async function serve(msg: { id: number; req: Request }): Promise<void> {
  try {
    let result: { value: unknown; transfer: ArrayBuffer[] };
    if (msg.req.op === 'init') {
      if (engine) throw new SparseVilaError('RUNTIME', 'the worker is already initialised');
      engine = new Engine(openCheckpoint(msg.req.checkpointDir), msg.req);
      await Promise.all(engine.startupGraphs().map((k) => engine!.session(k)));
      result = { value: undefined, transfer: [] };
    } else {
      if (!engine) throw new SparseVilaError('RUNTIME', 'the worker is not initialised');
      result = await engine.handle(msg.req);
    }
    port.postMessage({ id: msg.id, ok: true, value: result.value } satisfies WorkerMessage, result.transfer);
  } catch (err) {
    const e = err as SparseVilaError;
    port.postMessage({
      id: msg.id,
      ok: false,
      error: { name: e.name ?? 'Error', code: e.code, subject: e.subject, message: e.message ?? String(err) },
    } satisfies WorkerMessage);
  }
}
