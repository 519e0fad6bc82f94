/**
 * One call of the decoder graph over a KV cache or view: feeds each layer's past as a zero-copy prefix of
 * the store, appends the returned rows. Chunked prefill is several calls; decode is a call with one token.
 */
import { MASKED, type DeviceTransfer } from './protocol.js';
import ort from 'onnxruntime-node';
import type { KvType } from '../graph/decoder.js';
import type { KvCache, KvRows, KvView, LayerPast } from './kv-cache.js';

export interface StepInput {
  /** [T, hidden] embeddings of the new tokens. */
  embeds: Float32Array;
  /** Rotary position of each new token; with `positionRows` 3, optionally the three M-RoPE rows (3 × T, row-major). */
  positions: ArrayLike<number>;
  /** Weights over the T query rows for the attention-mass output (graph variant with `mass`). */
  massWeights?: Float32Array;
  /** Per-layer additive bias over the past columns (length = that layer's past rows); default 0. */
  pastBias?: (Float32Array | null)[];
  /** Per-layer additive bias over the new columns (length T); default 0. */
  newBias?: (Float32Array | null)[];
}

export interface StepOutput {
  /** [1 | T, vocab] */
  logits: Float32Array;
  /** Per layer [heads, P_l + T]: attention mass from the weighted query rows (past columns first). */
  mass?: Float32Array[];
  /** The calibration graph's linear-group inputs, by output name (graph/decoder.ts `calibrationOutput`). */
  activations?: Record<string, Float32Array>;
  /**
   * On a GPU provider, the bytes this call moved: every feed is a host tensor onnxruntime uploads (the KV view
   * included), every output one it downloads.
   */
  transfer?: DeviceTransfer;
}

/**
 * A target's past on the device (a GPU provider's decode): per layer the keys, values and score bias the
 * previous step returned as `present_*` (graph/decoder.ts), and how many rows each holds. Its last
 * `pending.length` rows exist only there (their rotary positions in `pending`): the worker copies them to the host
 * store when the host next needs the target (`Engine.syncHost`), not every step.
 */
export interface DevicePast {
  keys: ort.Tensor[];
  values: ort.Tensor[];
  bias: ort.Tensor[];
  rows: number[];
  pending: number[];
}

