#!/usr/bin/env node
/**
 * Long-context costs of the decoder graph, measured on the runtime's own pieces (KvCache, KvView,
 * DecoderStepper) in this process, without the worker, the chat or a vision tower:
 *
 *   decode   ms/token over a cache of --past rows (filled with random rows: a 32k-token cache takes seconds
 *            to fill instead of minutes to prefill), dense (the whole cache) and SparseVILA retrieval
 *            (--retrieve 0.1: a per-layer view holding the text rows and a random 10% of the visual rows).
 *            The view is built once per turn; its build time is reported apart.
 *   prefill  the engine's chunked prefill (session/prefill.ts, through the worker) of --tokens tokens from an
 *            empty cache, chunks of at most --chunk rows, shrinking at long context so one chunk's scores stay
 *            within --scores (a chat's prefillScoreBytes; default the chat's, `none` for fixed chunks), the last
 *            --question rows weighted for the attention mass (a SparseVILA turn's question): seconds, and the
 *            process's peak RSS (VmHWM, worker included) over the prefill against its RSS before it (both
 *            decoder sessions already loaded).
 *
 *   worker   decode through the engine's worker (Runtime.step, as session/decode.ts calls it) after a prefill of
 *            --past tokens: per step the main thread's wall time, the worker's own time (embedding lookup, decoder
 *            run, KV append) and the difference (the two messages and the queue), medians.
 *
 * In decode the worker adds per step an embedding lookup and two messages (O(1) in the cache: `worker` measures
 * them); bench-sparse.mjs measures the whole chat path.
 *
 * Models (random weights, cached under .cache/profile/): `qwen05b` — llava-interleave-qwen-0.5b's text
 * shapes (24 layers, hidden 896, 14 heads / 2 KV heads, vocab 151936), int4 blocks of 32; `qwen05b-2l` — the
 * same attention shapes with 2 layers and a 4k vocabulary in fp32 (prefill memory: one layer's scores are
 * alive at a time, so two layers show the peak of 24).
 *
 * Usage:
 *   node scripts/profile-long-context.mjs decode  [--past 8192,32768] [--retrieve 0,0.1] [--steps 24]
 *   node scripts/profile-long-context.mjs worker  [--past 1024] [--steps 24]
 *   node scripts/profile-long-context.mjs prefill [--tokens 16384] [--chunk 512] [--scores 256M|none] [--question 16] [--model qwen05b-2l]
 *   common: [--model qwen05b|qwen05b-2l] [--block-size 32] [--kv-cache fp32|fp16] [--threads N] [--session JSON] [--dist DIR] [--json]
 *   --session  runtime options (src/runtime/ort-session.ts RuntimeOptions) overriding the engine's defaults,
 *              e.g. '{"memArena":false}' or '{"executionMode":"parallel","interOpThreads":2}'
 *   --dist     the compiled engine to measure (default ./dist; another checkout's dist for before/after)
 *   --profile  decode: also run onnxruntime's profiler (files under this prefix) and print where a step's time goes,
 *              per operator type, against the step's wall time (the rest is the run's own overhead: feeds,
 *              outputs, thread hand-offs)
 * Needs `npm run build` (or tsc) first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  fillCache,
  LONG_CONTEXT_MODELS,
  longContextCheckpoint,
  longContextGraphOptions,
  longContextDecoder,
  longContextModules,
  median,
  randomFloats,
  REPO,
} from './bench-common.mjs';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string' },
    past: { type: 'string', default: '8192,32768' },
    retrieve: { type: 'string', default: '0,0.1' },
    steps: { type: 'string', default: '24' },
    tokens: { type: 'string', default: '16384' },
    chunk: { type: 'string', default: '512' },
    scores: { type: 'string' },
    question: { type: 'string', default: '16' },
    threads: { type: 'string' },
    session: { type: 'string' },
    dist: { type: 'string', default: path.join(REPO, 'dist') },
    json: { type: 'boolean', default: false },
    profile: { type: 'string' },
    'block-size': { type: 'string', default: '32' },
    'kv-cache': { type: 'string', default: 'fp32' },
  },
});
const MODE = positionals[0] ?? 'decode';
if (!['fp32', 'fp16'].includes(args['kv-cache'])) throw new Error(`--kv-cache must be fp32 or fp16, got ${args['kv-cache']}`);
if (!['decode', 'prefill', 'worker'].includes(MODE)) throw new Error(`mode must be decode, prefill or worker, got ${MODE}`);
const DIST = path.resolve(args.dist);
const imp = (p) => import(path.join(DIST, p));
const mods = await longContextModules(DIST);
const { KvCache, openCheckpoint } = mods;

const MODEL_NAME = args.model ?? (MODE === 'prefill' ? 'qwen05b-2l' : 'qwen05b');
const MODEL = LONG_CONTEXT_MODELS[MODEL_NAME];
if (!MODEL) throw new Error(`--model must be one of ${Object.keys(LONG_CONTEXT_MODELS).join(', ')}`);

// ---------------------------------------------------------------------------------------------- helpers

const status = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;
/** Resets VmHWM to the current RSS (Linux clear_refs 5). */
const resetPeak = () => fs.writeFileSync('/proc/self/clear_refs', '5');
/** CPU seconds the whole machine spent busy (other processes included), from /proc/stat. */
const machineBusy = () => {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6]) / 100;
};
/** Share of the machine other processes used while fn ran. */
async function withLoad(fn) {
  const busy0 = machineBusy();
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const wall = (performance.now() - t0) / 1000;
  const own = process.cpuUsage(own0);
  const other = Math.max(0, machineBusy() - busy0 - (own.user + own.system) / 1e6);
  return { result, wall, otherShare: wall > 1 ? other / (wall * os.cpus().length) : 0 };
}
/** The decoder's build options: the model's precision, int4 blocks of --block-size. */
function graphOptions() {
  return longContextGraphOptions(MODEL, Number(args['block-size']), args['kv-cache']);
}

