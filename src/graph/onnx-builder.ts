/**
 * A small ONNX graph writer. Weights stream straight into an external-data file as they are added, so a
 * graph of any size is built without holding its weights in the JS heap (and past 2 GB, protobuf's limit,
 * nothing changes). Node names follow module paths (`/model/layers.3/self_attn/q_proj/MatMul`) so ORT
 * profiles and graph viewers point back at the checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { SparseVilaError } from '../errors.js';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';
/** A dimension: a fixed size, or a symbolic name ORT resolves at run time. */
export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** Typed arrays an initializer can be written from, with the element type they hold. */
export type TensorBytes =
  | { type: 'float32'; data: Float32Array }
  | { type: 'float16'; data: Uint16Array }
  | { type: 'int64'; data: BigInt64Array }
  | { type: 'int32'; data: Int32Array }
  | { type: 'uint8'; data: Uint8Array };

export interface BuiltGraph {
  modelPath: string;
  dataPath: string;
  bytes: number;
}

/** Opsets used by every graph: default domain 21 (LayerNormalization, Gelu with `approximate`), contrib ops. */
const OPSETS = [
  { domain: '', version: 21 },
  { domain: 'com.microsoft', version: 1 },
];

export class OnnxGraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly scopes: string[] = [];
  private readonly usedNames = new Set<string>();
  /** Node outputs renamed to the graph output they became (`output`): later inputs naming them take the new name. */
  private readonly renamed = new Map<string, string>();
  private readonly fd: number;
  private readonly dataFileName: string;
  private offset = 0;

  constructor(
    readonly graphName: string,
    private readonly outDir: string,
  ) {
    fs.mkdirSync(outDir, { recursive: true });
    this.dataFileName = `${graphName}.onnx.data`;
    this.fd = fs.openSync(path.join(outDir, this.dataFileName), 'w');
  }

  /** Run `fn` with `name` appended to the module path used for node and value names. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  get path(): string {
    return '/' + this.scopes.join('/');
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    this.usedNames.add(name);
    return name;
  }

  /**
   * Makes `value` a graph output called `name`. A node's output that is no graph output yet is renamed (its
   * consumers, earlier and later, read the new name); anything else (an input, an initializer, a value already
   * output) goes out through an Identity. Each Identity is a node that onnxruntime runs and a copy it makes every
   * call: a decode step outputs 48 KV rows and the logits.
   */
  output(value: string, name: string, type: ElemType, dims: Dim[]): void {
    value = this.renamed.get(value) ?? value;
    const producer = this.nodes.find((n) => n.output!.includes(value));
    const isOutput = this.outputs.some((o) => o.name === value);
    if (value !== name && producer && !isOutput && !this.usedNames.has(name)) {
      producer.output = producer.output!.map((o) => (o === value ? name : o));
      for (const n of this.nodes) n.input = n.input!.map((i) => (i === value ? name : i));
      this.renamed.set(value, name);
      this.usedNames.add(name);
    } else if (value !== name) {
      this.node('Identity', [value], { outputs: [name], label: name });
    }
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Adds a weight, streamed into the external-data file now. `name` is the checkpoint tensor name. */
  initializer(name: string, tensor: TensorBytes, dims: number[]): string {
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== tensor.data.length) {
      throw new SparseVilaError('GRAPH_BUILD', `initializer ${name}: ${tensor.data.length} values for dims [${dims}]`, {
        subject: name,
      });
    }
    const unique = this.unique(name);
    // Tiny tensors (shapes, scalars) stay inline: external data for them only adds file seeks.
    if (bytes.byteLength <= 64) {
      this.initializers.push({ name: unique, dataType: ELEM[tensor.type], dims, rawData: bytes.slice() });
      return unique;
    }
    // 64-byte alignment lets ORT map tensors without realignment copies.
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad) fs.writeSync(this.fd, new Uint8Array(pad), 0, pad, this.offset);
    this.offset += pad;
    fs.writeSync(this.fd, bytes, 0, bytes.byteLength, this.offset);
    this.initializers.push({
      name: unique,
      dataType: ELEM[tensor.type],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.dataFileName },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    });
    this.offset += bytes.byteLength;
    return unique;
  }

  /** Small constants: int64 shapes and axes, float scalars. */
  constInt64(values: number[], label = 'const'): string {
    return this.initializer(`${this.path}/${label}`, { type: 'int64', data: BigInt64Array.from(values.map(BigInt)) }, [values.length]);
  }

  constFloat(values: number[] | Float32Array, dims: number[], label = 'const'): string {
    return this.initializer(`${this.path}/${label}`, { type: 'float32', data: Float32Array.from(values) }, dims);
  }

  /**
   * Adds a node; returns its output names. The node is named `<module path>/<label or op>` and its
   * outputs `<node name>/output_<i>`.
   */
  node(
    op: string,
    inputs: string[],
    options: { outputs?: string[] | number; attrs?: Record<string, AttrValue>; domain?: string; label?: string } = {},
  ): string[] {
    const name = this.unique(`${this.path}/${options.label ?? op}`.replace(/^\/+/, '/'));
    const outputs = typeof options.outputs === 'object' ? options.outputs : Array.from({ length: options.outputs ?? 1 }, (_, i) => `${name}/output_${i}`);
    this.nodes.push({
      name,
      opType: op,
      domain: options.domain ?? '',
      input: inputs.map((i) => this.renamed.get(i) ?? i),
      output: outputs,
      attribute: Object.entries(options.attrs ?? {}).map(([key, value]) => attribute(key, value)),
    });
    return outputs;
  }

  /** `node` for the common single-output case. */
  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, domain?: string, label?: string): string {
    return this.node(op, inputs, { attrs, domain, label })[0]!;
  }

  /** Writes `<graphName>.onnx` next to its data file and closes the data file. */
  save(): BuiltGraph {
    fs.closeSync(this.fd);
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'sparsevila-ts',
      opsetImport: OPSETS,
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    const modelPath = path.join(this.outDir, `${this.graphName}.onnx`);
    fs.writeFileSync(modelPath, onnx.ModelProto.encode(model).finish());
    return { modelPath, dataPath: path.join(this.outDir, this.dataFileName), bytes: this.offset };
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') return { name, type: T.INT, i: value };
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.FLOATS, floats: value.floats };
}
