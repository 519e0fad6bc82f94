/**
 * `loadModel(dir)`: validates a checkpoint (config, tokenizer, preprocessor) on the main thread, then starts
 * the inference worker, which builds or loads the graphs. A `Model` hands out `Chat`s.
 */
import type { LlavaSpec } from '../checkpoint/index.js';
import { familyOf, openCheckpoint, type ModelSpec } from '../families/registry.js';
import type { RgbImage } from '../media/rgb-image.js';
import { ConfigError, InputError } from '../errors.js';
import { defaultCacheDir, KV_PRECISIONS, type BuildProgress, type KvPrecision } from '../graph/build.js';
import type { Int4BlockSize } from '../weights/int4.js';
import type { WeightPrecision } from '../graph/layers.js';
import { checkMaxPixels, loadImage, preprocessImage, type PreprocessorConfig } from '../media/index.js';
import { checkThreads } from '../runtime/threads.js';
import { ensureAwqPlan, checkAwqCheckpoint } from '../quant/awq.js';
import type { AwqPlanRef } from '../weights/awq-plan.js';
import { collectActivations } from '../quant/calibrate.js';
import { buildCalibrationSet, DEFAULT_CALIBRATION_SAMPLES, worldCalibrationSamples, type CalibrationSample } from '../quant/calibration-set.js';
import type { ExecutionProvider, RuntimeOptions, SessionSettings } from '../runtime/ort-session.js';
import { checkProvider, deviceInfo, type DeviceInfo } from '../runtime/ort-session.js';
import { Runtime } from '../runtime/runtime.js';
import { loadTextProcessor, type TextProcessor } from '../text/index.js';
import { Chat } from './chat.js';
import type { ChatOptions } from './options.js';
import type { ImageInput, LoadedModel } from './types.js';

export interface LoadOptions {
  /**
   * LLM weight storage: fp32 (default), fp16, int4 (MatMulNBits, round-to-nearest), or awq (int4 with
   * activation-aware scales and clipping searched on calibration prompts run through the fp32 model; the
   * search runs once and is cached). A checkpoint quantized by AutoAWQ defaults to int4: its own weights,
   * repacked exactly; fp32 / fp16 dequantize them.
   */
  precision?: WeightPrecision;
  /** int4 / awq group size. Default 32. (AutoAWQ checkpoints keep their own group size.) */
  blockSize?: Int4BlockSize;
  /**
   * KV cache precision: fp32 (default), or fp16 — half the cache's memory (llama.cpp's default); the attention still
   * computes in float32, over a float32 copy of each layer's past, which on a CPU makes long-context decode slower than
   * fp32's (docs/benchmarks.md, "KV cache precision", with its logit error).
   */
  kvCache?: KvPrecision;
  /**
   * awq: the calibration set — this many synthetic-world conversations (an image, a question and its answer;
   * default 16), or your own samples.
   */
  calibration?: number | readonly CalibrationSample[];
  /** awq: also search per-block weight clipping (AutoAWQ auto_clip). Default true. */
  awqClip?: boolean;
  /**
   * Images over this many pixels are refused (MEMORY_LIMIT, naming the image) from their header, before they are
   * decoded. Default Pillow's decompression-bomb bound (DEFAULT_MAX_IMAGE_PIXELS).
   */
  maxImagePixels?: number;
  /** Execution provider. Default cpu. */
  provider?: ExecutionProvider;
  /** ORT intra-op threads. Default: all cores. */
  threads?: number;
  /** Built-graph cache folder. Default `$SPARSEVILA_CACHE` or `~/.cache/sparsevila/graphs`. */
  cacheDir?: string;
  /** Graph build / cache progress (and AWQ calibration and search). */
  onProgress?: BuildProgress;
  /** Record ORT's own per-operator profile, to files `<prefix>-<graph>_<date>.json` (see Runtime.endProfiling). */
  ortProfilePrefix?: string;
  /**
   * onnxruntime session settings beyond threads: execution mode, inter-op threads, graph optimisation level,
   * memory arena and pattern, intra-op spinning. Unset fields keep the measured defaults (SESSION_DEFAULTS).
   */
  session?: SessionSettings;
}

