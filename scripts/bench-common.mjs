/**
 * Helpers shared by the benchmark scripts (bench.mjs, bench-engine.mjs, bench-fidelity.mjs, profile-long-context.mjs):
 * the bench's workloads and Qwen2-0.5B-shaped model, decode over a KV cache of random rows, medians and formatting, peak RSS per
 * phase (VmHWM, reset through clear_refs), how much of the machine other processes took during a phase (the
 * machine may be shared), machine info, the cached random checkpoints under .cache/bench/ (Llava and Qwen2-VL,
 * with a tokenizer that covers the whole vocabulary), synthetic images and videos, and this machine's memory
 * bandwidth.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ------------------------------------------------------------------------------------ numbers and format

/**
 * The engine as the benches drive it: the package's public API by name, plus the internal modules they time
 * directly (the runtime's chunked prefill, graph builds and cache keys, a bare ONNX graph for the memory
 * bandwidth probe, Qwen2-VL's smart_resize for a native-resolution image's token count), which are not the
 * package's surface.
 */
export async function loadEngine() {
  const [api, testing, { openCheckpoint }, { qwenSize }, { graphCacheKey }, { OnnxGraphBuilder }, { Runtime }, { prefill }, { argmax }] = await Promise.all([
    import('sparsevila-ts'),
    import('sparsevila-ts/testing'),
    import('../dist/src/families/registry.js'),
    import('../dist/src/families/qwen2-vl/processor.js'),
    import('../dist/src/graph/build.js'),
    import('../dist/src/graph/onnx-builder.js'),
    import('../dist/src/runtime/runtime.js'),
    import('../dist/src/session/prefill.js'),
    import('../dist/src/session/sampling.js'),
  ]);
  return {
    ...api,
    writeRandomLlava: testing.writeRandomLlava,
    writeRandomQwenVL: testing.writeRandomQwenVL,
    openCheckpoint,
    qwenSize,
    graphCacheKey,
    OnnxGraphBuilder,
    Runtime,
    prefill,
    argmax,
  };
}

/** Seeded token ids in [lo, hi), avoiding `skip` (the image token): the same prompt for our engine and a peer. */
export function tokenIds(n, lo, hi, seed, skip) {
  const out = new Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    let id = lo + (s % (hi - lo));
    if (id === skip) id = lo;
    out[i] = id;
  }
  return out;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
