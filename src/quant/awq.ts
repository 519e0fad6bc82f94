/**
 * AWQ as a build stage: from a float checkpoint and calibration activations to a plan
 * (src/weights/awq-plan.ts) in the graph cache, which the graph builder then applies. The plan is searched
 * once per (checkpoint, block size, clip search, calibration set) and reused by every later load.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import type { TextSpec } from '../checkpoint/spec.js';
import { ConfigError, SparseVilaError } from '../errors.js';
import type { BuildProgress } from '../graph/build.js';
import { awqGroups, type AwqGroup } from '../weights/awq-groups.js';
import {
  awqPlanId,
  awqPlanPath,
  scaleKey,
  writeAwqPlan,
  type AwqCalibrationInfo,
  type AwqGroupReport,
  type AwqPlan,
  type AwqPlanRef,
} from '../weights/awq-plan.js';
import { awqWeights, clipBlocks } from '../weights/awq-weights.js';
import { fakeQuantizeInt4, type Int4BlockSize } from '../weights/int4.js';
import type { WeightReader } from '../weights/weight-reader.js';
import { scaleInput, searchClip, searchScale, type GroupActivations, type ScaleSearch } from './awq-search.js';
import { outputErrorMeter, type OutputErrorMeter } from './output-error.js';

/** Calibration activations per group input, keyed by `scaleKey(layer, tap)`. */
export type Calibration = Map<string, GroupActivations>;

export interface AwqOptions {
  blockSize: Int4BlockSize;
  /** Also search per-block clipping (AutoAWQ auto_clip). Default true. */
  clip?: boolean;
  /** Calibration rows kept per group input for the error measurements. */
  rows: number;
  /** ORT threads for the error measurements. */
  threads?: number;
  onProgress?: BuildProgress;
}

/**
 * The plan for `checkpoint` under these options and calibration set: from the cache, or searched now on the
 * activations `collect` returns (it runs the calibration graphs; see calibrate.ts).
 */
export async function ensureAwqPlan(
  checkpoint: Checkpoint,
  calibration: Omit<AwqCalibrationInfo, 'rows'>,
  options: AwqOptions & { cacheDir: string },
  collect: () => Promise<Calibration>,
): Promise<AwqPlanRef> {
  checkAwqCheckpoint(checkpoint, options.blockSize);
  const clip = options.clip ?? true;
  const id = awqPlanId({ fingerprint: checkpoint.fingerprint, blockSize: options.blockSize, clip, calibrationId: calibration.id, rows: options.rows });
  const file = awqPlanPath(options.cacheDir, id);
  if (fs.existsSync(file)) return { file, id };
  const activations = await collect();
  const plan = await searchAwqPlan(checkpoint, checkpoint.spec.text, activations, { ...options, clip });
  plan.calibration = { ...calibration, rows: options.rows };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeAwqPlan(file, plan);
  return { file, id };
}

/**
 * AWQ needs float weights and input widths that are whole blocks (AutoAWQ asserts the same; a padded last
 * block would put zero-weight channels under the search's scales).
 */