export class DecoderStepper {
  private zeros = new Float32Array(1024);
  private readonly dummy: { keys: KvRows; values: KvRows; bias: Float32Array };

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly layers: number,
    private readonly kvHeads: number,
    private readonly headDim: number,
    private readonly hidden: number,
    /** Position rows the graph takes: 1, or 3 for M-RoPE (graph/decoder.ts). */
    private readonly positionRows: 1 | 3 = 1,
    /** The session runs on a GPU provider: count what each call moves between host and device. */
    private readonly onDevice = false,
    /** The graph's KV rows (graph/build.ts kvTypeOf): the store holds the same, so rows pass unconverted. */
    private readonly kvType: KvType = 'float32',
  ) {
    const row = kvType === 'float16' ? new Uint16Array(kvHeads * headDim) : new Float32Array(kvHeads * headDim);
    this.dummy = { keys: row, values: row, bias: new Float32Array([MASKED]) };
  }

  async run(target: KvCache | KvView, input: StepInput): Promise<StepOutput> {
    const T = input.embeds.length / this.hidden;
    if (!Number.isInteger(T)) throw new RangeError(`step embeddings hold ${input.embeds.length} values, not a multiple of hidden ${this.hidden}`);
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', input.embeds, [1, T, this.hidden]),
      position_ids: this.positionIds(input.positions, T),
    };
    if (input.massWeights) feeds.mass_weights = new ort.Tensor('float32', input.massWeights, [1, 1, T]);
    const dummyLayers = new Set<number>();
    for (let l = 0; l < this.layers; l++) {
      if (this.feedPast(feeds, l, target.past(l), input.pastBias?.[l] ?? null)) dummyLayers.add(l);
      const newBias = input.newBias?.[l] ?? null;
      if (newBias && newBias.length !== T) throw new RangeError(`layer ${l}: new bias has ${newBias.length} entries for ${T} new tokens`);
      feeds[`new_bias.${l}`] = new ort.Tensor('float32', newBias ?? this.zeroBias(T), [T]);
    }
    const out = await this.session.run(feeds);
    const keys: KvRows[] = [];
    const values: KvRows[] = [];
    for (let l = 0; l < this.layers; l++) {
      keys.push(this.kvRows(out[`new_key.${l}`]!));
      values.push(this.kvRows(out[`new_value.${l}`]!));
    }
    // The cache keeps one position per row (the temporal row under M-RoPE): keys are stored after rotary.
    target.append(keys, values, input.positions.length === T ? input.positions : (Array.prototype.slice.call(input.positions, 0, T) as number[]));
    const mass = input.massWeights
      ? Array.from({ length: this.layers }, (_, l) => {
          const m = out[`attn_mass.${l}`]!.data as Float32Array;
          return dummyLayers.has(l) ? dropFirstColumn(m, m.length / (T + 1)) : m;
        })
      : undefined;
    const taps = Object.keys(out).filter((name) => name.startsWith('calibration.'));
    const activations = taps.length ? Object.fromEntries(taps.map((name) => [name, out[name]!.data as Float32Array])) : undefined;
    const transfer = this.onDevice ? { hostToDevice: sumBytes(Object.values(feeds)), deviceToHost: sumBytes(Object.values(out)) } : undefined;
    return { logits: out.logits!.data as Float32Array, mass, activations, transfer };
  }

  /**
   * One decode token over a past that stays on the device (the `decoder-present` graph on a GPU provider); its
   * embedding (the embeddings graph's output) is on the device already.
   * A layer whose device past holds as many rows as the target's host store reads it from the device;
   * otherwise (the turn's first step, or after the host store changed) its host past is uploaded once. The step
   * returns its past-plus-new rows as device tensors for the next step; its new rows reach the host store later,
   * all at once (`pending`). Per step, the token's id, positions and biases go up and its logits come back,
   * whatever the cache's length.
   */
  async runResident(
    target: KvCache | KvView,
    input: { embeds: ort.Tensor; positions: ArrayLike<number> },
    device: DevicePast | undefined,
  ): Promise<StepOutput & { device: DevicePast; transfer: DeviceTransfer }> {
    if (input.embeds.dims.join() !== `1,1,${this.hidden}`)
      throw new RangeError(`a resident decode step takes one token's embedding, got [${input.embeds.dims}]`);
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: input.embeds,
      position_ids: this.positionIds(input.positions, 1),
    };
    const pending = device?.pending ?? [];
    const onDevice = device !== undefined && device.rows.every((rows, l) => rows === target.past(l).rows + pending.length);
    if (!onDevice && pending.length) throw new RangeError(`a device past holds ${pending.length} rows its host store lost`);
    for (let l = 0; l < this.layers; l++) {
      const past = target.past(l);
      if (onDevice) {
        feeds[`past_key.${l}`] = device.keys[l]!;
        feeds[`past_value.${l}`] = device.values[l]!;
        feeds[`past_bias.${l}`] = device.bias[l]!;
      } else if (this.feedPast(feeds, l, past, null)) {
        throw new RangeError(`layer ${l}: a resident decode step needs a past`);
      }
      feeds[`new_bias.${l}`] = new ort.Tensor('float32', this.zeroBias(1), [1]);
    }
    // Only the logits come back: the device past and the step's new rows (its session keeps them on the device,
    // worker.ts) stay there; the new rows reach the host later, from the device past (`pending`).
    const layers = Array.from({ length: this.layers }, (_, l) => l);
    const out = await this.session.run(feeds);
    for (const l of layers) for (const name of [`new_key.${l}`, `new_value.${l}`]) out[name]!.dispose();
    // The previous step's device past is consumed: its rows live on in this step's present tensors.
    if (device) for (const t of [...device.keys, ...device.values, ...device.bias]) t.dispose();
    const next: DevicePast = {
      keys: layers.map((l) => out[`present_key.${l}`]!),
      values: layers.map((l) => out[`present_value.${l}`]!),
      bias: layers.map((l) => out[`present_bias.${l}`]!),
      rows: layers.map((l) => target.past(l).rows + pending.length + 1),
      pending: [...pending, input.positions[0]!],
    };
    const transfer = { hostToDevice: sumBytes(Object.values(feeds)), deviceToHost: sumBytes(Object.values(out)) };
    return { logits: out.logits!.data as Float32Array, transfer, device: next };
  }

  /** position_ids as the graph takes them: [T], or [3, T] (a text step's single row repeated). */
  private positionIds(positions: ArrayLike<number>, T: number): ort.Tensor {
    const rows = positions.length / T;
    if (rows !== 1 && rows !== this.positionRows)
      throw new RangeError(`${positions.length} positions for ${T} tokens; ${T} or ${this.positionRows * T} expected`);
    const ids = new BigInt64Array(this.positionRows * T);
    for (let i = 0; i < ids.length; i++) ids[i] = BigInt(positions[rows === 1 ? i % T : i]!);
    return new ort.Tensor('int64', ids, this.positionRows === 1 ? [T] : [3, T]);
  }

  /** Feeds layer l's past; returns true when it had none and a masked dummy row stood in. */
  private feedPast(feeds: Record<string, ort.Tensor>, l: number, past: LayerPast, bias: Float32Array | null): boolean {
    const dims = (rows: number) => [rows, this.kvHeads, this.headDim];
    if (past.rows === 0) {
      // No past yet: one masked dummy row (ORT's MatMul faults on an empty operand).
      feeds[`past_key.${l}`] = this.kvTensor(this.dummy.keys, dims(1));
      feeds[`past_value.${l}`] = this.kvTensor(this.dummy.values, dims(1));
      feeds[`past_bias.${l}`] = new ort.Tensor('float32', this.dummy.bias, [1]);
      return true;
    }
    if (bias && bias.length !== past.rows) {
      throw new RangeError(`layer ${l}: past bias has ${bias.length} entries for ${past.rows} past rows`);
    }
    feeds[`past_key.${l}`] = this.kvTensor(past.keys, dims(past.rows));
    feeds[`past_value.${l}`] = this.kvTensor(past.values, dims(past.rows));
    feeds[`past_bias.${l}`] = new ort.Tensor('float32', bias ?? this.zeroBias(past.rows), [past.rows]);
    return false;
  }

  /** Host KV rows as the graph takes them: a view of the store, in its type. */
  private kvTensor(rows: KvRows, dims: number[]): ort.Tensor {
    return this.kvType === 'float16' ? new ort.Tensor('float16', rows as Uint16Array, dims) : new ort.Tensor('float32', rows as Float32Array, dims);
  }

  /** A graph's KV rows output, for the host store (the same type). */
  private kvRows(t: ort.Tensor): KvRows {
    return t.data as KvRows;
  }

  private zeroBias(rows: number): Float32Array {
    if (this.zeros.length < rows) this.zeros = new Float32Array(Math.max(rows, this.zeros.length * 2));
    return this.zeros.subarray(0, rows);
  }
}

/** Bytes of the host tensors among `tensors`: those onnxruntime copies across (device tensors stay). */
function sumBytes(tensors: ort.Tensor[]): number {
  return tensors.reduce((n, t) => n + (t.location === 'cpu' ? (t.data as ArrayBufferView).byteLength : 0), 0);
}

/** [rows, cols] → [rows, cols − 1] without column 0 (the dummy past row's mass). */
function dropFirstColumn(m: Float32Array, rows: number): Float32Array {
  const cols = m.length / rows;
  const out = new Float32Array(rows * (cols - 1));
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * cols + 1, (r + 1) * cols), r * (cols - 1));
  return out;
}
