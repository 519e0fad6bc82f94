/**
 * `loadModel(dir)`: validates a checkpoint (config, tokenizer, preprocessor) on the main thread, then starts
 * the inference worker, which builds or loads the graphs. A `Model` hands out `Chat`s.
 */
import { openCheckpoint, type LlavaSpec } from '../checkpoint/index.js';
import { ConfigError } from '../errors.js';
import type { BuildProgress } from '../graph/build.js';
import type { Int4BlockSize } from '../graph/int4.js';
import type { WeightPrecision } from '../graph/layers.js';
import { loadPreprocessorConfig, loadImage, preprocessImage, type PreprocessorConfig } from '../media/index.js';
import type { ExecutionProvider } from '../runtime/ort-session.js';
import { checkProvider } from '../runtime/ort-session.js';
import { Runtime } from '../runtime/runtime.js';
import { loadTextProcessor, type TextProcessor } from '../text/index.js';
import { Chat, type ChatOptions } from './chat.js';

export interface LoadOptions {
  /** LLM weight storage: fp32 (default), fp16, or int4 (MatMulNBits, round-to-nearest). */
  precision?: WeightPrecision;
  /** int4 group size. Default 32. */
  blockSize?: Int4BlockSize;
  /** Execution provider. Default cpu. */
  provider?: ExecutionProvider;
  /** ORT intra-op threads. Default: all cores. */
  threads?: number;
  /** Built-graph cache folder. Default `$SPARSEVILA_CACHE` or `~/.cache/sparsevila/graphs`. */
  cacheDir?: string;
  /** Graph build / cache progress. */
  onProgress?: BuildProgress;
  /** Record ORT's own per-operator profile, to files `<prefix>-<graph>_<date>.json` (see Runtime.endProfiling). */
  ortProfilePrefix?: string;
}

/** Images for one turn: file paths, encoded bytes, or already decoded RGB. */
export type ImageInput = string | Uint8Array;

export class Model {
  private constructor(
    readonly dir: string,
    readonly spec: LlavaSpec,
    readonly text: TextProcessor,
    readonly preprocessor: PreprocessorConfig,
    readonly runtime: Runtime,
  ) {}

  static async load(dir: string, options: LoadOptions = {}): Promise<Model> {
    checkProvider(options.provider ?? 'cpu');
    const checkpoint = openCheckpoint(dir);
    const spec = checkpoint.spec;
    checkpoint.close();
    const text = await loadTextProcessor(dir);
    if (text.imageTokenId !== null && text.imageTokenId !== spec.imageTokenId) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `config.json image_token_index is ${spec.imageTokenId} but the tokenizer maps '${text.imageToken}' to ${text.imageTokenId}`,
        { subject: 'image_token_index' },
      );
    }
    const preprocessor = await loadPreprocessorConfig(dir);
    const runtime = await Runtime.start(
      dir,
      { precision: options.precision ?? 'fp32', blockSize: options.blockSize ?? 32, cacheDir: options.cacheDir },
      { executionProvider: options.provider ?? 'cpu', intraOpThreads: options.threads, profilePrefix: options.ortProfilePrefix },
      options.onProgress,
    );
    return new Model(dir, spec, text, preprocessor, runtime);
  }

  /** A new conversation with its own KV cache. */
  chat(options: ChatOptions = {}): Chat {
    return new Chat(this, options);
  }

  /** Loads and preprocesses images into one [n, 3, H, W] batch. */
  async pixels(images: readonly ImageInput[]): Promise<{ data: Float32Array; dims: number[] }> {
    const tensors = await Promise.all(images.map(async (img) => preprocessImage(await loadImage(img), this.preprocessor)));
    const [, h, w] = tensors[0]!.dims;
    const size = this.spec.vision.imageSize;
    if (h !== size || w !== size) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `${this.dir}/preprocessor_config.json produces ${w}×${h} pixels but the vision tower takes ${size}×${size} (vision_config.image_size)`,
        { subject: 'preprocessor_config.json' },
      );
    }
    const data = new Float32Array(tensors.length * 3 * h * w);
    tensors.forEach((t, i) => data.set(t.data, i * 3 * h * w));
    return { data, dims: [tensors.length, 3, h, w] };
  }

  close(): Promise<void> {
    return this.runtime.close();
  }
}

export const loadModel = (dir: string, options?: LoadOptions): Promise<Model> => Model.load(dir, options);