export function checkAwqCheckpoint(checkpoint: Checkpoint, blockSize: Int4BlockSize): void {
  const file = `${checkpoint.dir}/config.json`;
  if (checkpoint.quantization) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: quantization_config.quant_method = "${checkpoint.quantization.method}": the checkpoint is already quantized; load it with precision int4 (its own weights) instead of awq`,
      { subject: 'quantization_config.quant_method' },
    );
  }
  const t = checkpoint.spec.text;
  const widths: [string, number][] = [
    ['text_config.hidden_size', t.hiddenSize],
    ['text_config.intermediate_size', t.intermediateSize],
    ['text_config.num_attention_heads × head_dim', t.numHeads * t.headDim],
  ];
  for (const [field, width] of widths) {
    if (width % blockSize !== 0) {
      throw new ConfigError(
        'CONFIG_UNSUPPORTED',
        `${file}: ${field} = ${width} is not a multiple of the AWQ block size ${blockSize}; pick a block size that divides it (16, 32, 64 or 128)`,
        { subject: field },
      );
    }
  }
}

/** Searches scales (and clips) for every group of every layer. Frees each layer's activations when done. */
export async function searchAwqPlan(
  weights: WeightReader,
  spec: TextSpec,
  calibration: Calibration,
  options: AwqOptions & { clip: boolean },
): Promise<AwqPlan> {
  const plan: AwqPlan = {
    blockSize: options.blockSize,
    clip: options.clip,
    calibration: { id: '', samples: 0, tokens: 0, rows: options.rows },
    scales: new Map(),
    clips: new Map(),
    report: [],
  };
  const meter = await outputErrorMeter(options.threads);
  try {
    options.onProgress?.({ graph: 'awq-search', phase: 'start', cached: false });
    const started = performance.now();
    for (let layer = 0; layer < spec.numLayers; layer++) {
      const groups = awqGroups(spec, layer);
      const searched: { group: AwqGroup; act: GroupActivations; search: ScaleSearch }[] = [];
      for (const g of groups) {
        const act = activationsOf(calibration, g);
        const linears = g.linears.map((l) => ({ w: weights.read(`${l.module}.weight`, [l.out, g.in]), out: l.out }));
        const s = await searchScale(meter, act, linears, options.blockSize);
        plan.scales.set(scaleKey(layer, g.tap), s.scale);
        searched.push({ group: g, act, search: s });
      }
      // Clipping is searched on the weights as the graph will hold them: every scale of the layer folded in.
      const scaled = awqWeights(weights, spec, { ...plan, clips: new Map() });
      for (const { group, act, search } of searched) {
        const { error, clipped } = await clipGroup(meter, scaled, group, groups, act, plan, options);
        plan.report.push({ layer, tap: group.tap, alpha: search.alpha, rtnError: search.rtnError, scaledError: search.error, error, clipped });
        calibration.delete(scaleKey(layer, group.tap));
      }
      options.onProgress?.({ graph: 'awq-search', phase: 'layer', cached: false, done: layer + 1, total: spec.numLayers });
    }
    options.onProgress?.({ graph: 'awq-search', phase: 'done', cached: false, seconds: (performance.now() - started) / 1000 });
  } finally {
    await meter.close();
  }
  return plan;
}

function activationsOf(calibration: Calibration, g: AwqGroup): GroupActivations {
  const act = calibration.get(scaleKey(g.layer, g.tap));
  if (!act) {
    throw new SparseVilaError('GRAPH_BUILD', `the calibration holds no activations for layer ${g.layer}'s ${g.tap} input`, {
      subject: `calibration.${g.tap}.${g.layer}`,
    });
  }
  return act;
}

/**
 * Clip search for each linear of a group that AutoAWQ clips; returns the group's final output error (in the
 * original output space) and the linears whose clipping was kept.
 */
async function clipGroup(
  meter: OutputErrorMeter,
  scaled: WeightReader,
  group: AwqGroup,
  layerGroups: readonly AwqGroup[],
  act: GroupActivations,
  plan: AwqPlan,
  options: AwqOptions & { clip: boolean },
): Promise<{ error: number; clipped: string[] }> {
  const s = plan.scales.get(scaleKey(group.layer, group.tap))!;
  const x = scaleInput(act, s);
  const clipped: string[] = [];
  let error = 0;
  for (const l of group.linears) {
    const w = scaled.read(`${l.module}.weight`, [l.out, group.in]);
    // A linear that feeds a later group has its rows divided by that group's scale: undo it when measuring.
    const fold = layerGroups.find((g) => g.foldInto === l.module);
    const rowScale = fold ? plan.scales.get(scaleKey(fold.layer, fold.tap)) : undefined;
    const measure = (candidate: Float32Array) => meter.measure(x, act.rows, outputDelta(candidate, w, l.out, rowScale, options.blockSize), l.out);
    const plain = await measure(w);
    if (!options.clip || !l.clip) {
      error += plain;
      continue;
    }
    const steps = searchClip(x, act.rows, w, l.out, options.blockSize);
    if (steps.every((v) => v === 0)) {
      error += plain;
      continue;
    }
    const clippedW = Float32Array.from(w);
    clipBlocks(clippedW, group.in, options.blockSize, steps);
    const withClip = await measure(clippedW);
    if (withClip < plain) {
      plan.clips.set(l.module, steps);
      clipped.push(l.module);
      error += withClip;
    } else {
      error += plain;
    }
  }
  return { error, clipped };
}

/** (Q(candidate) − w) with row r times rowScale[r]: the output error in the unscaled model's units. */
function outputDelta(candidate: Float32Array, w: Float32Array, out: number, rowScale: Float32Array | undefined, blockSize: Int4BlockSize): Float32Array {
  const k = w.length / out;
  const d = fakeQuantizeInt4(candidate, out, k, blockSize);
  for (let i = 0; i < d.length; i++) d[i] = (d[i]! - w[i]!) * (rowScale ? rowScale[Math.floor(i / k)]! : 1);
  return d;
}