/** The engine's runtime options: --threads, and --session's fields (ort-session.ts RuntimeOptions). */
function runtimeOptions() {
  return {
    executionProvider: 'cpu',
    ...(args.profile ? { profilePrefix: args.profile } : {}),
    ...(args.threads ? { intraOpThreads: Number(args.threads) } : {}),
    ...(args.session ? JSON.parse(args.session) : {}),
  };
}

const checkpointDir = () => longContextCheckpoint(mods, MODEL);
const loadDecoder = (kind) =>
  longContextDecoder(mods, MODEL, kind, { blockSize: Number(args['block-size']), kvCache: args['kv-cache'], runtime: runtimeOptions() });

/**
 * onnxruntime's profile of the decode steps (`--profile PREFIX`), folded: per operator type, the mean time per run
 * and its node count, and the mean `model_run` time — the run's wall time inside onnxruntime, of which the nodes'
 * sum is the part spent computing. Warm-up runs are included (the first two of each context).
 */
function profileSummary(session, stepMsAll) {
  session.endProfiling();
  const prefix = path.resolve(args.profile);
  const dir = path.dirname(prefix);
  const file = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(path.basename(prefix)) && f.endsWith('.json'))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const byOp = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args.op_name;
    const row = byOp.get(op) ?? { op, us: 0, nodes: 0 };
    row.us += e.dur;
    row.nodes++;
    byOp.set(op, row);
  }
  const n = runs.length;
  const ops = [...byOp.values()].map((r) => ({ op: r.op, msPerRun: r.us / n / 1000, nodesPerRun: r.nodes / n })).sort((a, b) => b.msPerRun - a.msPerRun);
  const nodeMs = ops.reduce((a, r) => a + r.msPerRun, 0);
  const runMs = runs.reduce((a, e) => a + e.dur, 0) / n / 1000;
  const summary = { file, runs: n, stepMs: stepMsAll.reduce((a, b) => a + b, 0) / stepMsAll.length, runMs, nodeMs, ops };
  if (!args.json) {
    console.log(`profile (${file}): ${n} runs; mean step ${summary.stepMs.toFixed(2)} ms, model_run ${runMs.toFixed(2)} ms, nodes ${nodeMs.toFixed(2)} ms`);
    for (const r of ops) console.log(`  ${r.op.padEnd(34)} ${r.msPerRun.toFixed(3).padStart(8)} ms  ${String(r.nodesPerRun).padStart(5)} nodes`);
  }
  return summary;
}

// ----------------------------------------------------------------------------------------------- decode

/** Per layer: the text rows (the first 16 and last 32) and a pseudo-random `ratio` of the visual rows between. */
function retrievalSubsets(rows, layers, ratio) {
  return Array.from({ length: layers }, (_, l) => {
    const pick = [];
    let s = (l + 1) * 2654435761;
    for (let r = 0; r < rows; r++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      if (r < 16 || r >= rows - 32 || s / 4294967296 < ratio) pick.push(r);
    }
    return pick;
  });
}

