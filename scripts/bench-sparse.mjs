#!/usr/bin/env node
/**
 * SparseVILA vs dense, side by side in one run (CPU, default threads = all cores). Medians over repeats: the
 * machine may be shared.
 *
 * Model: a Qwen2-0.5B-shaped text model (llava-interleave-qwen-0.5b shapes, random weights, int4 block 32)
 * behind a cheap SigLIP-style tower that makes MANY visual tokens: 256 px images, 4 px patches → 64×64 =
 * 4096 tokens per image, all of them sent to the LLM (strategy 'full'). Workloads: one image (4096 visual
 * tokens) and two (8192), plus a text-only reference (decode over a near-empty cache: what the int4 linear
 * layers cost per token on their own).
 *
 * Per (workload, policy), R repeats, each on a fresh chat:
 *   turn 1  chat.ask({ images, text: PROMPT, maxNewTokens }) — vision, prefill, time to first token, decode
 *           ms/token (median of the `decode.step` trace events' worker ms), end-to-end;
 *   turn 2  a text-only follow-up on the same chat: a short prefill, then decode over the retained cache
 *           (SparseVILA retrieves again for the new question).
 * Policies: dense, and SparseVILA keep 50% (query-agnostic, at prefill) / retrieve 10% (query-aware, at decode).
 * Greedy decoding; random weights may stop on EOS early, so the generated count is reported with each row.
 * Memory: ORT's arena keeps what it grew to, so in one process a phase's peak depends on what ran before it.
 * Each (workload, policy) is therefore also run once in its own child process (`--probe`): its VmHWM is the
 * peak RSS of loading the model and running that one repeat. Timed repeats run in the parent: one unmeasured
 * warm-up per policy, then the repeats with the policies interleaved.
 *
 * Usage: node scripts/bench-sparse.mjs [--quick] [--rewrite] [--repeats N] [--retries N] [--out FILE]
 *   --quick    tiny shapes, 1 repeat (CI, < 1 minute)
 *   --repeats  measured repeats per (workload, policy) (default 3; quick 1)
 *   --retries  re-run a repeat during which other processes took > 10% of the CPUs, up to N times, keeping
 *              the least contended attempt (default 2; quick 0)
 *   --rewrite  rewrite the cached random checkpoint (.cache/bench/) instead of reusing it
 * Prints a markdown table; writes JSON to bench-results/sparse.json (or --out). Needs `npm run build` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import * as engine from '../dist/src/index.js';
import {
  REPO, median, ms, mb, millions, fmtMs, fmt, peakRssMiB, overallPeakMiB, measured, contention, otherShare, dirBytes, machine, cachedRandomLlava,
} from './bench-common.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rewrite: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    retries: { type: 'string' },
    out: { type: 'string' },
    /** Internal: `<images>:<policy>` — load the model, run one repeat, print this process's peak RSS as JSON. */
    probe: { type: 'string' },
  },
  strict: true,
});
const QUICK = args.quick;
const OUT = path.resolve(args.out ?? path.join(REPO, 'bench-results', 'sparse.json'));

/** Bump when the random checkpoint's contents change for the same shape, so a stale cached one is not reused. */
const CHECKPOINT_VERSION = 1;
const GRAPH_CACHE = path.join(REPO, '.cache', 'bench', 'graphs');

// Vision: SigLIP-style, tiny width, many patches; the last layer's attention is the salience (feature layer -1).
const VISION = { visionHidden: 32, visionIntermediate: 64, visionLayers: 2, visionHeads: 4, patchSize: 4, featureLayer: -1, strategy: 'full' };
const PLAN = QUICK
  ? {
      name: 'qwen2-tiny (random)',
      shape: { textHidden: 64, textIntermediate: 128, textLayers: 2, textHeads: 4, textKvHeads: 2, vocab: 1024, ...VISION, imageSize: 64 },
      repeats: 1,
      maxNewTokens: 8,
      chunk: 128,
    }
  : {
      name: 'qwen2-0.5b shape (random)',
      // llava-interleave-qwen-0.5b text_config: hidden 896, 24 layers, 14 heads / 2 KV heads (head_dim 64),
      // intermediate 4864, vocab 151936, tied embeddings, rope_theta 1e6 (the generator's Qwen2 default).
      shape: { textHidden: 896, textIntermediate: 4864, textLayers: 24, textHeads: 14, textKvHeads: 2, vocab: 151936, ...VISION, imageSize: 256 },
      repeats: 3,
      maxNewTokens: 32,
      chunk: 512,
    };