/** Calibration rows sampled per linear group input for AWQ's error measurements (AutoAWQ's clip search uses 512). */
export const AWQ_CALIBRATION_ROWS = 512;

export class Model implements LoadedModel {
  private constructor(
    readonly dir: string,
    readonly spec: ModelSpec,
    readonly text: TextProcessor,
    /** The family's image processor config (Llava: PreprocessorConfig; Qwen2-VL: its smart_resize limits). */
    readonly processor: unknown,
    readonly runtime: Runtime,
    /** See LoadOptions.maxImagePixels. */
    readonly maxImagePixels?: number,
    /** The execution provider its graphs run on (LoadOptions.provider). */
    readonly provider: ExecutionProvider = 'cpu',
    /** What that provider runs on. */
    readonly device: DeviceInfo = deviceInfo(provider),
  ) {}

  static async load(dir: string, options: LoadOptions = {}): Promise<Model> {
    checkProvider(options.provider ?? 'cpu');
    // Before any work: AWQ's calibration runs threads of its own before the runtime starts.
    checkThreads(options.threads, 'threads');
    checkMaxPixels(options.maxImagePixels);
    const kvCache = options.kvCache ?? 'fp32';
    if (!KV_PRECISIONS.includes(kvCache)) {
      throw new InputError('OPTION_INVALID', `kvCache must be one of ${KV_PRECISIONS.join(', ')}; got '${String(kvCache)}'`, { subject: 'kvCache' });
    }
    const checkpoint = openCheckpoint(dir);
    const spec = checkpoint.spec;
    const quantized = checkpoint.quantization !== undefined;
    checkpoint.close();
    const family = familyOf(spec);
    const text = await loadTextProcessor(dir, { imageToken: family.imageToken, videoToken: family.videoToken });
    if (text.imageTokenId !== null && text.imageTokenId !== spec.imageTokenId) {
      const field = spec.family === 'llava' ? 'image_token_index' : 'image_token_id';
      throw new ConfigError(
        'CONFIG_INVALID',
        `config.json ${field} is ${spec.imageTokenId} but the tokenizer maps '${text.imageToken}' to ${text.imageTokenId}`,
        {
          subject: field,
        },
      );
    }
    if (text.videoTokenId !== null && spec.videoTokenId !== undefined && text.videoTokenId !== spec.videoTokenId) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `config.json video_token_id is ${spec.videoTokenId} but the tokenizer maps '${text.videoToken}' to ${text.videoTokenId}`,
        {
          subject: 'video_token_id',
        },
      );
    }
    const processor = await family.loadProcessor(dir);
    const precision = options.precision ?? (quantized ? 'int4' : 'fp32');
    const blockSize = options.blockSize ?? 32;
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const runtimeOptions: RuntimeOptions = {
      ...options.session,
      executionProvider: options.provider ?? 'cpu',
      intraOpThreads: options.threads,
      profilePrefix: options.ortProfilePrefix,
    };
    if (precision === 'awq' && spec.family !== 'llava') {
      // The calibration set is the synthetic world's images at the Llava tower's fixed size.
      throw new ConfigError(
        'CONFIG_UNSUPPORTED',
        `${dir}: precision 'awq' (the activation-aware search) runs on Llava checkpoints; use int4, or load an AutoAWQ-quantized ${spec.architecture}`,
        {
          subject: 'precision',
        },
      );
    }
    const awq = precision === 'awq' ? await awqPlan(dir, spec as LlavaSpec, text, processor as PreprocessorConfig, options, runtimeOptions) : undefined;
    const portable = runtimeOptions.executionProvider !== 'cpu';
    const runtime = await Runtime.start(dir, { precision, blockSize, cacheDir, awq, portable, kvCache }, runtimeOptions, options.onProgress);
    return new Model(dir, spec, text, processor, runtime, options.maxImagePixels, runtimeOptions.executionProvider);
  }

  /** A new conversation with its own KV cache. */
  chat(options: ChatOptions = {}): Chat {
    return new Chat(this, options);
  }

  /** An image as the vision tower sees it (resized, cropped): what its retention maps are drawn over. */
  async towerView(image: ImageInput): Promise<RgbImage> {
    return familyOf(this.spec).prepare(await loadImage(image, { maxPixels: this.maxImagePixels }), this.processor);
  }

  close(): Promise<void> {
    return this.runtime.close();
  }
}

