#!/usr/bin/env node
/**
 * Engine benchmark (CPU, --threads, default all cores). Medians over repeats: the machine may be shared.
 *
 *   (a) the reference fixtures (../shared/fixtures), fp32: LLM prefill of the fixture prompt (image
 *       embeddings spliced in; vision tower timed separately) and decode ms/token;
 *   (b) a Qwen2-0.5B-shaped text model (llava-interleave-qwen-0.5b shapes, random weights, tiny SigLIP tower)
 *       at int4 (block 32): chunked prefill of 1k, 8k and 32k tokens, decode ms/token at those contexts, plus the
 *       one-time checkpoint write and graph build (quantize) times; each context's decode against its memory-bandwidth
 *       bound (this machine's read bandwidth, measured in the run, and the bytes a step reads);
 *   (c) beside (b), llama.cpp (scripts/bench-llama-peer.mjs) on the same checkpoint as a Q4_0 GGUF (scripts/gguf.mjs):
 *       the same token ids, contexts, prefill batch, decode steps and threads, rounds interleaved with ours (ours,
 *       llama.cpp, ours, …), and ours ÷ llama.cpp per measure;
 *   (d) after (b), the same decoder with an fp32 and an fp16 KV cache, steps alternating at each context
 *       (scripts/bench-kv-precision.mjs).
 *
 * Usage: node scripts/bench-engine.mjs [--quick] [--contexts N,N] [--threads N] [--no-peer] [--rewrite] [--out FILE] [--doc FILE | --no-doc]
 *   --quick    tiny shapes, fewer repeats, contexts 256 and 1k (CI, < 1 minute)
 *   --contexts only these of the plan's contexts, in tokens (e.g. 1024,8192: the stamp shows which); 46800 (the
 *              64-frame video's length, ours only: llama.cpp's row at that length is bench.mjs's) runs only when named
 *   --threads  threads for both engines (default: every core)
 *   --no-peer  skip llama.cpp
 *   --rewrite  rewrite the cached random checkpoint (.cache/bench/) instead of reusing it
 * Prints a markdown table; writes JSON to bench-results/engine.json (or --out) and replaces the "engine" section
 * of docs/benchmarks.md (a --quick run only with --doc FILE: scripts/bench-doc.mjs). Needs `npm run build` first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  loadEngine,
  REPO,
  median,
  ms,
  mb,
  millions,
  fmtMs,
  fmt,
  overallPeakMiB,
  measured,
  contention,
  dirBytes,
  tempDir,
  machine,
  cachedRandomCheckpoint,
  tokenIds,
  combinedLoad,
  bandwidthNow,
  positiveInt,
  longContextModules,
} from './bench-common.mjs';
import { benchDoc, DOC_OPTIONS } from './bench-doc.mjs';
import { ensureGguf, startLlamaPeer } from './bench-llama-peer.mjs';
import { peerTable } from './bench-llama-report.mjs';
import { boundBandwidth, decodeStepBytes } from './bench-report.mjs';
import { benchKvPrecision, kvPrecisionTable } from './bench-kv-precision.mjs';

const engine = await loadEngine();
const { loadImage, preprocessImage } = await import('../dist/src/media/image.js');
const { chunkRowsAt, fixedChunks } = await import('../dist/src/runtime/memory.js');
const { chatChunks } = await import('../dist/src/session/options.js');

/** The bench's Llava image as the tower takes it, [1, 3, H, W]. */
async function llavaPixels(preprocessor, file) {
  const t = await preprocessImage(await loadImage(file), preprocessor);
  return { data: t.data, dims: [1, ...t.dims] };
}

const FIXTURES = path.resolve(REPO, '../shared/fixtures');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rewrite: { type: 'boolean', default: false },
    threads: { type: 'string' },
    contexts: { type: 'string' },
    'no-peer': { type: 'boolean', default: false },
    out: { type: 'string' },
    ...DOC_OPTIONS,
  },
  strict: true,
});
const doc = benchDoc(args);
const QUICK = args.quick;
const OUT = path.resolve(args.out ?? path.join(REPO, 'bench-results', 'engine.json'));
const THREADS = args.threads === undefined ? os.cpus().length : positiveInt(args.threads, '--threads');
const PEER = !args['no-peer'];

