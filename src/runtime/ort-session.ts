/**
 * ORT session creation with the execution provider and thread options, and clear errors when a provider
 * is not installed here.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import { SparseVilaError } from '../errors.js';
import { OnnxGraphBuilder } from '../graph/onnx-builder.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

/** The onnxruntime session settings a caller may change; unset ones keep SESSION_DEFAULTS (or ORT's choice). */
export interface SessionSettings {
  /** Threads running independent operators at once (executionMode 'parallel' only); default: ORT's choice. */
  interOpThreads?: number;
  /** Operators one at a time, or independent ones at once; default sequential (see SESSION_DEFAULTS). */
  executionMode?: 'sequential' | 'parallel';
  /** onnxruntime's graph optimisations; default 'all'. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** onnxruntime's CPU memory arena; default on (see SESSION_DEFAULTS). */
  memArena?: boolean;
  /** onnxruntime's memory-pattern planning; default on (see SESSION_DEFAULTS). */
  memPattern?: boolean;
  /** Intra-op threads spin waiting for work between operators; default off (see SESSION_DEFAULTS). */
  spinning?: boolean;
}

export interface RuntimeOptions extends SessionSettings {
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
    'the WebGPU execution provider could not start: it needs a GPU adapter (Dawn with Vulkan on Linux; on a machine without a GPU, ' +
    "Mesa's lavapipe from mesa-vulkan-drivers >= 23, which `bash scripts/system-deps.sh` installs from Debian backports). Use --provider cpu on machines without one",
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
  if (provider === 'webgpu') {
    ensureRuntimeDir();
    const failure = webGpuProbe();
    if (failure) throw new SparseVilaError('PROVIDER_UNAVAILABLE', `execution provider 'webgpu': ${failure}; ${HOW_TO_INSTALL.webgpu}`, { subject: provider });
  }
}

let webGpuFailure: string | undefined | null = null;

/** The device a provider runs on, for run headers: its name and memory where the machine says. */
export interface DeviceInfo {
  name: string;
  memoryBytes?: number;
}

/**
 * CPU: its model and the machine's memory. CUDA: the first GPU as nvidia-smi names it. WebGPU: onnxruntime-node
 * does not say which adapter Dawn chose, nor its memory; on a machine with no GPU device node it can only be lavapipe.
 */
export function deviceInfo(provider: ExecutionProvider): DeviceInfo {
  if (provider === 'cpu') return { name: `${os.cpus()[0]?.model ?? 'CPU'} (${os.cpus().length} threads)`, memoryBytes: os.totalmem() };
  if (provider === 'cuda') {
    const r = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000 });
    const [name, mib] = (r.stdout ?? '')
      .split('\n')[0]!
      .split(',')
      .map((x) => x.trim());
    return name ? { name, memoryBytes: Number(mib) * 2 ** 20 || undefined } : { name: 'CUDA GPU' };
  }
  // Without a GPU device node, the only Vulkan driver that can answer is Mesa's software one.
  const gpuNode = fs.existsSync('/dev/dri') || fs.existsSync('/dev/nvidia0');
  return { name: gpuNode ? 'WebGPU adapter (onnxruntime-node does not name it)' : 'lavapipe (software Vulkan: no GPU device here)' };
}

/**
 * Dawn's Vulkan loader (and Mesa's lavapipe under it) wants XDG_RUNTIME_DIR, a private directory of the user's;
 * without one WebGPU finds no adapter on machines with no desktop session (servers, CI). When none is set, this
 * process gets its own (mode 0700, under the temporary folder), before the probe and the inference worker start —
 * both inherit it.
 */
function ensureRuntimeDir(): void {
  const dir = process.env.XDG_RUNTIME_DIR;
  if (dir && fs.existsSync(dir)) return;
  process.env.XDG_RUNTIME_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-xdg-'));
  fs.chmodSync(process.env.XDG_RUNTIME_DIR, 0o700);
}

/**
 * Why WebGPU cannot start here, or undefined when it can: a one-operator session on the WebGPU provider, created in
 * a child process. Without an adapter, onnxruntime-node can throw a C++ exception past its binding
 * ("terminate called after throwing an instance of 'Napi::Error'"), which aborts the whole process — the
 * profiler server or notebook kernel with it — so the first attempt must not happen in ours. Once per process.
 */