export const ms = () => performance.now();
export const mb = (bytes) => bytes / 2 ** 20;
export const millions = (n) => (n >= 1e7 ? (n / 1e6).toFixed(0) : (n / 1e6).toFixed(2)) + 'M';
/** Milliseconds with precision that suits their size. */
export const fmtMs = (x) => (x === undefined ? '–' : x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0));
/** A command-line flag's value as an integer ≥ 1, or an error naming the flag and the value. */
export function positiveInt(text, flag) {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} must be an integer ≥ 1, got ${text}`);
  return n;
}
export const fmt = (x, digits = 1) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(digits));

// ---------------------------------------------------------------------------------- memory and contention

/** VmHWM (peak resident set) of this process, worker threads included, in MiB. */
export function peakRssMiB() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {}
  return mb(process.memoryUsage().rss);
}
/** Resets VmHWM to the current RSS (Linux clear_refs 5), so a phase's own peak can be read. */
export function resetPeak() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
/** System-wide busy and steal CPU seconds from /proc/stat (USER_HZ = 100), or undefined off Linux. */
export function systemCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 };
  } catch {
    return undefined;
  }
}
let overallPeak = 0;
/** The process's peak RSS over the whole run so far (phases reset VmHWM, so it is tracked here), MiB. */
export function overallPeakMiB() {
  overallPeak = Math.max(overallPeak, peakRssMiB());
  return overallPeak;
}
/**
 * Runs fn; returns [result, { peakRssMiB, otherCpuSeconds, stealSeconds }]: the peak RSS during it (the
 * process peak if clear_refs is unavailable) and how much CPU time other processes and the hypervisor
 * took meanwhile (the machine is shared: a large value means the timings of this phase are inflated).
 */
export async function measured(fn) {
  overallPeakMiB();
  resetPeak();
  const cpu0 = systemCpu();
  const own0 = process.cpuUsage();
  const t0 = ms();
  const r = await fn();
  const own = process.cpuUsage(own0);
  const cpu1 = systemCpu();
  const peak = peakRssMiB();
  overallPeak = Math.max(overallPeak, peak);
  const load = { peakRssMiB: peak, wallSeconds: (ms() - t0) / 1000 };
  if (cpu0 && cpu1) {
    load.otherCpuSeconds = Math.max(0, cpu1.busy - cpu0.busy - (own.user + own.system) / 1e6);
    load.stealSeconds = cpu1.steal - cpu0.steal;
  }
  return [r, load];
}
/** Several phases' loads as one: the highest peak, the sums of wall, other and steal seconds. */
export function combinedLoad(loads) {
  const sum = (k) => (loads.some((l) => l[k] === undefined) ? undefined : loads.reduce((a, l) => a + l[k], 0));
  return {
    peakRssMiB: Math.max(...loads.map((l) => l.peakRssMiB)),
    wallSeconds: sum('wallSeconds'),
    otherCpuSeconds: sum('otherCpuSeconds'),
    stealSeconds: sum('stealSeconds'),
  };
}
/**
 * A note when other processes took more than 10% of the machine during a phase. Phases under a second are
 * not judged: /proc/stat counts in 10 ms ticks, too coarse for them.
 */
export function contention(load) {
  if (load.wallSeconds < 1) return '';
  const share = otherShare(load);
  return share > 0.1 ? `other processes used ${(100 * share).toFixed(0)}% of the CPUs` : '';
}
/** The share of the machine's CPU time other processes took during a phase (0 when unknown). */
export function otherShare(load) {
  return (load.otherCpuSeconds ?? 0) / (load.wallSeconds * os.cpus().length);
}

// ------------------------------------------------------------------------------------------ files, machine

export function dirBytes(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return n;
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sparsevila-bench-${prefix}-`));
}

export function machine() {
  const require = createRequire(import.meta.url);
  let commit;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {}
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    onnxruntime: require('onnxruntime-node/package.json').version,
    commit,
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

/**
 * Writes (or reuses) a random checkpoint under .cache/bench/random-<kind>-<key> (kind: 'llava', 'qwen-vl', …),
 * `write(dir, options)` being the writer (writeRandomLlava, writeRandomQwenVL) and the key hashing
 * `{ v: version, options, ...keyExtra }`. `afterWrite(dir)` runs once on a fresh write (e.g. to swap files in;
 * whatever it changes must be covered by `keyExtra`). Returns { dir, cached, options, parameters, bytes, files,
 * writeSeconds, writtenAt }.
 */
export function cachedRandomCheckpoint(kind, write, { options, version, rewrite = false, keyExtra, afterWrite }) {
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify({ v: version, options, ...keyExtra }))
    .digest('hex')
    .slice(0, 12);
  const dir = path.join(REPO, '.cache', 'bench', `random-${kind}-${key}`);
  const metaFile = path.join(dir, 'bench-checkpoint.json');
  if (!rewrite && fs.existsSync(metaFile)) {
    return { dir, cached: true, ...JSON.parse(fs.readFileSync(metaFile, 'utf8')) };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const t0 = ms();
  const written = write(dir, options);
  afterWrite?.(dir);
  const meta = {
    options,
    ...keyExtra,
    parameters: written.parameters,
    bytes: written.bytes,
    files: written.files.length,
    writeSeconds: (ms() - t0) / 1000,
    writtenAt: new Date().toISOString(),
  };
  fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2));
  return { dir, cached: false, ...meta };
}