if (args.repeats !== undefined) {
  PLAN.repeats = Number(args.repeats);
  if (!(Number.isInteger(PLAN.repeats) && PLAN.repeats >= 1)) throw new Error(`--repeats must be an integer ≥ 1, got ${args.repeats}`);
}
const RETRIES = args.retries !== undefined ? Number(args.retries) : QUICK ? 0 : 2;
if (!(Number.isInteger(RETRIES) && RETRIES >= 0)) throw new Error(`--retries must be an integer ≥ 0, got ${args.retries}`);
const PRECISION = 'int4';
const BLOCK = 32;
const PROMPT = 'Describe the image.';
const FOLLOW_UP = 'What else is in it?';

const POLICIES = [
  { name: 'sparsevila', policy: { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.1 } } } },
  { name: 'dense', policy: { method: 'dense' } },
];
/** Ascending size: phases that need less memory run first (see the file comment). */
const WORKLOADS = [
  { name: 'text only', images: 0, policies: ['dense'] },
  { name: '1 image', images: 1, policies: ['sparsevila', 'dense'] },
  { name: '2 images', images: 2, policies: ['sparsevila', 'dense'] },
];

// --------------------------------------------------------------------------------------------- checkpoint

/**
 * The bundled tokenizer knows ids 0-259, but a random 151936-wide LM head emits any id, and the
 * detokenizer refuses ids it does not know. So the benchmark checkpoint's tokenizer gets inert placeholder
 * entries `<xN>` for every id up to the vocabulary: BPE has no merges that reach them (prompts encode exactly
 * as before) and they decode to their own text.
 */
function padTokenizer(dir, vocab) {
  const file = path.join(dir, 'tokenizer.json');
  const tok = JSON.parse(fs.readFileSync(file, 'utf8'));
  const taken = new Set([...Object.values(tok.model.vocab), ...tok.added_tokens.map((t) => t.id)]);
  for (let id = 0; id < vocab; id++) if (!taken.has(id)) tok.model.vocab[`<x${id}>`] = id;
  fs.writeFileSync(file, JSON.stringify(tok));
}

function ensureCheckpoint() {
  const options = { vision: 'siglip', dtype: 'BF16', shards: QUICK ? 1 : 2, seed: 1, ...PLAN.shape,
    configPatch: { text: { max_position_embeddings: 32768 } } };
  return cachedRandomLlava(engine.writeRandomLlava, {
    options, version: CHECKPOINT_VERSION, rewrite: args.rewrite, keyExtra: { tokenizer: 'bundled byte-level + <xN> placeholders up to vocab' },
    afterWrite: (dir) => padTokenizer(dir, options.vocab),
  });
}

// ------------------------------------------------------------------------------------------------- images

