/**
 * Calibration activations from the engine itself: each calibration prompt goes through the runtime as a
 * turn's prefill does (vision tower, projector, image embeddings spliced at the image-token rows, one
 * decoder call), on the calibration variant of the fp32 decoder graph, which also returns the input of every
 * linear group (graph/decoder.ts). Per group input it keeps the mean |x| of each channel over every token,
 * and an evenly spaced sample of whole rows for the error measurements.
 */
import type { LlavaSpec } from '../checkpoint/spec.js';
import { InputError, RuntimeError } from '../errors.js';
import type { BuildProgress } from '../graph/build.js';
import { calibrationOutput } from '../graph/decoder.js';
import type { Runtime } from '../runtime/runtime.js';
import { allAwqGroups } from '../weights/awq-groups.js';
import { scaleKey } from '../weights/awq-plan.js';
import type { Calibration } from './awq.js';
import type { CalibrationSet } from './calibration-set.js';

/** `runtime` must run the calibration decoder graph (GraphBuildOptions.calibration). */
export async function collectActivations(
  runtime: Runtime,
  spec: LlavaSpec,
  set: CalibrationSet,
  rows: number,
  onProgress?: BuildProgress,
): Promise<Calibration> {
  const groups = allAwqGroups(spec.text);
  const kept = Math.min(rows, set.tokens);
  // Global token indices of the sampled rows, ascending and distinct (evenly spaced over all prompts).
  const picks = Array.from({ length: kept }, (_, i) => Math.floor(((i + 0.5) * set.tokens) / kept));
  const sums = groups.map((g) => new Float64Array(g.in));
  const samples = groups.map((g) => new Float32Array(kept * g.in));
  const started = performance.now();
  onProgress?.({ graph: 'awq-calibration', phase: 'start', cached: false });
  let seen = 0;
  let nextPick = 0;
  for (const [p, prompt] of set.prompts.entries()) {
    const out = await runPrompt(runtime, spec, prompt.ids, prompt.pixels);
    const T = prompt.ids.length;
    const pickRows: number[] = [];
    while (nextPick < kept && picks[nextPick]! < seen + T) pickRows.push(picks[nextPick++]! - seen);
    groups.forEach((g, gi) => {
      const name = calibrationOutput(g.tap, g.layer);
      const x = out[name];
      if (!x || x.length !== T * g.in) {
        throw new RuntimeError('RUNTIME', `the calibration graph returned no ${name} of [${T}, ${g.in}]: is the runtime's decoder the calibration variant?`, {
          subject: name,
        });
      }
      const sum = sums[gi]!;
      for (let base = 0; base < x.length; base += g.in) {
        for (let c = 0; c < g.in; c++) sum[c]! += Math.abs(x[base + c]!);
      }
      pickRows.forEach((r, j) => samples[gi]!.set(x.subarray(r * g.in, (r + 1) * g.in), (nextPick - pickRows.length + j) * g.in));
    });
    seen += T;
    onProgress?.({ graph: 'awq-calibration', phase: 'layer', cached: false, done: p + 1, total: set.prompts.length });
  }
  onProgress?.({ graph: 'awq-calibration', phase: 'done', cached: false, seconds: (performance.now() - started) / 1000 });
  const calibration: Calibration = new Map();
  groups.forEach((g, gi) => {
    const meanAbs = Float32Array.from(sums[gi]!, (v) => v / set.tokens);
    calibration.set(scaleKey(g.layer, g.tap), { x: samples[gi]!, rows: kept, meanAbs });
  });
  return calibration;
}

/** One prompt through the runtime as a prefill: returns the calibration outputs by name. */
async function runPrompt(
  runtime: Runtime,
  spec: LlavaSpec,
  ids: number[],
  pixels: { data: Float32Array; dims: number[] } | undefined,
): Promise<Record<string, Float32Array>> {
  const rows = ids.flatMap((id, row) => (id === spec.imageTokenId ? [row] : []));
  let splice: { rows: number[]; embeds: Float32Array } | undefined;
  if (pixels) {
    const vision = await runtime.vision(pixels.data, pixels.dims);
    const [n, tokens, size] = vision.featureDims as [number, number, number];
    if (n * tokens !== rows.length) {
      throw new InputError('IMAGE_COUNT_MISMATCH', `a calibration prompt has ${rows.length} image-token positions for ${n * tokens} image tokens`, {
        subject: 'calibration',
      });
    }
    splice = { rows, embeds: await runtime.project(vision.features, [n * tokens, size]) };
  }
  const cache = await runtime.createCache();
  try {
    const out = await runtime.step({ target: { cache }, ids, positions: ids.map((_, i) => i), splice, logits: 'last' });
    return out.activations ?? {};
  } finally {
    await runtime.dropCache(cache);
  }
}