/**
 * The bench checkpoint's tokenizer. The bundled one knows ids 0-259, but a random LM head emits any id and the
 * detokenizer refuses ids it does not know: every id up to the vocabulary gets an inert placeholder `<xN>`
 * (BPE has no merges that reach them, so prompts encode exactly as before).
 */
export function benchTokenizer(dir, vocab) {
  const file = path.join(dir, 'tokenizer.json');
  const tok = JSON.parse(fs.readFileSync(file, 'utf8'));
  const taken = new Set([...Object.values(tok.model.vocab), ...tok.added_tokens.map((t) => t.id)]);
  for (let id = 0; id < vocab; id++) if (!taken.has(id)) tok.model.vocab[`<x${id}>`] = id;
  fs.writeFileSync(file, JSON.stringify(tok));
}

// ------------------------------------------------------------------------------------------- media

/** Deterministic synthetic photos: a smooth colour field with a few solid shapes, PNG-encoded. */
export async function syntheticImage(sharp, seed, width = 384, height = 288) {
  let s = seed >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const rgb = Buffer.alloc(width * height * 3);
  const phase = [rnd(), rnd(), rnd()].map((p) => p * 2 * Math.PI);
  const shapes = Array.from({ length: 6 }, () => ({
    kind: rnd() < 0.5 ? 'disc' : 'box',
    x: rnd() * width,
    y: rnd() * height,
    r: 20 + rnd() * 60,
    color: [rnd() * 255, rnd() * 255, rnd() * 255],
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let c = [0, 1, 2].map((k) => 127.5 + 127.5 * Math.sin((x / width) * 3 + (y / height) * (2 + k) + phase[k]));
      for (const sh of shapes) {
        const inside = sh.kind === 'disc' ? (x - sh.x) ** 2 + (y - sh.y) ** 2 < sh.r ** 2 : Math.abs(x - sh.x) < sh.r && Math.abs(y - sh.y) < sh.r * 0.6;
        if (inside) c = sh.color;
      }
      rgb.set(c.map(Math.round), (y * width + x) * 3);
    }
  }
  return new Uint8Array(
    await sharp(rgb, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer(),
  );
}

/** The synthetic video's frame size. */
export const VIDEO_SIZE = { width: 480, height: 360 };

/**
 * A synthetic video of `frames` frames (ffmpeg's testsrc2 pattern, 8 fps, MPEG-4 part 2, which every ffmpeg
 * build encodes) under .cache/bench/, written once. Returns its path, or undefined when ffmpeg is missing.
 */
export function syntheticVideo(frames, width = VIDEO_SIZE.width, height = VIDEO_SIZE.height) {
  const file = path.join(REPO, '.cache', 'bench', `testsrc2-${width}x${height}-${frames}f.mp4`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp.mp4`;
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${width}x${height}:rate=8`,
      '-frames:v',
      String(frames),
      '-c:v',
      'mpeg4',
      '-q:v',
      '4',
      '-pix_fmt',
      'yuv420p',
      tmp,
    ],
    { encoding: 'utf8' },
  );
  if (r.error || r.status !== 0) return undefined;
  fs.renameSync(tmp, file);
  return file;
}

// -------------------------------------------------------------------------------------- memory bandwidth

/** A worker that sums its slice of a shared Float64Array each time it is told to. */
const SUM_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const a = new Float64Array(workerData.buffer);
parentPort.on('message', () => {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let i = workerData.start; i < workerData.end; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3]; }
  parentPort.postMessage(s0 + s1 + s2 + s3);
});`;

/**
 * This machine's memory read bandwidth, measured three ways over a buffer of `mib` MiB (far beyond the caches):
 *   ort     — an onnxruntime ReduceSum over the buffer (float32), with the engine's thread count: what ORT's
 *             own kernels can stream on these cores (the figure the decode bound uses);
 *   js      — one thread summing a Float64Array in JavaScript (4 accumulators);
 *   jsParallel — one such thread per core, each over its slice, at once;
 *   memcpy  — TypedArray.set of half the buffer onto the other half (bytes read + written).
 * Medians over `repeats` after one warm-up pass. GB/s = 1e9 bytes per second.
 */
export async function memoryBandwidth(ort, OnnxGraphBuilder, { mib = 1024, repeats = 5, threads } = {}) {
  const bytes = mib * 2 ** 20;
  const f32 = new Float32Array(bytes / 4);
  for (let i = 0; i < f32.length; i += 1024) f32[i] = 1; // touch every page
  const rate = (b, t) => b / (t / 1000) / 1e9;
  const timeIt = async (fn) => {
    await fn();
    const times = [];
    for (let r = 0; r < repeats; r++) {
      const t0 = ms();
      await fn();
      times.push(ms() - t0);
    }
    return times;
  };
  // ORT ReduceSum over [n] → scalar.
  const dir = tempDir('bandwidth');
  let ortTimes;
  try {
    const g = new OnnxGraphBuilder('reduce', dir);
    const x = g.input('x', 'float32', ['n']);
    const axes = g.constInt64([0], 'axes');
    const y = g.op('ReduceSum', [x, axes], { keepdims: 0 });
    g.output(y, 'y', 'float32', []);
    const built = g.save();
    const opts = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
    if (threads) opts.intraOpNumThreads = threads;
    const session = await ort.InferenceSession.create(built.modelPath, opts);
    const tensor = new ort.Tensor('float32', f32, [f32.length]);
    ortTimes = await timeIt(() => session.run({ x: tensor }));
    await session.release();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const f64 = new Float64Array(f32.buffer);
  const jsTimes = await timeIt(() => {
    let a = 0,
      b = 0,
      c = 0,
      d = 0;
    for (let i = 0; i < f64.length; i += 4) {
      a += f64[i];
      b += f64[i + 1];
      c += f64[i + 2];
      d += f64[i + 3];
    }
    return a + b + c + d;
  });
  // Every core at once: worker threads each summing their slice of a shared buffer.
  const shared = new Float64Array(new SharedArrayBuffer(bytes));
  for (let i = 0; i < shared.length; i += 512) shared[i] = 1;
  const n = os.cpus().length;
  const workers = Array.from(
    { length: n },
    (_, k) =>
      new Worker(SUM_WORKER, {
        eval: true,
        workerData: { buffer: shared.buffer, start: Math.floor((k * shared.length) / n / 4) * 4, end: Math.floor(((k + 1) * shared.length) / n / 4) * 4 },
      }),
  );
  const sumAll = () =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) => {
            w.once('message', resolve);
            w.postMessage('go');
          }),
      ),
    );
  let parallelTimes;
  try {
    parallelTimes = await timeIt(sumAll);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const half = f32.length / 2;
  const copyTimes = await timeIt(() => f32.set(f32.subarray(0, half), half));
  return {
    bufferMiB: mib,
    repeats,
    threads: threads ?? 'default',
    ortReduceSumGBs: rate(bytes, median(ortTimes)),
    jsSumGBs: rate(bytes, median(jsTimes)),
    jsParallelSumGBs: rate(bytes, median(parallelTimes)),
    parallelThreads: n,
    memcpyGBs: rate(bytes, median(copyTimes)),
    samplesMs: { ort: ortTimes, js: jsTimes, jsParallel: parallelTimes, memcpy: copyTimes },
  };
}

/**
 * This machine's read bandwidth now (`memoryBandwidth`, 1 GiB; 256 MiB with `quick`), from a child process
 * (scripts/bench-bandwidth.mjs): a bench probes it beside each measurement it bounds, because the shared machine's
 * bandwidth moves with its neighbours, and the probe's 2 GiB of buffers stay out of the bench's own peak RSS.
 */
export function bandwidthNow({ quick = false, threads } = {}) {
  const argv = [path.join(REPO, 'scripts', 'bench-bandwidth.mjs'), '--mib', quick ? '256' : '1024', '--repeats', quick ? '3' : '7'];
  if (threads) argv.push('--threads', String(threads));
  return JSON.parse(execFileSync(process.execPath, argv, { encoding: 'utf8' }));
}

// ------------------------------------------------------------------------- the bench's plan, shared parts

/** The workloads `npm run bench` runs (bench.mjs picks them by name per model). */
export const BENCH_WORKLOADS = {
  '1 image': { name: '1 image', images: 1 },
  '4 images': { name: '4 images', images: 4 },
  'video 8 frames': { name: 'video 8 frames', frames: 8 },
  'video 16 frames': { name: 'video 16 frames', frames: 16 },
  'video 32 frames': { name: 'video 32 frames', frames: 32 },
  'video 64 frames': { name: 'video 64 frames', frames: 64 },
};

/**
 * `npm run bench`'s qwen2-0.5b model (llava-interleave-qwen-0.5b's shapes): SigLIP-so400m-patch14-384's width
 * (hidden 1152, intermediate 4304, 16 heads; 2 of its 27 layers) and exactly Qwen2-0.5B's text model (hidden 896,
 * intermediate 4864, 24 layers, 14 / 2 heads, head_dim 64, vocab 151936). The key order is part of the cached
 * checkpoints' keys (cachedRandomCheckpoint, profile-long-context.mjs): keep it.
 */
export const QWEN2_05B_OPTIONS = {
  vision: 'siglip',
  visionHidden: 1152,
  visionIntermediate: 4304,
  visionLayers: 2,
  visionHeads: 16,
  imageSize: 384,
  patchSize: 14,
  featureLayer: -1,
  strategy: 'full',
  textHidden: 896,
  textIntermediate: 4864,
  textLayers: 24,
  textHeads: 14,
  textKvHeads: 2,
  vocab: 151936,
};

/**
 * Visual tokens a Llava-family bench workload puts into the LLM: a token per whole patch per image or frame (384 / 14:
 * 27² = 729)
 * (families/llava/config.ts imageTokenCount: SigLIP has no CLS token, strategy 'full' keeps every position),
 * as bench.mjs `visualTokens` counts them for this family.
 */
export function llavaVisualTokens(options, workload) {
  if (options.strategy !== 'full' || options.vision !== 'siglip') throw new Error('llavaVisualTokens: a SigLIP tower with strategy "full" only');
  return (workload.images ?? workload.frames) * Math.floor(options.imageSize / options.patchSize) ** 2;
}

// ------------------------------------------------------- long-context decode over random KV rows (no prefill)

/**
 * Decoder-only models for long-context timings (random weights, cached under .cache/profile/): `qwen05b` —
 * the bench's Qwen2-0.5B text model, int4; `qwen05b-2l` — the same attention shapes with 2 layers and a 4k
 * vocabulary in fp32 (cheap to build: quick runs and prefill memory).
 */
const QWEN2_05B_TEXT = Object.fromEntries(Object.entries(QWEN2_05B_OPTIONS).filter(([k]) => k.startsWith('text') || k === 'vocab'));
export const LONG_CONTEXT_MODELS = {
  qwen05b: { precision: 'int4', shape: QWEN2_05B_TEXT },
  'qwen05b-2l': { precision: 'fp32', shape: { ...QWEN2_05B_TEXT, textLayers: 2, vocab: 4096 } },
};

/** The engine modules a long-context timing drives, from a compiled engine (`dist`: this checkout's, or another's). */
export async function longContextModules(dist = path.join(REPO, 'dist')) {
  const imp = (p) => import(path.join(dist, p));
  const [
    { writeRandomLlava },
    { openCheckpoint },
    { ensureGraph, kvTypeOf },
    { KvCache },
    { DecoderStepper },
    { createSession },
    { retrieve },
    { toFloat16Bits },
  ] = await Promise.all([
    imp('src/testing.js'),
    imp('src/families/registry.js'),
    imp('src/graph/build.js'),
    imp('src/runtime/kv-cache.js'),
    imp('src/runtime/llm-step.js'),
    imp('src/runtime/ort-session.js'),
    imp('src/sparsity/retrieve.js'),
    imp('src/graph/half.js'),
  ]);
  return { dist, writeRandomLlava, openCheckpoint, ensureGraph, kvTypeOf, KvCache, DecoderStepper, createSession, retrieveLayers: retrieve, toFloat16Bits };
}

/** The random checkpoint of a LONG_CONTEXT_MODELS entry, written once under .cache/profile/ (64k positions). */
export function longContextCheckpoint(mods, model) {
  const options = { vision: 'siglip', dtype: 'BF16', seed: 7, ...model.shape, configPatch: { text: { max_position_embeddings: 65536 } } };
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify({ v: 1, options }))
    .digest('hex')
    .slice(0, 12);
  const dir = path.join(REPO, '.cache', 'profile', `random-llava-${key}`);
  if (!fs.existsSync(path.join(dir, 'profile-checkpoint.json'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    mods.writeRandomLlava(dir, options);
    fs.writeFileSync(path.join(dir, 'profile-checkpoint.json'), JSON.stringify(options));
  }
  return dir;
}

/** Graph build options of a LONG_CONTEXT_MODELS entry: its precision, int4 blocks of `blockSize`, cached under .cache/profile/graphs. */
export function longContextGraphOptions(model, blockSize = 32, kvCache = 'fp32') {
  return { precision: model.precision, blockSize, kvCache, cacheDir: path.join(REPO, '.cache', 'profile', 'graphs') };
}

/**
 * A DecoderStepper over graph `kind` ('decoder', or 'decoder-mass' for steps that return attention mass) of a
 * LONG_CONTEXT_MODELS entry: int4 blocks of `blockSize`, the engine's runtime options `runtime`.
 */
export async function longContextDecoder(mods, model, kind, { blockSize = 32, kvCache = 'fp32', runtime = { executionProvider: 'cpu' } } = {}) {
  const checkpoint = mods.openCheckpoint(longContextCheckpoint(mods, model));
  const options = longContextGraphOptions(model, blockSize, kvCache);
  const graph = mods.ensureGraph(checkpoint, kind, options);
  const session = await mods.createSession(graph, runtime);
  const t = checkpoint.spec.text;
  const kvType = mods.kvTypeOf(options);
  return { stepper: new mods.DecoderStepper(session, t.numLayers, t.numKvHeads, t.headDim, t.hiddenSize, 1, false, kvType), text: t, session, kvType };
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomFloats(n, seed) {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/**
 * Appends `rows` random rows (positions 0..rows-1) to a KvCache, a block at a time: a 47k-row cache of the 24-layer
 * model fills in seconds, where a prefill would take many minutes. Decode time depends on the rows' count, not their
 * values.
 */
export function fillCache(cache, rows, t, mods) {
  const rowSize = t.numKvHeads * t.headDim;
  const block = 4096;
  // A half store (KvShape.type float16) holds the same numbers as half bits.
  const rowsOf = (x) => (cache.shape.type === 'float16' ? mods.toFloat16Bits(x) : x);
  const keys = rowsOf(randomFloats(block * rowSize, 1));
  const values = rowsOf(randomFloats(block * rowSize, 2));
  for (let at = 0; at < rows; at += block) {
    const n = Math.min(block, rows - at);
    const k = keys.subarray(0, n * rowSize);
    const v = values.subarray(0, n * rowSize);
    cache.append(
      Array(t.numLayers).fill(k),
      Array(t.numLayers).fill(v),
      Int32Array.from({ length: n }, (_, i) => at + i),
    );
  }
}