/** Deterministic synthetic photos: a smooth colour field with a few solid shapes, PNG-encoded (4:3, resized by the processor). */
async function syntheticImage(seed, width = 384, height = 288) {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const rgb = Buffer.alloc(width * height * 3);
  const phase = [rnd(), rnd(), rnd()].map((p) => p * 2 * Math.PI);
  const shapes = Array.from({ length: 6 }, () => ({
    kind: rnd() < 0.5 ? 'disc' : 'box', x: rnd() * width, y: rnd() * height, r: 20 + rnd() * 60,
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
  return new Uint8Array(await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

// ------------------------------------------------------------------------------------------------ the runs

/** Keeps only the trace events the benchmark reads (decode steps, stage spans). */
class StepSink {
  steps = [];
  spans = [];
  write(e) {
    if (e.type === 'decode.step') this.steps.push({ turn: e.turn, ms: e.ms, attended: e.attended, visualAttended: e.visualAttended });
    else if (e.type === 'span') this.spans.push({ turn: e.turn, stage: e.stage, ms: e.duration });
  }
}

function turnRecord(answer, wallMs, load, steps, spans) {
  const t = answer.timings;
  const perLayer = answer.sparsity.attendedVisualPerLayer;
  return {
    wallMs,
    visionMs: t.visionSeconds * 1000,
    imageMs: t.imageSeconds * 1000,
    prefillMs: t.prefillSeconds * 1000,
    firstTokenMs: t.firstTokenSeconds * 1000,
    totalMs: t.totalSeconds * 1000,
    /** Main-thread sparsity bookkeeping: salience top-k and embedding gather (prune), per-layer top-k (retrieve). */
    pruneMs: spans.filter((x) => x.stage === 'prune').reduce((a, x) => a + x.ms, 0),
    retrieveMs: spans.filter((x) => x.stage === 'retrieve').reduce((a, x) => a + x.ms, 0),
    decodeStepMs: steps.map((s) => s.ms),
    promptTokens: t.promptTokens,
    cachedTokens: t.cachedTokens,
    generatedTokens: answer.tokenIds.length,
    stopReason: answer.stopReason,
    turnImageTokens: answer.sparsity.turnImageTokens,
    turnKeptTokens: answer.sparsity.turnKeptTokens,
    retainedVisualTokens: answer.sparsity.visualTokens,
    attendedVisualMean: perLayer.reduce((a, b) => a + b, 0) / perLayer.length,
    attendedVisualMin: Math.min(...perLayer),
    attendedVisualMax: Math.max(...perLayer),
    /** Rows each decode step attended (first step), text and visual. */
    attendedRowsFirstStep: steps[0]?.attended,
    tokenIds: answer.tokenIds,
    load,
  };
}

/** One repeat: a fresh chat, turn 1 (images + PROMPT), turn 2 (text-only follow-up). */
async function runOnce(model, policy, images) {
  const sink = new StepSink();
  const chat = model.chat({
    policy, tracer: new engine.Tracer([sink]), prefillChunk: PLAN.chunk, sampling: { kind: 'greedy' }, maxNewTokens: PLAN.maxNewTokens,
  });
  try {
    const turns = [];
    for (const [turn, input] of [[0, { images, text: PROMPT }], [1, { text: FOLLOW_UP }]]) {
      const startRss = mb(process.memoryUsage().rss);
      const [{ answer, wallMs }, load] = await measured(async () => {
        const t0 = ms();
        const answer = await chat.ask({ ...input, images: input.images?.length ? input.images : undefined, maxNewTokens: PLAN.maxNewTokens });
        return { answer, wallMs: ms() - t0 };
      });
      turns.push(turnRecord(answer, wallMs, { ...load, startRssMiB: startRss }, sink.steps.filter((s) => s.turn === turn), sink.spans.filter((s) => s.turn === turn)));
    }
    return turns;
  } finally {
    await chat.close();
  }
}

const ROW_METRICS = ['wallMs', 'visionMs', 'imageMs', 'prefillMs', 'firstTokenMs', 'totalMs', 'pruneMs', 'retrieveMs'];

/** Medians over repeats (decode: over every step of every repeat). */
function summarise(runs) {
  const first = runs[0];
  const out = { repeats: runs.length };
  for (const k of ROW_METRICS) out[k] = median(runs.map((r) => r[k]));
  const steps = runs.flatMap((r) => r.decodeStepMs);
  out.decodeMsPerToken = steps.length ? median(steps) : undefined;
  out.decodeSteps = steps.length;
  for (const k of ['promptTokens', 'cachedTokens', 'turnImageTokens', 'turnKeptTokens', 'retainedVisualTokens', 'attendedVisualMean', 'attendedVisualMin', 'attendedVisualMax', 'attendedRowsFirstStep']) {
    out[k] = first[k];
  }
  out.generatedTokens = runs.map((r) => r.generatedTokens);
  out.stopReasons = runs.map((r) => r.stopReason);
  out.sameTokensEveryRepeat = runs.every((r) => r.tokenIds.join() === first.tokenIds.join());
  out.tokenIds = first.tokenIds;
  out.peakRssMiB = Math.max(...runs.map((r) => r.load.peakRssMiB));
  out.startRssMiB = Math.min(...runs.map((r) => r.load.startRssMiB));
  out.contention = runs.map((r) => contention(r.load)).filter(Boolean);
  out.samples = Object.fromEntries([...ROW_METRICS.map((k) => [k, runs.map((r) => r[k])]), ['decodeStepMs', runs.map((r) => r.decodeStepMs)]]);
  out.loads = runs.map((r) => r.load);
  return out;
}

async function bench() {
  const [checkpoint, writeLoad] = await measured(async () => ensureCheckpoint());
  const cacheDir = GRAPH_CACHE;
  const builds = {};
  const onProgress = (e) => {
    if (e.phase === 'done') builds[e.graph] = { seconds: e.seconds ?? 0, cached: e.cached };
  };
  const [{ model, loadMs }, loadLoad] = await measured(async () => {
    const t0 = ms();
    const model = await engine.loadModel(checkpoint.dir, { precision: PRECISION, blockSize: BLOCK, cacheDir, onProgress });
    return { model, loadMs: ms() - t0 };
  });
  const rssAfterLoadMiB = mb(process.memoryUsage().rss);
  const opened = engine.openCheckpoint(checkpoint.dir);
  const graphDir = path.join(cacheDir, engine.graphCacheKey(opened.fingerprint, { precision: PRECISION, blockSize: BLOCK }));
  opened.close();
  try {
    const spec = model.spec;
    const t = spec.text;
    const llmParams = t.vocabSize * t.hiddenSize * (t.tieWordEmbeddings ? 1 : 2) +
      t.numLayers * (t.hiddenSize * (t.numHeads + 2 * t.numKvHeads) * t.headDim + t.numHeads * t.headDim * t.hiddenSize + 3 * t.hiddenSize * t.intermediateSize);
    const images = [await syntheticImage(1), await syntheticImage(2)];

    // Warm-up: every graph once (vision, projector, embed, decoder; mass outputs), not measured.
    console.error('warm-up …');
    const warm = model.chat({ policy: POLICIES[0].policy, prefillChunk: PLAN.chunk, maxNewTokens: 2 });
    await warm.ask({ images: images.slice(0, 1), text: PROMPT });
    await warm.ask({ text: FOLLOW_UP });
    await warm.close();

    const results = [];
    for (const w of WORKLOADS) {
      const input = images.slice(0, w.images);
      // Warm-ups, smallest policy first: one unmeasured repeat per policy grows ORT's arena and the allocator
      // to the workload's size (measured repeats do not pay for that), and gives each policy's peak RSS
      // before a bigger one raised the floor. Every turn resets VmHWM and reads its own peak.
      const phases = w.policies.map((name) => ({ name, policy: POLICIES.find((p) => p.name === name).policy, runs: [], attempts: [] }));
      for (const ph of phases) {
        ph.startRssMiB = mb(process.memoryUsage().rss);
        console.error(`${w.name}, ${ph.name}: warm-up …`);
        const warmup = await runOnce(model, ph.policy, input);
        ph.peakRssMiB = Math.max(...warmup.map((turn) => turn.load.peakRssMiB));
      }
      // Measured repeats, policies interleaved (order alternating), so a burst of load from other processes
      // lands on both sides of a ratio rather than on one policy's phase; a repeat that other processes
      // disturbed is run again (up to RETRIES times) and the least disturbed attempt kept.
      for (let r = 0; r < PLAN.repeats; r++) {
        for (const ph of r % 2 ? [...phases].reverse() : phases) {
          let best;
          let attempts = 0;
          for (;;) {
            attempts++;
            console.error(`${w.name}, ${ph.name}: repeat ${r + 1}/${PLAN.repeats}${attempts > 1 ? ` (attempt ${attempts})` : ''} …`);
            const run = await runOnce(model, ph.policy, input);
            const share = Math.max(...run.map((turn) => otherShare(turn.load)));
            if (!best || share < best.share) best = { run, share };
            if (!run.some((turn) => contention(turn.load)) || attempts > RETRIES) break;
          }
          ph.runs.push(best.run);
          ph.attempts.push(attempts);
        }
      }
      for (const ph of phases) {
        results.push({
          workload: w.name, images: w.images, policy: ph.name, policySpec: engine.validatePolicy(ph.policy),
          inProcessMemory: { startRssMiB: ph.startRssMiB, peakRssMiB: ph.peakRssMiB, measuredRepeatsPeakRssMiB: Math.max(...ph.runs.flat().map((turn) => turn.load.peakRssMiB)) },
          attempts: ph.attempts,
          turns: [0, 1].map((turn) => summarise(ph.runs.map((rs) => rs[turn]))),
        });
      }
    }
    return {
      name: PLAN.name, precision: PRECISION, blockSize: BLOCK, text: t, llmParameters: llmParams,
      vision: { ...spec.vision, imageTokenCount: spec.imageTokenCount, selectStrategy: spec.selectStrategy },
      checkpoint: { dir: path.relative(REPO, checkpoint.dir), cached: checkpoint.cached, dtype: checkpoint.options.dtype, parameters: checkpoint.parameters,
        bytes: checkpoint.bytes, writeSeconds: checkpoint.writeSeconds, peakRssMiB: checkpoint.cached ? undefined : writeLoad.peakRssMiB },
      load: { seconds: loadMs / 1000, graphs: builds, graphDir: path.relative(REPO, graphDir), graphBytes: dirBytes(graphDir), peakRssMiB: loadLoad.peakRssMiB,
        rssAfterLoadMiB, load: loadLoad },
      prompt: PROMPT, followUp: FOLLOW_UP, maxNewTokens: PLAN.maxNewTokens, prefillChunk: PLAN.chunk, repeats: PLAN.repeats, retries: RETRIES,
      results,
    };
  } finally {
    await model.close();
  }
}

/** Child process: load the model, run one repeat of a phase, print { peakRssMiB, loadedRssMiB, … } as JSON. */
async function memoryProbe(spec) {
  const [n, name] = spec.split(':');
  const { policy } = POLICIES.find((p) => p.name === name);
  const checkpoint = ensureCheckpoint();
  const model = await engine.loadModel(checkpoint.dir, { precision: PRECISION, blockSize: BLOCK, cacheDir: GRAPH_CACHE });
  try {
    const loadedRssMiB = mb(process.memoryUsage().rss);
    const loadPeakRssMiB = peakRssMiB();
    const images = [await syntheticImage(1), await syntheticImage(2)].slice(0, Number(n));
    // runOnce resets VmHWM per turn (measured()), so the process peak is the largest of the parts.
    const turns = await runOnce(model, policy, images);
    const turnPeaks = turns.map((t) => t.load.peakRssMiB);
    console.log(JSON.stringify({ peakRssMiB: Math.max(loadPeakRssMiB, ...turnPeaks), loadedRssMiB, loadPeakRssMiB, turnPeaks }));
  } finally {
    await model.close();
  }
}

/** Runs every (workload, policy) once in its own process, for peak RSS not shaped by earlier phases. */
function memoryProbes() {
  const out = [];
  for (const w of WORKLOADS) {
    for (const name of w.policies) {
      console.error(`memory probe: ${w.name}, ${name} …`);
      const argv = [fileURLToPath(import.meta.url), '--probe', `${w.images}:${name}`, ...(QUICK ? ['--quick'] : [])];
      try {
        const stdout = execFileSync(process.execPath, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
        out.push({ workload: w.name, images: w.images, policy: name, ...JSON.parse(stdout.trim().split('\n').at(-1)) });
      } catch (err) {
        out.push({ workload: w.name, images: w.images, policy: name, error: String(err.stderr || err.message).slice(-500) });
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------- main

if (args.probe) {
  await memoryProbe(args.probe);
  process.exit(0);
}

const started = ms();
const info = machine();
console.error(`bench-sparse${QUICK ? ' --quick' : ''}: ${info.cpus} cpus (${info.cpuModel}), node ${info.node}, onnxruntime-node ${info.onnxruntime}, load ${info.loadAverage.join(' ')}`);
console.error(`${PLAN.name} ${PRECISION}, ${PLAN.shape.imageSize}px / ${PLAN.shape.patchSize}px patches …`);
const bench_ = await bench();
const overallPeak = overallPeakMiB();
const memory = memoryProbes();
const result = {
  date: new Date().toISOString(), quick: QUICK, machine: info, threads: 'default (all cores)', ...bench_, memory, peakRssMiB: overallPeak,
  seconds: (ms() - started) / 1000,
};
fs.mkdirSync(path.dirname(OUT), { recursive: true });
fs.writeFileSync(OUT, JSON.stringify(result, null, 2));

// ------------------------------------------------------------------------------------------------ report

const ratio = (d, s) => (d !== undefined && s !== undefined && s > 0 ? `${(d / s).toFixed(2)}×` : '–');
const lines = [];
const t = result.text;
const v = result.vision;
lines.push(`## SparseVILA vs dense${QUICK ? ' (quick)' : ''}`, '');
lines.push(`${info.cpus} × ${info.cpuModel}, ${info.memoryGiB} GiB, node ${info.node}, onnxruntime-node ${info.onnxruntime}, commit ${info.commit ?? '?'}; CPU EP, default threads.`, '');
lines.push(`**${result.name}**: hidden ${t.hiddenSize}, ${t.numLayers} layers, ${t.numHeads}/${t.numKvHeads} heads × ${t.headDim}, intermediate ${t.intermediateSize}, ` +
  `vocab ${t.vocabSize}, tied ${t.tieWordEmbeddings}; ${millions(result.llmParameters)} LLM parameters; ${result.precision} block ${result.blockSize}. ` +
  `Vision: SigLIP-style ${v.imageSize} px / ${v.patchSize} px patches, ${v.numLayers ?? '?'} layers × ${v.hiddenSize ?? '?'} wide → ${v.imageTokenCount} tokens per image (strategy ${v.selectStrategy}).`, '');
lines.push(`Turn 1: \`${PROMPT}\` with the images; turn 2 (same chat): \`${FOLLOW_UP}\`. Greedy, maxNewTokens ${result.maxNewTokens}, prefill chunk ${result.prefillChunk}; ` +
  `sparsevila = keep 50% per image at prefill, retrieve 10% of the retained visual tokens per layer at decode. ` +
  `Medians over ${result.repeats} repeat(s) (fresh chat each); decode ms/token = median of every \`decode.step\` (worker ms), n = steps.`, '');
lines.push('| workload | policy | turn | LLM tokens in (visual kept / total) | visual attended / decode step | generated | vision ms | prefill ms | prune + retrieve ms | TTFT ms | decode ms/token | end-to-end ms |');
lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of result.results) {
  r.turns.forEach((s, turn) => {
    const visual = turn === 0 && r.images ? ` (${s.turnKeptTokens} / ${s.turnImageTokens})` : s.cachedTokens ? ` (+${s.cachedTokens} cached)` : '';
    const attended = s.retainedVisualTokens
      ? `${fmt(s.attendedVisualMean, 0)}${s.attendedVisualMin !== s.attendedVisualMax ? ` (${s.attendedVisualMin}–${s.attendedVisualMax})` : ''} of ${s.retainedVisualTokens}`
      : '0';
    const gen = [...new Set(s.generatedTokens)].join('/') + (s.stopReasons.includes('eos') ? ' (eos)' : '');
    lines.push(`| ${r.workload} | ${r.policy} | ${turn + 1} | ${s.promptTokens}${visual} | ${attended} | ${gen} | ${turn === 0 && r.images ? fmtMs(s.visionMs) : '–'} | ` +
      `${fmtMs(s.prefillMs)} | ${turn === 0 && r.images ? fmtMs(s.pruneMs + s.retrieveMs) : r.policy === 'sparsevila' ? fmtMs(s.retrieveMs) : '–'} | ${fmtMs(s.firstTokenMs)} | ${fmtMs(s.decodeMsPerToken)} (n=${s.decodeSteps}) | ` +
      `${fmtMs(s.wallMs)} (n=${s.repeats}) |`);
  });
}
lines.push('');
lines.push('**Speed-ups, dense / sparsevila** (of the medians above)', '');
lines.push('| workload | turn | prefill | TTFT | decode ms/token | end-to-end |', '| --- | ---: | ---: | ---: | ---: | ---: |');
const ratios = [];
for (const w of WORKLOADS.filter((w) => w.policies.length > 1)) {
  const d = result.results.find((r) => r.workload === w.name && r.policy === 'dense');
  const s = result.results.find((r) => r.workload === w.name && r.policy === 'sparsevila');
  [0, 1].forEach((turn) => {
    const a = d.turns[turn];
    const b = s.turns[turn];
    const row = { workload: w.name, turn: turn + 1, prefill: a.prefillMs / b.prefillMs, firstToken: a.firstTokenMs / b.firstTokenMs,
      decode: a.decodeMsPerToken / b.decodeMsPerToken, endToEnd: a.wallMs / b.wallMs };
    ratios.push(row);
    lines.push(`| ${w.name} | ${turn + 1} | ${ratio(a.prefillMs, b.prefillMs)} | ${ratio(a.firstTokenMs, b.firstTokenMs)} | ${ratio(a.decodeMsPerToken, b.decodeMsPerToken)} | ${ratio(a.wallMs, b.wallMs)} |`);
  });
}
result.ratios = ratios;
fs.writeFileSync(OUT, JSON.stringify(result, null, 2));
lines.push('');
lines.push('**Peak RSS per phase**: VmHWM (worker included) of a child process that loads the model and runs one repeat (both turns) of the phase', '');
lines.push('| workload | policy | peak RSS MiB | RSS with the model loaded MiB | peak − loaded MiB | turn 1 / turn 2 peak MiB |', '| --- | --- | ---: | ---: | ---: | ---: |');
for (const m of result.memory) {
  if (m.error) lines.push(`| ${m.workload} | ${m.policy} | failed: ${m.error.split('\n').filter(Boolean).at(-1)} | – | – | – |`);
  else {
    lines.push(`| ${m.workload} | ${m.policy} | ${fmt(m.peakRssMiB, 0)} | ${fmt(m.loadedRssMiB, 0)} | ${fmt(m.peakRssMiB - m.loadedRssMiB, 0)} | ` +
      `${m.turnPeaks.map((x) => fmt(x, 0)).join(' / ')} |`);
  }
}
lines.push('');
const ck = result.checkpoint;
lines.push(`- checkpoint: ${ck.dir}, ${millions(ck.parameters)} parameters, ${fmt(mb(ck.bytes), 0)} MiB ${ck.dtype}, written in ${fmt(ck.writeSeconds, 1)} s` +
  `${ck.cached ? ' (when first written; reused)' : `, peak RSS ${fmt(ck.peakRssMiB, 0)} MiB`}; its tokenizer is padded with inert \`<xN>\` ids up to the vocabulary`);
const g = Object.entries(result.load.graphs).map(([k, x]) => `${k} ${x.cached ? 'cached' : `${fmt(x.seconds, 1)} s`}`).join(', ');
lines.push(`- model load: ${fmt(result.load.seconds, 1)} s (graphs ${result.load.graphDir}: ${g}; ${fmt(mb(result.load.graphBytes), 0)} MiB on disk); ` +
  `peak RSS ${fmt(result.load.peakRssMiB, 0)} MiB, RSS once loaded ${fmt(result.load.rssAfterLoadMiB, 0)} MiB`);
const mixed = result.results.flatMap((r) => r.turns.map((s, i) => [r, s, i])).filter(([, s]) => !s.sameTokensEveryRepeat);
if (mixed.length) lines.push(`- tokens differed between repeats in: ${mixed.map(([r, , i]) => `${r.workload} ${r.policy} turn ${i + 1}`).join(', ')}`);
const noisy = result.results.flatMap((r) => r.turns.flatMap((s, i) => (s.contention.length ? [`${r.workload} ${r.policy} turn ${i + 1}: ${s.contention.join(', ')}`] : [])));
const retried = result.results.filter((r) => r.attempts.some((a) => a > 1));
if (retried.length) {
  lines.push(`- repeats run again because other processes took > 10% of the CPUs (least disturbed attempt kept): ` +
    retried.map((r) => `${r.workload} ${r.policy} ${r.attempts.reduce((a, b) => a + b - 1, 0)}×`).join(', '));
}
if (noisy.length) lines.push(`- **shared machine**, still in the kept repeats: ${noisy.join('; ')} (those rows are inflated; rerun when quiet)`);
lines.push('- vision ms = vision tower + projector + salience (the same work under both policies); TTFT = from the start of the turn (image decode) to the first token; ' +
  'end-to-end = wall time of `chat.ask`; prune + retrieve = main-thread selection and gathers inside TTFT (dense: the keep-all gather of the embeddings; ' +
  'sparsevila: top-k by salience, then per-layer top-k by question attention; tracing is on for `decode.step`, and building the retrieval events adds to retrieve)');
lines.push(`- peak RSS of the timing process (all phases, arena retained): ${fmt(overallPeak, 0)} MiB; total ${fmt(result.seconds, 0)} s`);
lines.push(`- JSON: ${path.relative(process.cwd(), OUT)}`);
console.log(lines.join('\n'));
