/**
 * ORT session creation with the execution provider and thread options, and clear errors when a provider
 * is not installed here.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { SparseVilaError } from '../errors.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface RuntimeOptions {
  /** `cpu` (default); `cuda` needs onnxruntime-node's CUDA binaries; `webgpu` needs a GPU adapter. */
  executionProvider: ExecutionProvider;
  /** Threads inside one operator; default: ORT's choice (all cores). */
  intraOpThreads?: number;
  /** Write ORT's own Chrome-trace profile per graph, to `<prefix>-<graph>_<date>.json`. */
  profilePrefix?: string;
}

const HOW_TO_INSTALL: Record<Exclude<ExecutionProvider, 'cpu'>, string> = {
  cuda:
    'the CUDA execution provider is not installed: onnxruntime-node downloads its CUDA binaries at install time, ' +
    'which this project skips by default (.npmrc). On a machine with CUDA 12 and cuDNN 9, fetch them with ' +
    '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js`, or use --provider cpu',
  webgpu:
    'the WebGPU execution provider could not start: it needs a GPU adapter (Dawn with Vulkan on Linux). ' +
    'Use --provider cpu on machines without one',
};

export function checkProvider(provider: ExecutionProvider): void {
  if (provider === 'cpu') return;
  const backend = ort.listSupportedBackends().find((b) => b.name === provider);
  if (!backend) {
    throw new SparseVilaError('PROVIDER_UNAVAILABLE', `execution provider '${provider}': ${HOW_TO_INSTALL[provider]}`, { subject: provider });
  }
  if (provider === 'cuda' && !backend.bundled && !cudaBinariesPresent()) {
    throw new SparseVilaError('PROVIDER_UNAVAILABLE', `execution provider 'cuda': ${HOW_TO_INSTALL.cuda}`, { subject: provider });
  }
}

function cudaBinariesPresent(): boolean {
  // onnxruntime-node's install step puts the CUDA provider library beside its binding.
  const binding = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
  const bin = path.join(binding, '..', 'bin', 'napi-v6', process.platform, process.arch);
  return fs.existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so'));
}

export async function createSession(modelPath: string, options: RuntimeOptions): Promise<ort.InferenceSession> {
  // One prefix per graph: sessions created in the same millisecond would otherwise write one file.
  const graph = path.basename(modelPath, '.onnx');
  checkProvider(options.executionProvider);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [options.executionProvider],
    graphOptimizationLevel: 'all',
    // One decode step is a chain of small operators: parallel execution between them buys nothing here.
    executionMode: 'sequential',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: `${options.profilePrefix}-${graph}` } : {}),
  };
  try {
    return await ort.InferenceSession.create(modelPath, sessionOptions);
  } catch (err) {
    if (options.executionProvider !== 'cpu') {
      throw new SparseVilaError(
        'PROVIDER_UNAVAILABLE',
        `execution provider '${options.executionProvider}' failed to start for ${modelPath}: ${(err as Error).message}. ` +
          HOW_TO_INSTALL[options.executionProvider],
        { subject: options.executionProvider, cause: err },
      );
    }
    throw new SparseVilaError('RUNTIME', `onnxruntime could not load ${modelPath}: ${(err as Error).message}`, {
      subject: modelPath,
      cause: err,
    });
  }
}