async function decode() {
  const { stepper, text: t, session, kvType } = await loadDecoder('decoder');
  const allStepMs = [];
  const steps = Number(args.steps);
  const rows = [];
  for (const past of args.past.split(',').map(Number)) {
    for (const ratio of args.retrieve.split(',').map(Number)) {
      const cache = new KvCache({ layers: t.numLayers, kvHeads: t.numKvHeads, headDim: t.headDim, type: kvType });
      cache.reserve(past + steps + 8);
      fillCache(cache, past, t, mods);
      let target = cache;
      let viewMs = 0;
      if (ratio > 0) {
        const subsets = retrievalSubsets(past, t.numLayers, ratio);
        const v0 = performance.now();
        target = cache.select(subsets);
        viewMs = performance.now() - v0;
      }
      const embeds = randomFloats(t.hiddenSize, 3);
      const stepMs = [];
      let cpu0;
      const { otherShare } = await withLoad(async () => {
        for (let i = 0; i < steps + 2; i++) {
          if (i === 2) cpu0 = process.cpuUsage();
          const t0 = performance.now();
          await stepper.run(target, { embeds, positions: [past + i] });
          allStepMs.push(performance.now() - t0);
          if (i >= 2) stepMs.push(allStepMs.at(-1));
        }
      });
      const attended = ratio > 0 ? target.past(0).rows : cache.length;
      const cpu = process.cpuUsage(cpu0);
      // CPU time (every thread of this process) per step: what a step costs, less sensitive than wall time to the
      // other processes sharing the cores.
      const cpuMsPerToken = (cpu.user + cpu.system) / 1000 / steps;
      const row = {
        past,
        retrieve: ratio,
        attendedLayer0: attended,
        msPerToken: median(stepMs),
        minMs: Math.min(...stepMs),
        cpuMsPerToken,
        viewMs,
        otherShare,
      };
      rows.push(row);
      if (!args.json)
        console.log(
          `past ${past}  ${ratio ? `retrieve ${ratio * 100}%` : 'dense'}  KV ${args['kv-cache']}  attended ${attended}  ${row.msPerToken.toFixed(2)} ms/token (min ${row.minMs.toFixed(2)}, CPU ${row.cpuMsPerToken.toFixed(2)})  view ${viewMs.toFixed(1)} ms  others ${(otherShare * 100).toFixed(0)}%`,
        );
    }
  }
  if (args.profile) rows.profile = profileSummary(session, allStepMs);
  return rows;
}

// ---------------------------------------------------------------------------------------------- prefill

