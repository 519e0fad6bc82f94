/**
 * The AWQ search's one expensive measurement, ‖X·Δᵀ‖² (X: calibration rows [rows, k], Δ: a weight error
 * [n, k]), as a two-node ONNX graph run by onnxruntime: Gemm(X, Δ, transB) then ReduceSumSquare per row.
 * MLAS's GEMM is ~50× a JS loop here, which is what makes a 20-point search per layer affordable; the per-row
 * sums are added in float64.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { OnnxGraphBuilder } from '../graph/onnx-builder.js';

export interface OutputErrorMeter {
  /** Σ over rows and outputs of (x · Δᵀ)²; x is row-major [rows, k], delta [n, k]. */
  measure(x: Float32Array, rows: number, delta: Float32Array, n: number): Promise<number>;
  close(): Promise<void>;
}

export async function outputErrorMeter(threads?: number): Promise<OutputErrorMeter> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-awq-'));
  let session: ort.InferenceSession;
  try {
    const b = new OnnxGraphBuilder('output_error', dir);
    const x = b.input('x', 'float32', ['rows', 'k']);
    const delta = b.input('delta', 'float32', ['n', 'k']);
    const y = b.op('Gemm', [x, delta], { transB: 1 });
    b.output(b.op('ReduceSumSquare', [y, b.constInt64([1], 'axes')], { keepdims: 0 }), 'row_error', 'float32', ['rows']);
    session = await ort.InferenceSession.create(b.save().modelPath, threads ? { intraOpNumThreads: threads } : {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    async measure(x, rows, delta, n) {
      const k = x.length / rows;
      const out = await session.run({
        x: new ort.Tensor('float32', x, [rows, k]),
        delta: new ort.Tensor('float32', delta, [n, k]),
      });
      let sum = 0;
      for (const v of out.row_error!.data as Float32Array) sum += v;
      return sum;
    },
    close: () => session.release(),
  };
}
