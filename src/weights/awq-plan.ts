/**
 * An AWQ plan: what activation-aware search (src/quant/) decided for a checkpoint — one input-channel scale
 * per linear group, and per clipped linear a shrink step per (row, block) — plus what it measured. The graph
 * builder applies it to the float weights (awq-weights.ts) and rounds as int4 does. The search writes plans
 * and the builder reads them, so the format lives here, below both.
 *
 * It is stored as a safetensors file in the graph cache, keyed by everything that changes the weights
 * (checkpoint fingerprint, method version, block size, clip search, calibration set), so the graphs built
 * from it are keyed by the plan's id:
 *   awq.scale.<layer>.<tap>   F32 [in]
 *   awq.clip.<module>         U8  [out · blocks]  the block's max |w| is shrunk by step / CLIP_GRID
 *   __metadata__              format, version, block size, calibration and the per-group report (JSON)
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { openSafetensors } from '../checkpoint/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors-writer.js';
import { CheckpointError } from '../errors.js';
import type { CalibrationTap } from './awq-groups.js';
import type { Int4BlockSize } from './int4.js';

/** Bump when the search changes what it decides, so plans of an older search are not reused. */
export const AWQ_VERSION = 1;
const FORMAT = 'sparsevila-awq';

/** Grid of the ratio search (α = i / SCALE_GRID) and of the clip search (shrink = i / CLIP_GRID), as AutoAWQ. */
export const SCALE_GRID = 20;
export const CLIP_GRID = 20;
/** Clip candidates shrink the block's max |w| by at most this fraction (AutoAWQ `max_shrink`). */
export const CLIP_MAX_SHRINK = 0.5;

/** What the search measured for one group: squared output error summed over calibration rows and outputs. */
export interface AwqGroupReport {
  layer: number;
  tap: CalibrationTap;
  /** The chosen ratio: s = mean|x|^alpha (0 means round-to-nearest). */
  alpha: number;
  /** Round-to-nearest (alpha = 0, no clip). */
  rtnError: number;
  /** After the scale search. */
  scaledError: number;
  /** After the clip search too: what the graph computes. */
  error: number;
  /** Linears of the group whose clipping was kept. */
  clipped: string[];
}

export interface AwqCalibrationInfo {
  /** Identity of the calibration set (a hash of its token ids and pixels). */
  id: string;
  samples: number;
  tokens: number;
  /** Calibration rows kept per group input for the error measurements. */
  rows: number;
}

export interface AwqPlan {
  blockSize: Int4BlockSize;
  clip: boolean;
  calibration: AwqCalibrationInfo;
  /** `${layer}.${tap}` → s. */
  scales: Map<string, Float32Array>;
  /** Module path → shrink steps, row-major [out, blocks]. */
  clips: Map<string, Uint8Array>;
  report: AwqGroupReport[];
}

/** Where a plan is kept, and its id: what a graph build needs of it (GraphBuildOptions.awq). */
export interface AwqPlanRef {
  file: string;
  id: string;
}

export interface AwqPlanKeyParts {
  fingerprint: string;
  blockSize: Int4BlockSize;
  clip: boolean;
  calibrationId: string;
  rows: number;
}

export function scaleKey(layer: number, tap: CalibrationTap): string {
  return `${layer}.${tap}`;
}

/** The plan's id: it names the plan file and enters the cache key of the graphs built from it. */
export function awqPlanId(parts: AwqPlanKeyParts): string {
  const key = JSON.stringify({ awq: AWQ_VERSION, ...parts, grid: SCALE_GRID, clipGrid: CLIP_GRID, maxShrink: CLIP_MAX_SHRINK });
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 24);
}

export function awqPlanPath(cacheDir: string, id: string): string {
  return path.join(cacheDir, 'awq', `${id}.safetensors`);
}

export function writeAwqPlan(file: string, plan: AwqPlan): void {
  const tensors: TensorToWrite[] = [];
  for (const [key, s] of plan.scales) tensors.push({ name: `awq.scale.${key}`, dtype: 'F32', shape: [s.length], values: s });
  for (const [module, steps] of plan.clips) tensors.push({ name: `awq.clip.${module}`, dtype: 'U8', shape: [steps.length], raw: steps });
  writeSafetensors(file, tensors, {
    format: FORMAT,
    version: String(AWQ_VERSION),
    block_size: String(plan.blockSize),
    clip: String(plan.clip),
    calibration: JSON.stringify(plan.calibration),
    report: JSON.stringify(plan.report),
  });
}

export function readAwqPlan(file: string): AwqPlan {
  const store = openSafetensors(file);
  try {
    const meta = store.files[0]!.metadata;
    if (meta.format !== FORMAT || meta.version !== String(AWQ_VERSION)) {
      throw new CheckpointError('CHECKPOINT_CORRUPT', `${file} is not an AWQ plan of version ${AWQ_VERSION} (format ${meta.format}, version ${meta.version})`, {
        subject: file,
      });
    }
    const plan: AwqPlan = {
      blockSize: Number(meta.block_size) as Int4BlockSize,
      clip: meta.clip === 'true',
      calibration: JSON.parse(meta.calibration ?? '{}') as AwqCalibrationInfo,
      scales: new Map(),
      clips: new Map(),
      report: JSON.parse(meta.report ?? '[]') as AwqGroupReport[],
    };
    for (const name of store.names()) {
      if (name.startsWith('awq.scale.')) plan.scales.set(name.slice('awq.scale.'.length), store.read(name));
      else if (name.startsWith('awq.clip.')) plan.clips.set(name.slice('awq.clip.'.length), store.readRaw(name, 'U8'));
    }
    return plan;
  } finally {
    store.close();
  }
}