/** The engine's own prefill (session/prefill.ts) through its worker, as a SparseVILA turn runs it. */
async function prefill() {
  const [{ Runtime }, { prefill: enginePrefill }, { chunkRowsAt, parseBytes }, { CHAT_DEFAULTS, chatChunks }] = await Promise.all([
    imp('src/runtime/runtime.js'),
    imp('src/session/prefill.js'),
    imp('src/runtime/memory.js'),
    imp('src/session/options.js'),
  ]);
  const scoreBytes = args.scores === undefined ? CHAT_DEFAULTS.prefillScoreBytes : args.scores === 'none' ? Infinity : parseBytes(args.scores);
  if (scoreBytes === undefined) throw new Error(`--scores must be a size (256M) or none, got ${args.scores}`);
  const rt = await Runtime.start(checkpointDir(), graphOptions(), runtimeOptions());
  try {
    // Both decoder sessions are loaded before the baseline: their weights are not the prefill's.
    await rt.ensureGraphs(['decoder', 'decoder-mass']);
    const t = openCheckpoint(checkpointDir()).spec.text;
    const tokens = Number(args.tokens);
    const chunk = Number(args.chunk);
    const question = Number(args.question);
    const rule = chatChunks({ prefillChunk: chunk, prefillScoreBytes: scoreBytes }, t.numHeads);
    const cache = await rt.createCache();
    await rt.reserveCache(cache, tokens + 1);
    const ids = Array.from({ length: tokens }, (_, i) => (i * 37 + 11) % 256);
    const massWeights = Float32Array.from({ length: tokens }, (_, i) => (i >= tokens - question ? 1 / question : 0));
    const rssBefore = status('VmRSS');
    resetPeak();
    const {
      result: out,
      wall,
      otherShare,
    } = await withLoad(() =>
      enginePrefill(rt, {
        cache,
        ids,
        positions: ids.map((_, i) => i),
        imageTokenId: -1,
        hidden: t.hiddenSize,
        chunks: rule,
        logits: 'last',
        massWeights,
      }),
    );
    const peak = status('VmHWM');
    const kvMiB = (t.numLayers * 2 * t.numKvHeads * t.headDim * tokens * (args['kv-cache'] === 'fp16' ? 2 : 4)) / 2 ** 20;
    // The largest chunk's scores: the last chunk before the question, over everything before it and itself.
    const lastRows = chunkRowsAt(rule, tokens - question);
    const scoreMiB = (t.numHeads * lastRows * tokens * 4) / 2 ** 20;
    const row = {
      tokens,
      chunk,
      scoreBytes: Number.isFinite(scoreBytes) ? scoreBytes : null,
      chunks: out.chunks,
      lastChunkRows: lastRows,
      question,
      seconds: wall,
      workerSeconds: out.seconds,
      rssBeforeMiB: rssBefore,
      peakMiB: peak,
      growthMiB: peak - rssBefore,
      kvMiB,
      chunkScoreMiB: scoreMiB,
      otherShare,
    };
    if (!args.json) {
      console.log(
        `prefill ${tokens} tokens (question ${question}), ${out.chunks} chunks of ${chunk} down to ${lastRows} rows (scores ≤ ${Number.isFinite(scoreBytes) ? (scoreBytes / 2 ** 20).toFixed(0) + ' MiB' : 'unbounded'}): ` +
          `${wall.toFixed(1)} s; RSS ${rssBefore.toFixed(0)} → peak ${peak.toFixed(0)} MiB ` +
          `(+${row.growthMiB.toFixed(0)} MiB; KV ${kvMiB.toFixed(0)} MiB, largest chunk's score tensor ${scoreMiB.toFixed(0)} MiB); others ${(otherShare * 100).toFixed(0)}%`,
      );
    }
    return [row];
  } finally {
    await rt.close();
  }
}

/** Decode steps through the worker after a chunked prefill of --past tokens (the first of --past's values). */
async function workerDecode() {
  const [{ Runtime }, { prefill: enginePrefill }, { fixedChunks }] = await Promise.all([
    imp('src/runtime/runtime.js'),
    imp('src/session/prefill.js'),
    imp('src/runtime/memory.js'),
  ]);
  const rt = await Runtime.start(checkpointDir(), graphOptions(), runtimeOptions());
  try {
    const t = openCheckpoint(checkpointDir()).spec.text;
    const past = Number(args.past.split(',')[0]);
    const steps = Number(args.steps);
    const cache = await rt.createCache();
    await rt.reserveCache(cache, past + steps + 8);
    const ids = Array.from({ length: past }, (_, i) => (i * 37 + 11) % 256);
    await enginePrefill(rt, { cache, ids, positions: ids.map((_, i) => i), imageTokenId: -1, hidden: t.hiddenSize, chunks: fixedChunks(512), logits: 'last' });
    const wall = [];
    const worker = [];
    for (let i = 0; i < steps + 2; i++) {
      const t0 = performance.now();
      const out = await rt.step({ target: { cache }, ids: [(i * 13 + 5) % 256], positions: [past + i], logits: 'last' });
      if (i < 2) continue;
      wall.push(performance.now() - t0);
      worker.push(out.seconds * 1000);
    }
    const row = { past, wallMs: median(wall), workerMs: median(worker), messagesMs: median(wall.map((w, i) => w - worker[i])) };
    if (!args.json)
      console.log(
        `past ${past}  worker path: ${row.wallMs.toFixed(2)} ms/token on the main thread, ${row.workerMs.toFixed(2)} ms in the worker, ${row.messagesMs.toFixed(2)} ms messages`,
      );
    return [row];
  } finally {
    await rt.close();
  }
}

const rows = MODE === 'decode' ? await decode() : MODE === 'worker' ? await workerDecode() : await prefill();
const meta = {
  mode: MODE,
  model: MODEL_NAME,
  dist: DIST,
  session: args.session ?? 'engine default',
  kvCache: args['kv-cache'],
  threads: args.threads ?? 'default',
  cpus: os.cpus().length,
  loadAverage: os.loadavg(),
};
if (args.json) console.log(JSON.stringify({ ...meta, rows, ...(rows.profile && { profile: rows.profile }) }));