export const loadModel = (dir: string, options?: LoadOptions): Promise<Model> => Model.load(dir, options);

async function pixelBatch(
  dir: string,
  spec: LlavaSpec,
  preprocessor: PreprocessorConfig,
  images: readonly ImageInput[],
  maxPixels?: number,
): Promise<{ data: Float32Array; dims: number[] }> {
  const tensors = await Promise.all(images.map(async (img) => preprocessImage(await loadImage(img, { maxPixels }), preprocessor)));
  const [, h, w] = tensors[0]!.dims;
  const size = spec.vision.imageSize;
  if (h !== size || w !== size) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `${dir}/preprocessor_config.json produces ${w}×${h} pixels but the vision tower takes ${size}×${size} (vision_config.image_size)`,
      { subject: 'preprocessor_config.json' },
    );
  }
  const data = new Float32Array(tensors.length * 3 * h * w);
  tensors.forEach((t, i) => data.set(t.data, i * 3 * h * w));
  return { data, dims: [tensors.length, 3, h, w] };
}

/**
 * The AWQ plan for precision 'awq': the calibration prompts built as a turn builds them, run through an fp32
 * runtime whose decoder also returns each linear group's input, then the search (src/quant/awq.ts). Cached
 * by checkpoint, block size, clip search and calibration set.
 */
async function awqPlan(
  dir: string,
  spec: LlavaSpec,
  text: TextProcessor,
  preprocessor: PreprocessorConfig,
  options: LoadOptions,
  runtimeOptions: RuntimeOptions,
): Promise<AwqPlanRef> {
  const blockSize = options.blockSize ?? 32;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const checkpoint = openCheckpoint(dir);
  try {
    checkAwqCheckpoint(checkpoint, blockSize);
    const samples = await calibrationSamples(options.calibration, spec);
    const set = await buildCalibrationSet(samples, text, spec, (images) => pixelBatch(dir, spec, preprocessor, images));
    const calibration = { id: set.id, samples: set.prompts.length, tokens: set.tokens };
    const awqOptions = { blockSize, clip: options.awqClip, rows: AWQ_CALIBRATION_ROWS, cacheDir, threads: options.threads, onProgress: options.onProgress };
    return await ensureAwqPlan(checkpoint, calibration, awqOptions, async () => {
      const graphs = { precision: 'fp32' as const, blockSize, cacheDir, calibration: true };
      const runtime = await Runtime.start(dir, graphs, runtimeOptions, options.onProgress);
      try {
        return await collectActivations(runtime, spec, set, AWQ_CALIBRATION_ROWS, options.onProgress);
      } finally {
        await runtime.close();
      }
    });
  } finally {
    checkpoint.close();
  }
}

function calibrationSamples(source: LoadOptions['calibration'], spec: LlavaSpec): Promise<readonly CalibrationSample[]> | readonly CalibrationSample[] {
  if (typeof source === 'object') return source;
  const count = source ?? DEFAULT_CALIBRATION_SAMPLES;
  if (!(Number.isInteger(count) && count >= 1)) {
    throw new InputError('OPTION_INVALID', `calibration must be a positive number of samples, got ${count}`, { subject: 'calibration' });
  }
  return worldCalibrationSamples(count, spec.vision.imageSize);
}