function webGpuProbe(): string | undefined {
  if (webGpuFailure !== null) return webGpuFailure;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-webgpu-'));
  try {
    const b = new OnnxGraphBuilder('probe', dir);
    b.output(b.op('Relu', [b.input('x', 'float32', [1])]), 'y', 'float32', [1]);
    const { modelPath } = b.save();
    const ortUrl = pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href;
    const script = `import ort from ${JSON.stringify(ortUrl)};
await ort.InferenceSession.create(${JSON.stringify(modelPath)}, { executionProviders: ['webgpu'] });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    const lines = (r.stderr ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const said = lines.find((l) => /error|terminate/i.test(l)) ?? lines[0] ?? '';
    webGpuFailure = r.status === 0 ? undefined : `a probe session ${r.signal ? `died (${r.signal})` : `failed (exit ${r.status})`}${said ? `: ${said}` : ''}`;
    return webGpuFailure;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function cudaBinariesPresent(): boolean {
  // onnxruntime-node's install step puts the CUDA provider library beside its binding.
  const binding = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
  const bin = path.join(binding, '..', 'bin', 'napi-v6', process.platform, process.arch);
  return fs.existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so'));
}

/**
 * Session settings the engine uses unless told otherwise, chosen by measurement: scripts/profile-long-context.mjs
 * on the 2-core CPU, Qwen2-0.5B-shaped int4 decoder (24 layers), medians of 2–4 runs. The machine was shared
 * throughout (other jobs took ~half of it), which is how this engine usually runs: beside its own main thread,
 * a profiler server or a notebook kernel.
 *
 * | setting (one change from ORT's defaults + sequential) | decode 8k dense | 8k retrieve 10% | 32k dense | 32k retrieve 10% | prefill 2k |
 * | --- | ---: | ---: | ---: | ---: | ---: |
 * | ORT defaults (arena, memory pattern, level all, spinning), sequential | 64.1 ms | 35.3 ms | 159 ms | 49.1 ms | 10.9 s |
 * | memPattern off                                         | 70.1 ms | 32.8 ms |   –    |   –     | 10.8 s |
 * | memArena off                                           | 66.5 ms | 41.7 ms |   –    |   –     | 14.6 s |
 * | graphOptimizationLevel extended                        | 72.8 ms | 39.9 ms |   –    |   –     | 10.8 s |
 * | executionMode parallel, 2 inter-op threads             | 124 ms  | 67.3 ms |   –    |   –     | 18.5 s |
 * | spinning off                                           | 47.9 ms | 20.1 ms | 141 ms | 29.2 ms | 10.1 s |
 * | intraOpThreads 1                                       | 38.7 ms | 20.3 ms | 109 ms | 27.2 ms |  8.1 s |
 *
 * Spinning threads burn the core another process needs and then wait for it; without spinning decode got
 * 1.1–1.8x faster. One intra-op thread was faster still on the shared machine, but on an idle one two threads
 * should win the compute-bound prefill, so the thread count stays onnxruntime's (all cores) and `intraOpThreads`
 * (`threads` in loadModel, --threads) is the knob. The arena stays on: without it every score-sized tensor is
 * fresh pages from the kernel (prefill +35%).
 */
export const SESSION_DEFAULTS = {
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  memArena: true,
  memPattern: true,
  spinning: false,
} as const satisfies Required<Omit<SessionSettings, 'interOpThreads'>>;

/**
 * A session over one graph. `deviceOutputs`: outputs a GPU provider leaves in device memory (onnxruntime's
 * `preferredOutputLocation: 'gpu-buffer'`), to be fed back to a session of the same provider, never read on the host.
 */
export async function createSession(modelPath: string, options: RuntimeOptions, deviceOutputs: readonly string[] = []): Promise<ort.InferenceSession> {
  // One prefix per graph: sessions created in the same millisecond would otherwise write one file.
  const graph = path.basename(modelPath, '.onnx');
  checkProvider(options.executionProvider);
  const d = SESSION_DEFAULTS;
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [options.executionProvider],
    graphOptimizationLevel: options.graphOptimizationLevel ?? d.graphOptimizationLevel,
    executionMode: options.executionMode ?? d.executionMode,
    enableCpuMemArena: options.memArena ?? d.memArena,
    enableMemPattern: options.memPattern ?? d.memPattern,
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.interOpThreads ? { interOpNumThreads: options.interOpThreads } : {}),
    extra: { session: { intra_op: { allow_spinning: (options.spinning ?? d.spinning) ? '1' : '0' } } },
    ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: `${options.profilePrefix}-${graph}` } : {}),
    ...(deviceOutputs.length ? { preferredOutputLocation: Object.fromEntries(deviceOutputs.map((name) => [name, 'gpu-buffer' as const])) } : {}),
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