/** Bump when the random checkpoint's contents change for the same shape, so a stale cached one is not reused. */
const CHECKPOINT_VERSION = 1;

const PLAN = QUICK
  ? {
      fixtures: { repeats: 5, decodeSteps: 8 },
      llm: {
        name: 'qwen2-tiny (random)',
        shape: { textHidden: 64, textIntermediate: 128, textLayers: 2, textHeads: 4, textKvHeads: 2, vocab: 1024 },
        contexts: [
          { tokens: 256, repeats: 3 },
          { tokens: 1024, repeats: 3 },
        ],
        chunk: 128,
        decodeSteps: 8,
      },
    }
  : {
      fixtures: { repeats: 10, decodeSteps: 32 },
      llm: {
        name: 'qwen2-0.5b shape (random)',
        // llava-interleave-qwen-0.5b text_config: hidden 896, 24 layers, 14 heads / 2 KV heads (head_dim 64),
        // intermediate 4864, vocab 151936, tied embeddings, rope_theta 1e6 (the generator's Qwen2 default).
        shape: { textHidden: 896, textIntermediate: 4864, textLayers: 24, textHeads: 14, textKvHeads: 2, vocab: 151936 },
        // 32k: one round each (~20 min of prefill per engine on two cores). 46,800 (the 64-frame video's length):
        // ours alone, only when --contexts names it (~40 min); its positions run past the config's 32,768, which
        // changes nothing a step costs.
        contexts: [
          { tokens: 1024, repeats: 5 },
          { tokens: 8192, repeats: 3 },
          { tokens: 32768, repeats: 1 },
          { tokens: 46800, repeats: 1, peer: false, named: true },
        ],
        chunk: 512,
        decodeSteps: 32,
      },
    };
if (args.contexts) {
  const want = args.contexts.split(',').map(Number);
  const known = PLAN.llm.contexts.map((c) => c.tokens);
  if (!want.every((n) => known.includes(n))) throw new Error(`--contexts: the plan's are ${known.join(', ')}; got ${args.contexts}`);
  PLAN.llm.contexts = PLAN.llm.contexts.filter((c) => want.includes(c.tokens));
} else {
  PLAN.llm.contexts = PLAN.llm.contexts.filter((c) => !c.named);
}
const PRECISION = 'int4';
const BLOCK = 32;

// ---------------------------------------------------------------------------------------------- utilities

/** Times `steps` greedy decode steps after a prefill; returns per-step wall ms. */
async function decode(runtime, cache, logits, position, steps) {
  const times = [];
  for (let i = 0; i < steps; i++) {
    const token = engine.argmax(logits);
    const t0 = ms();
    const out = await runtime.step({ target: { cache }, ids: [token], positions: [position++], logits: 'last' });
    times.push(ms() - t0);
    logits = out.logits;
  }
  return times;
}

/**
 * llama.cpp on the checkpoint as Q4_0 (written once beside it), warmed up as ours is: one short prefill and a few
 * steps, so its first measured round does not pay for start-up.
 */
async function startPeer(checkpointDir) {
  console.error('llama.cpp peer: Q4_0 GGUF …');
  const gguf = ensureGguf(checkpointDir, 'Q4_0');
  const peer = await startLlamaPeer({ file: gguf.file, threads: THREADS });
  await peer.context(128, PLAN.llm.chunk);
  await peer.round(tokenIds(64, 300, 1000, 99), 3);
  peer.gguf = { file: path.relative(REPO, gguf.file), type: 'Q4_0', bytes: gguf.bytes, cached: gguf.cached, writeSeconds: gguf.seconds };
  return peer;
}

/** The peer's medians at one context, as ours are reported. */
function peerSummary(tokens, theirs) {
  const load = combinedLoad(theirs.loads);
  return {
    prefillMs: median(theirs.prefill),
    prefillTokensPerSecond: tokens / (median(theirs.prefill) / 1000),
    decodeMsPerToken: median(theirs.decode),
    repeats: { prefill: theirs.prefill.length, decodeSteps: theirs.decode.length },
    peakRssMiB: load.peakRssMiB,
    context: theirs.context,
    load,
    samples: { prefill: theirs.prefill, decode: theirs.decode },
  };
}

// ------------------------------------------------------------------------------------- (a) the fixtures

async function benchFixture(name) {
  const dir = path.join(FIXTURES, name);
  if (!fs.existsSync(path.join(dir, 'expected.json'))) return { name, skipped: `${dir} not found` };
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const cacheDir = tempDir('fixture-graphs');
  const { repeats, decodeSteps } = PLAN.fixtures;
  try {
    const t0 = ms();
    const model = await engine.loadModel(dir, { precision: 'fp32', cacheDir });
    const loadMs = ms() - t0;
    try {
      const { runtime, spec } = model;
      const pixels = await llavaPixels(model.processor, path.join(dir, 'image.png'));
      const visionTimes = [];
      let imageEmbeds;
      for (let r = 0; r < repeats; r++) {
        const v0 = ms();
        const vision = await runtime.vision(pixels.data, pixels.dims);
        const [n, tokens, size] = vision.featureDims;
        imageEmbeds = await runtime.project(vision.features, [n * tokens, size]);
        visionTimes.push(ms() - v0);
      }
      const ids = expected.input_ids;
      const prefillTimes = [];
      const decodeTimes = [];
      for (let r = 0; r < repeats + 1; r++) {
        const cache = await runtime.createCache();
        const p0 = ms();
        const out = await engine.prefill(runtime, {
          cache,
          ids,
          positions: ids.map((_, i) => i),
          imageTokenId: spec.imageTokenId,
          imageEmbeds: imageEmbeds.slice(),
          hidden: spec.text.hiddenSize,
          chunks: fixedChunks(512),
          logits: 'last',
        });
        const prefillMs = ms() - p0;
        const steps = await decode(runtime, cache, out.logits, ids.length, decodeSteps);
        await runtime.dropCache(cache);
        if (r === 0) continue; // warm-up
        prefillTimes.push(prefillMs);
        decodeTimes.push(...steps);
      }
      return {
        name,
        precision: 'fp32',
        promptTokens: ids.length,
        imageTokens: expected.image_token_count,
        loadMs,
        visionMs: median(visionTimes),
        prefillMs: median(prefillTimes),
        decodeMsPerToken: median(decodeTimes),
        repeats: { prefill: prefillTimes.length, decodeSteps: decodeTimes.length },
        samples: { vision: visionTimes, prefill: prefillTimes, decode: decodeTimes },
      };
    } finally {
      await model.close();
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

// -------------------------------------------------------------------------- (b) the random 0.5B-shaped LLM

/** Writes (or reuses, keyed by shape) the random checkpoint under .cache/bench/. */
function ensureCheckpoint() {
  const options = {
    vision: 'siglip',
    dtype: 'BF16',
    shards: QUICK ? 1 : 2,
    seed: 1,
    ...PLAN.llm.shape,
    configPatch: { text: { max_position_embeddings: 32768 } },
  };
  return cachedRandomCheckpoint('llava', engine.writeRandomLlava, { options, version: CHECKPOINT_VERSION, rewrite: args.rewrite });
}

async function benchLlm() {
  const [checkpoint, writeLoad] = await measured(async () => ensureCheckpoint());
  const spec = engine.openCheckpoint(checkpoint.dir);
  const textSpec = spec.spec.text;
  const imageTokenId = spec.spec.imageTokenId;
  spec.close();
  const llmParams =
    textSpec.vocabSize * textSpec.hiddenSize * (textSpec.tieWordEmbeddings ? 1 : 2) +
    textSpec.numLayers *
      (textSpec.hiddenSize * (textSpec.numHeads + 2 * textSpec.numKvHeads) * textSpec.headDim +
        textSpec.numHeads * textSpec.headDim * textSpec.hiddenSize +
        3 * textSpec.hiddenSize * textSpec.intermediateSize);

  const cacheDir = tempDir('llm-graphs');
  const builds = {};
  const onProgress = (e) => {
    if (e.phase === 'done') builds[e.graph] = { seconds: e.seconds ?? 0, cached: e.cached };
  };
  try {
    const [{ runtime, startMs }, buildLoad] = await measured(async () => {
      const t0 = ms();
      const runtime = await engine.Runtime.start(
        checkpoint.dir,
        { precision: PRECISION, blockSize: BLOCK, cacheDir },
        { executionProvider: 'cpu', intraOpThreads: THREADS },
        onProgress,
      );
      return { runtime, startMs: ms() - t0 };
    });
    const graphBytes = dirBytes(cacheDir);
    // What a decode step reads of the weights: the whole decoder graph (its directory under the cache key).
    const decoderDir = fs
      .readdirSync(cacheDir)
      .map((key) => path.join(cacheDir, key, 'decoder'))
      .find((dir) => fs.existsSync(dir));
    const decoderWeightBytes = decoderDir ? dirBytes(decoderDir) : undefined;
    const rssAfterStartMiB = mb(process.memoryUsage().rss);
    const { chunk, decodeSteps } = PLAN.llm;
    try {
      // A chat's chunk rule (session/options.ts chatChunks): `chunk` rows, fewer where one chunk's scores would pass the chat's default budget.
      const chunkRule = chatChunks({ prefillChunk: chunk, prefillScoreBytes: engine.CHAT_DEFAULTS.prefillScoreBytes }, textSpec.numHeads);
      // Warm-up: one chunk and a few steps, so session start-up is not in the first measured repeat.
      /** Our chunked prefill of `ids` into `cache`, at positions 0…n-1, in a chat's chunks (at most `chunk`, fewer at long context). */
      const prefillIds = (cache, ids) =>
        engine.prefill(runtime, {
          cache,
          ids,
          positions: ids.map((_, i) => i),
          imageTokenId,
          hidden: textSpec.hiddenSize,
          chunks: chunkRule,
          logits: 'last',
        });
      {
        const cache = await runtime.createCache();
        const ids = tokenIds(Math.min(chunk, 64), 300, textSpec.vocabSize, 99, imageTokenId);
        const out = await prefillIds(cache, ids);
        await decode(runtime, cache, out.logits, ids.length, 3);
        await runtime.dropCache(cache);
      }
      /** One of our rounds on `ids`: chunked prefill, then `decodeSteps` steps; the first also probes one chunk at past = context. */
      const ourRound = async (ids, into, probe) => {
        const tokens = ids.length;
        const cache = await runtime.createCache();
        const t0 = ms();
        const out = await prefillIds(cache, ids);
        into.prefill.push(ms() - t0);
        into.prefillWorker.push(out.seconds * 1000);
        into.chunks = out.chunks;
        into.decode.push(...(await decode(runtime, cache, out.logits, tokens, decodeSteps)));
        if (probe) {
          // One more chunk on top of the full context vs the same chunk on an empty cache (3 tries each): what
          // attending over the past costs. The chunk is the one a chat runs there (fewer rows at long context), so the
          // probe's scores are no larger than the prefill's and do not raise the round's peak RSS.
          const rows = chunkRowsAt(chunkRule, tokens);
          const extra = tokenIds(rows, 300, textSpec.vocabSize, 7, imageTokenId);
          const atPast = [];
          const atZero = [];
          for (let k = 0; k < 3; k++) {
            await runtime.truncateCache(cache, tokens);
            const c0 = ms();
            await runtime.step({ target: { cache }, ids: extra, positions: extra.map((_, i) => tokens + i), logits: 'last' });
            atPast.push(ms() - c0);
            const fresh = await runtime.createCache();
            const f0 = ms();
            await runtime.step({ target: { cache: fresh }, ids: extra, positions: extra.map((_, i) => i), logits: 'last' });
            atZero.push(ms() - f0);
            await runtime.dropCache(fresh);
          }
          into.chunkProbe = { pastTokens: tokens, rows, ms: median(atPast), atZeroMs: median(atZero), samples: { atPast, atZero } };
        }
        await runtime.dropCache(cache);
      };
      const peer = PEER ? await startPeer(checkpoint.dir) : undefined;
      const contexts = [];
      try {
        for (const { tokens, repeats, peer: withPeer = true } of PLAN.llm.contexts) {
          const peerHere = withPeer ? peer : undefined;
          const ours = { prefill: [], prefillWorker: [], decode: [], loads: [] };
          const theirs = { prefill: [], decode: [], loads: [] };
          if (peerHere) theirs.context = await peerHere.context(tokens + decodeSteps + 1, chunk);
          // Interleaved rounds on the same ids: ours, llama.cpp, ours, … (a slow spell of the machine hits both).
          for (let r = 0; r < repeats; r++) {
            const ids = tokenIds(tokens, 300, textSpec.vocabSize, 1000 + r, imageTokenId);
            const [, load] = await measured(() => ourRound(ids, ours, r === 0));
            ours.loads.push(load);
            if (!peerHere) continue;
            const x = await peerHere.round(ids, decodeSteps);
            theirs.prefill.push(x.prefillMs);
            theirs.decode.push(...x.decodeMs);
            theirs.loads.push(x.load);
          }
          // The read bandwidth this context's decode bound uses, measured right after its rounds.
          const bandwidth = bandwidthNow({ quick: QUICK, threads: THREADS });
          const load = combinedLoad(ours.loads);
          contexts.push({
            tokens,
            chunk,
            chunks: ours.chunks,
            chunkScoreBytes: chunkRule.scoreBytes,
            prefillMs: median(ours.prefill),
            prefillTokensPerSecond: tokens / (median(ours.prefill) / 1000),
            decodeMsPerToken: median(ours.decode),
            chunkAtPastMs: ours.chunkProbe,
            repeats: { prefill: ours.prefill.length, decodeSteps: ours.decode.length },
            peakRssMiB: load.peakRssMiB,
            load,
            samples: { prefill: ours.prefill, prefillWorker: ours.prefillWorker, decode: ours.decode },
            peer: peerHere && peerSummary(tokens, theirs),
            bandwidth,
          });
        }
      } finally {
        await peer?.close();
      }
      const peerRun = peer && { ...peer.info, gguf: peer.gguf, threads: THREADS };
      return {
        name: PLAN.llm.name,
        precision: PRECISION,
        blockSize: BLOCK,
        text: textSpec,
        llmParameters: llmParams,
        checkpoint: {
          dir: path.relative(REPO, checkpoint.dir),
          cached: checkpoint.cached,
          dtype: checkpoint.options.dtype,
          parameters: checkpoint.parameters,
          bytes: checkpoint.bytes,
          writeSeconds: checkpoint.writeSeconds,
          peakRssMiB: checkpoint.cached ? undefined : writeLoad.peakRssMiB,
        },
        build: {
          runtimeStartSeconds: startMs / 1000,
          graphs: builds,
          graphBytes,
          decoderWeightBytes,
          peakRssMiB: buildLoad.peakRssMiB,
          rssAfterStartMiB,
          load: buildLoad,
        },
        decodeSteps,
        peer: PEER ? peerRun : { skipped: '--no-peer' },
        contexts,
      };
    } finally {
      await runtime.close();
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------- main

const started = ms();
const info = machine();
console.error(
  `bench-engine${QUICK ? ' --quick' : ''}: ${info.cpus} cpus (${info.cpuModel}), node ${info.node}, onnxruntime-node ${info.onnxruntime}, load ${info.loadAverage.join(' ')}`,
);
const fixtures = [];
for (const name of ['llava-clip-llama-tiny', 'llava-siglip-qwen2-tiny']) {
  console.error(`fixture ${name} …`);
  const [f, load] = await measured(() => benchFixture(name));
  fixtures.push({ ...f, load });
}
console.error(`${PLAN.llm.name} ${PRECISION} …`);
const llm = await benchLlm();
console.error('KV cache precision …');
const kvPrecision = await benchKvPrecision(await longContextModules(), {
  checkpointDir: ensureCheckpoint().dir,
  contexts: PLAN.llm.contexts.map((c) => c.tokens),
  steps: PLAN.llm.decodeSteps,
  threads: THREADS,
  quick: QUICK,
  precision: PRECISION,
  blockSize: BLOCK,
});
const overallPeak = overallPeakMiB();
const result = {
  date: new Date().toISOString(),
  quick: QUICK,
  machine: info,
  threads: THREADS,
  fixtures,
  llm,
  kvPrecision,
  peakRssMiB: overallPeak,
  seconds: (ms() - started) / 1000,
};
fs.mkdirSync(path.dirname(OUT), { recursive: true });
fs.writeFileSync(OUT, JSON.stringify(result, null, 2));

// ------------------------------------------------------------------------------------------------ report

const lines = [];
lines.push(`## Engine benchmark${QUICK ? ' (quick)' : ''}`, '');
lines.push(
  `${info.cpus} × ${info.cpuModel}, ${info.memoryGiB} GiB, node ${info.node}, onnxruntime-node ${info.onnxruntime}, commit ${info.commit ?? '?'}; CPU EP, ${THREADS} threads. Medians; n = samples.`,
  '',
);
lines.push('| model | precision | prompt tokens | prefill ms | decode ms/token | vision+projector ms |', '| --- | --- | ---: | ---: | ---: | ---: |');
for (const f of fixtures) {
  if (f.skipped) lines.push(`| ${f.name} | – | – | skipped: ${f.skipped} | – | – |`);
  else {
    lines.push(
      `| ${f.name} | ${f.precision} | ${f.promptTokens} (${f.imageTokens} image) | ${fmt(f.prefillMs, 2)} (n=${f.repeats.prefill}) | ` +
        `${fmt(f.decodeMsPerToken, 2)} (n=${f.repeats.decodeSteps}) | ${fmt(f.visionMs, 2)} |`,
    );
  }
}
lines.push('');
const t = llm.text;
lines.push(
  `**${llm.name}**: hidden ${t.hiddenSize}, ${t.numLayers} layers, ${t.numHeads}/${t.numKvHeads} heads × ${t.headDim}, ` +
    `intermediate ${t.intermediateSize}, vocab ${t.vocabSize}, tied ${t.tieWordEmbeddings}; ${millions(llm.llmParameters)} LLM parameters; ` +
    `${llm.precision} block ${llm.blockSize}.`,
  '',
);
lines.push(
  '| context | chunk | prefill ms | prefill tok/s | decode ms/token | one chunk (rows) at past 0 / past = context, ms | peak RSS MiB |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
);
for (const c of llm.contexts) {
  lines.push(
    `| ${c.tokens} | ${c.chunk} (${c.chunks} chunks) | ${fmtMs(c.prefillMs)} (n=${c.repeats.prefill}) | ${fmt(c.prefillTokensPerSecond, 0)} | ` +
      `${fmtMs(c.decodeMsPerToken)} (n=${c.repeats.decodeSteps}) | ${c.chunkAtPastMs?.rows ? `(${c.chunkAtPastMs.rows}) ` : ''}` +
      `${fmtMs(c.chunkAtPastMs?.atZeroMs)} / ${fmtMs(c.chunkAtPastMs?.ms)} | ${fmt(c.peakRssMiB, 0)} |`,
  );
}
const scoreLimit = llm.contexts.find((c) => c.chunkScoreBytes)?.chunkScoreBytes;
if (scoreLimit) {
  lines.push(
    '',
    `Chunks are a chat's (session/prefill.ts): ${llm.contexts[0]?.chunk} rows, fewer where one chunk's attention scores (heads × chunk × context × 4 bytes) ` +
      `would pass prefillScoreBytes, ${fmt(mb(scoreLimit), 0)} MiB (the chat's default); "chunks" counts the graph calls.`,
  );
}
lines.push('');
const ck = llm.checkpoint;
lines.push(
  `- checkpoint write: ${fmt(ck.writeSeconds, 1)} s for ${millions(ck.parameters)} parameters, ${fmt(mb(ck.bytes), 0)} MiB ${ck.dtype}` +
    `${ck.cached ? ` (measured when first written; reused from ${ck.dir})` : `, peak RSS ${fmt(ck.peakRssMiB, 0)} MiB`}`,
);
const g = Object.entries(llm.build.graphs)
  .map(([k, v]) => `${k} ${fmt(v.seconds, 1)} s`)
  .join(', ');
lines.push(
  `- graph build (${llm.precision} quantize + serialise, one-time): ${g}; runtime start incl. sessions ${fmt(llm.build.runtimeStartSeconds, 1)} s; ` +
    `graphs on disk ${fmt(mb(llm.build.graphBytes), 0)} MiB; peak RSS ${fmt(llm.build.peakRssMiB, 0)} MiB, RSS once loaded ${fmt(llm.build.rssAfterStartMiB, 0)} MiB`,
);
const noisy = [
  ...fixtures.map((f) => [f.name, f.load]),
  ['graph build', llm.build.load],
  ...llm.contexts.map((c) => [`${c.tokens}-token context`, c.load]),
  ...llm.contexts.filter((c) => c.peer).map((c) => [`llama.cpp ${c.tokens}-token context`, c.peer.load]),
].flatMap(([what, load]) => (load && contention(load) ? [`${what}: ${contention(load)}`] : []));
if (noisy.length) lines.push(`- **shared machine**: ${noisy.join('; ')} (timings of those rows are inflated; rerun when quiet)`);
lines.push(`- process peak RSS (VmHWM, worker included): ${fmt(overallPeak, 0)} MiB; total ${fmt(result.seconds, 0)} s`);
lines.push(`- JSON: ${path.relative(process.cwd(), OUT)}`, '', ...peerTable(llm), ...boundTable(llm), ...kvPrecisionTable(kvPrecision));
// The section has its own heading in the doc: the report's goes.
doc.write('engine', lines.slice(2).join('\n'));
console.log(lines.join('\n'));

/**
 * Each context's decode step against the time its bytes take at this machine's read bandwidth (bench-report.mjs
 * `decodeStepBytes`): ours reads the decoder graph and fp32 K and V; llama.cpp its GGUF and f16 K and V. A step at
 * context n after a prefill reads n + 1 … n + steps rows: the mean is the bound's.
 */
function boundTable(llm) {
  const out = ['### Decode against memory bandwidth', ''];
  if (!llm.build.decoderWeightBytes) return [...out, 'Not measured: no decoder graph size.', ''];
  const first = llm.contexts[0]?.bandwidth;
  out.push(
    `Bandwidth: measured after each context's rounds (scripts/bench-bandwidth.mjs in a child process, ${first?.bufferMiB} MiB buffer, median of ` +
      `${first?.repeats}): ORT ReduceSum, a one-thread and a ${first?.parallelThreads}-thread JS sum; the bound uses the fastest of the three. Bytes per step: ours, ` +
      `the decoder graph (${fmt(mb(llm.build.decoderWeightBytes), 0)} MiB: int4 codes, fp32 scales, norms, the int4 LM head) + fp32 K and V of every layer; ` +
      `llama.cpp, its GGUF${llm.peer?.gguf ? ` (${fmt(mb(llm.peer.gguf.bytes), 0)} MiB)` : ''} + f16 K and V; both + one embedding row + the logits. ` +
      `Measured ÷ bound near 1 means the step is bound by memory, not by overhead.`,
    '',
    '| context | bandwidth GB/s: ORT / JS / JS all cores | KV rows read (mean) | bytes per step MiB: ours | llama.cpp | bound ms: ours | llama.cpp | decode ms/token: ours | llama.cpp | measured ÷ bound: ours | llama.cpp |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const kvRows = (c) => c.tokens + (llm.decodeSteps + 1) / 2;
  for (const c of llm.contexts) {
    const bw = c.bandwidth;
    const gbs = boundBandwidth(bw);
    const ours = decodeStepBytes(llm.text, { weightBytes: llm.build.decoderWeightBytes, kvRows: kvRows(c) });
    const theirs = c.peer && llm.peer?.gguf && decodeStepBytes(llm.text, { weightBytes: llm.peer.gguf.bytes, kvRows: kvRows(c), kvElementBytes: 2 });
    const bound = (b) => b && b.bytes / (gbs * 1e6);
    const cell = (x, f) => (x === undefined ? '–' : f(x));
    out.push(
      `| ${c.tokens} | ${fmt(bw.ortReduceSumGBs, 1)} / ${fmt(bw.jsSumGBs, 1)} / ${fmt(bw.jsParallelSumGBs, 1)}${bw.contention ? ' ⚠' : ''} | ${fmt(kvRows(c), 0)} | ` +
        `${fmt(mb(ours.bytes), 0)} | ${cell(theirs, (b) => fmt(mb(b.bytes), 0))} | ${fmtMs(bound(ours))} | ${cell(theirs, (b) => fmtMs(bound(b)))} | ` +
        `${fmtMs(c.decodeMsPerToken)} | ${cell(c.peer, (p) => fmtMs(p.decodeMsPerToken))} | ${fmt(c.decodeMsPerToken / bound(ours), 2)}× | ` +
        `${cell(theirs, (b) => `${fmt(c.peer.decodeMsPerToken / bound(b), 2)}×`)} |`,
    );
  }
  const noisy = llm.contexts.some((c) => c.bandwidth.contention);
  return [...out, ...(noisy ? ['', '⚠: other processes took more than 10% of the CPUs during that probe.'] : []), ''];
}
