#!/usr/bin/env node
/**
 * Multi-turn fidelity benchmark: exact-match answer accuracy per method and per turn (1…5) on held-out
 * conversations of the synthetic world, at matched visual-token budgets, plus SparseVILA's retrieval recall
 * against the dense attention. The world's answers are one or two tokens, so the first answer token comes from
 * the turn's prefill, before any decode-time retrieval; each method therefore also captions images ("Describe
 * the image.", ~55 tokens cell by cell), where decode writes nearly everything, scored by grid cells right.
 *
 * Budget: the share of an image's (or video's) visual tokens that a decode step attends, averaged over LLM
 * layers. SparseVILA keep k / retrieve r attends k·r; FastV (K, R) attends (K + (L − K)(1 − R)) / L;
 * PyramidDrop averages its stages the same way; VisionZip and random pruning attend what they keep.
 *
 * Retrieval that follows the answer (a second table, captions only): SparseVILA's once-per-turn retrieval against
 * refreshing every N decode steps (RetrieveBudget.refreshEvery: a dense step whose attention, blended with the
 * question's, re-ranks each layer) and per-layer budgets, at about the same average attended budget — measured per
 * caption as the mean over decode steps and layers of the visual tokens attended (a refresh step attends all) — with
 * the decode cost (ms per decoded token, refresh work included) beside cells right and recall. The demo model's
 * decode time is per-call overhead, so the same run also times each policy's decode at `npm run bench`'s scale — its
 * Qwen2-0.5B-shaped int4 decoder over a cache as long as the 64-frame video workload's prompt (workloadDecode).
 *
 * Usage: node scripts/bench-fidelity.mjs [--quick] [--refresh] [--model DIR] [--count N] [--out DIR] [--threads N] [--doc FILE | --no-doc]
 *   --quick    24 conversations, fewer methods (CI)
 *   --refresh  only the retrieval-that-follows-the-answer table
 * Writes bench-results/fidelity.{json,md,svg} and fidelity-refresh.{json,md}, prints the first markdown table (the
 * second with --refresh), and replaces the "fidelity" and "fidelity-refresh" sections of docs/benchmarks.md, the
 * chart beside them (a --quick run only with --doc FILE: scripts/bench-doc.mjs). Needs `npm run build` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as engine from 'sparsevila-ts';
import {
  BENCH_WORKLOADS,
  fillCache,
  LONG_CONTEXT_MODELS,
  llavaVisualTokens,
  longContextDecoder,
  longContextModules,
  median,
  mean,
  QWEN2_05B_OPTIONS,
  randomFloats,
} from './bench-common.mjs';
import { benchDoc, DOC_OPTIONS } from './bench-doc.mjs';
import { CAPTION_PROMPT, captionCellsRight, demoBenchArgs, heldOutConversations, isCorrect, renderMedia, REPO } from './heldout.mjs';

const { args, model: MODEL, out: OUT, threads: THREADS } = demoBenchArgs({ ...DOC_OPTIONS, refresh: { type: 'boolean', default: false } });
const doc = benchDoc(args);
const QUICK = args.quick;
const COUNT = Number(args.count ?? (QUICK ? 24 : 240));
/** Images captioned per method (the first image conversations): a long answer, decoded under the policy. */
const CAPTIONS = QUICK ? 4 : 60;
const TARGET = 0.25;

function methods(layers) {
  const fastvDrop = (K) => Math.min(0.95, 1 - (TARGET * layers - K) / (layers - K));
  const K = Math.max(1, Math.floor(layers / 4));
  const KP = Math.min(2, layers - 1);
  const list = [
    ['dense', { method: 'dense' }, 1],
    ['SparseVILA keep 100% / retrieve 25%', { method: 'sparsevila', keep: { budget: { ratio: 1 } }, retrieve: { budget: { ratio: 0.25 } } }, 0.25],
    ['SparseVILA keep 100% / retrieve 50%', { method: 'sparsevila', keep: { budget: { ratio: 1 } }, retrieve: { budget: { ratio: 0.5 } } }, 0.5],
    ['SparseVILA keep 50% / retrieve 50%', { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.5 } } }, 0.25],
    ['SparseVILA keep 50% / retrieve 25%', { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.25 } } }, 0.125],
    // The budget at which `npm run bench`'s 64-frame video (full tower) reaches the paper's speed-ups: what it costs here.
    ['SparseVILA keep 25% / retrieve 10%', { method: 'sparsevila', keep: { budget: { ratio: 0.25 } }, retrieve: { budget: { ratio: 0.1 } } }, 0.025],
    [
      `FastV K=${K} R=${Math.round(fastvDrop(K) * 100)}%`,
      { method: 'fastv', layer: K, dropRatio: fastvDrop(K) },
      (K + (layers - K) * (1 - fastvDrop(K))) / layers,
    ],
    // FastV's own setting (K=2, R=50%), far above the matched budget: what its first-question drops cost later turns
    // when turn 1 is near dense.
    [`FastV K=${KP} R=50%`, { method: 'fastv', layer: KP, dropRatio: 0.5 }, (KP + (layers - KP) * 0.5) / layers],
    ['VisionZip 12 + 4 of 64', { method: 'visionzip', dominant: 12, contextual: 4 }, 0.25],
    ['random 25%', { method: 'random', keep: { budget: { ratio: 0.25 } }, seed: 0 }, 0.25],
    // DivPrune (CVPR 2025): the most diverse quarter of each image's projected tokens, query-agnostic like SparseVILA's prefill.
    ['DivPrune 25%', { method: 'divprune', keep: { budget: { ratio: 0.25 } } }, 0.25],
  ];
  if (layers >= 4) {
    const stages = [1, 2, 3].map((i) => Math.round((i * layers) / 4));
    // Keep ratios r, r/2, r/4 after the stages, matched to the target average.
    const share = (r) => (stages[0] + (stages[1] - stages[0]) * r + ((stages[2] - stages[1]) * r) / 2 + ((layers - stages[2]) * r) / 4) / layers;
    let r = 1;
    while (r > 0.05 && share(r) > TARGET) r -= 0.01;
    list.push([`PyramidDrop ${stages.join('/')} keep ${Math.round(r * 100)}%…`, { method: 'pdrop', layers: stages, keepRatios: [r, r / 2, r / 4] }, share(r)]);
  }
  return QUICK ? list.filter(([name]) => /^dense|keep 100%|FastV|DivPrune/.test(name)) : list;
}

/**
 * Retrieval that follows the answer, at about 25% of the visual tokens attended on average (dense steps count 100%):
 * once per turn (the paper), refreshing every N steps, per-layer budgets, and both. The per-layer rows spend the
 * budget on one layer — the demo model's trainer guided layer 1's attention toward the image tokens a question is
 * about (src/models/sparsevila-demo/README.md) — and a single token on each other layer.
 */
function refreshMethods(layers, tokens) {
  const sv = (retrieve) => ({ method: 'sparsevila', keep: { budget: { ratio: 1 } }, retrieve: { budget: { ratio: 0.25 }, ...retrieve } });
  const heavy = Math.min(1, layers - 1);
  // One layer at `count` tokens, the others at one: the average is (count + layers − 1) / (layers · tokens).
  const oneLayer = (count) => Array.from({ length: layers }, (_, l) => ({ count: l === heavy ? count : 1 }));
  const atTarget = Math.floor(TARGET * layers * tokens - (layers - 1));
  const list = [
    ['dense', { method: 'dense' }],
    ['once per turn, retrieve 25%', sv({})],
    ['refresh every 8, retrieve 12.5%', sv({ budget: { ratio: 0.125 }, refreshEvery: 8 })],
    ['refresh every 8, retrieve 12.5%, blend 1', sv({ budget: { ratio: 0.125 }, refreshEvery: 8, refreshBlend: 1 })],
    ['refresh every 16, retrieve 20%', sv({ budget: { ratio: 0.2 }, refreshEvery: 16 })],
    [`per layer: layer ${heavy} ${atTarget}, others 1`, sv({ perLayer: oneLayer(atTarget) })],
    [`per layer: layer ${heavy} ${Math.round(tokens / 2)}, others 1`, sv({ perLayer: oneLayer(Math.round(tokens / 2)) })],
    [`per layer: layer ${heavy} ${Math.round(tokens / 2)}, others 1; refresh every 8`, sv({ perLayer: oneLayer(Math.round(tokens / 2)), refreshEvery: 8 })],
    [
      `per layer: layer ${heavy} ${Math.round((tokens * 3) / 4)}, others 1; refresh every 16`,
      sv({ perLayer: oneLayer(Math.round((tokens * 3) / 4)), refreshEvery: 16 }),
    ],
  ];
  return QUICK ? list.filter(([name]) => /^dense|once|refresh every 8, retrieve|; refresh every 8/.test(name)) : list;
}

/**
 * Captions `captioned` ([scene, images] pairs) under `policy`: grid cells right, the dense twin's retrieval recall
 * (retrieving policies), the visual tokens a decode step attended as a share of those retained (mean over steps and
 * layers, then captions) and the decode time per decoded token (refresh work included).
 */
async function captions(model, policy, captioned) {
  let cellsRight = 0;
  let seconds = 0;
  let steps = 0;
  const recall = [];
  const attended = [];
  for (const [scene, images] of captioned) {
    const chat = model.chat({ policy, maxNewTokens: 96, fidelity: policy.method === 'sparsevila' });
    const answer = await chat.ask({ images, text: CAPTION_PROMPT });
    cellsRight += captionCellsRight(answer.text, scene);
    const r = answer.fidelity?.retrievalRecall;
    if (r) recall.push(mean(r));
    const s = answer.sparsity;
    attended.push(mean(s.attendedVisualPerLayer) / s.visualTokens);
    seconds += answer.timings.decodeSeconds;
    // Decode steps: every generated token was fed back but the last of a length stop.
    steps += answer.timings.generatedTokens - (answer.stopReason === 'length' ? 1 : 0);
    await chat.close();
  }
  return {
    images: captioned.length,
    cellAccuracy: cellsRight / (9 * captioned.length),
    retrievalRecall: recall.length ? mean(recall) : null,
    attended: mean(attended),
    decodeMsPerToken: steps ? (1000 * seconds) / steps : null,
  };
}

/** The image conversations' scenes and rendered images, the first CAPTIONS of them. */
const captionSet = (conversations, media) => conversations.flatMap((c, i) => (c.media.kind === 'image' ? [[c.media.scene, media[i]]] : [])).slice(0, CAPTIONS);

async function main() {
  const model = await engine.loadModel(MODEL, { threads: THREADS });
  const { seed, conversations } = heldOutConversations(MODEL, COUNT);
  const media = await renderMedia(conversations, model.spec.vision.imageSize);
  const header = { date: new Date().toISOString(), quick: QUICK, model: path.relative(REPO, MODEL), seed };
  fs.mkdirSync(OUT, { recursive: true });
  if (!args.refresh) await accuracyTable(model, conversations, media, header);
  await refreshTable(model, captionSet(conversations, media), header);
  await model.close();
}

async function refreshTable(model, captioned, header) {
  const results = [];
  for (const [name, policy] of refreshMethods(model.spec.text.numLayers, model.spec.imageTokenCount)) {
    const started = performance.now();
    const caption = await captions(model, engine.validatePolicy(policy), captioned);
    results.push({ name, policy, label: engine.policyLabel(engine.validatePolicy(policy)), ...caption, seconds: (performance.now() - started) / 1000 });
    process.stderr.write(`${name}: ${(100 * caption.cellAccuracy).toFixed(1)}% cells at ${(100 * caption.attended).toFixed(1)}% attended\n`);
  }
  const workload = await workloadDecode(results, { layers: model.spec.text.numLayers, tokens: model.spec.imageTokenCount });
  const report = { ...header, results, workload };
  fs.writeFileSync(path.join(OUT, 'fidelity-refresh.json'), JSON.stringify(report, null, 2));
  const md = refreshMarkdown(report);
  fs.writeFileSync(path.join(OUT, 'fidelity-refresh.md'), md);
  doc.write('fidelity-refresh', md);
  if (args.refresh) process.stdout.write(md);
}

/**
 * The decode speed of each refresh-table policy at the bench's scale, where attention over the cache, not per-call
 * overhead, sets a step's time: `npm run bench`'s qwen2-0.5b text model (int4, 24 layers) over a cache as long as
 * its 64-frame video workload's prompt (--quick: the 2-layer fp32 twin and the 8-frame video), filled with random
 * rows (profile-long-context.mjs), timed on the runtime's own pieces in this process (DecoderStepper over a KvCache
 * or a KvView; no worker messages — the same for every policy). Each policy at its own budgets:
 *   once per turn  a per-layer view of the retrieved visual rows, every step;
 *   per layer      the demo's per-layer budgets mapped onto the bench model's layers by depth (perLayerShares), so
 *                  the mean share over layers is the demo's;
 *   refresh every N  per N steps, N − 1 view steps and one dense step through the attention-mass graph, then the
 *                  re-rank (sparsity/retrieve.ts, blended with the question's scores) and the new view's gather
 *                  (KvCache.select): ms/token = ((N − 1) · view step + mass step + re-rank + gather) / N.
 * The sets come from the engine's retrieval on a real mass step's attention (random weights: which rows win is
 * arbitrary, how many is the budget's). Medians over STEPS steps after a warm-up.
 */
async function workloadDecode(results, demo) {
  const started = performance.now();
  const mods = await longContextModules();
  const modelName = QUICK ? 'qwen05b-2l' : 'qwen05b';
  const workload = BENCH_WORKLOADS[QUICK ? 'video 8 frames' : 'video 64 frames'];
  const visual = llavaVisualTokens(QWEN2_05B_OPTIONS, workload);
  // Text around the frames: the chat template and question before and after them (rows the views always keep).
  const [before, after] = [16, 32];
  const past = before + visual + after;
  const runtime = { executionProvider: 'cpu', ...(THREADS ? { intraOpThreads: THREADS } : {}) };
  const dense = await longContextDecoder(mods, LONG_CONTEXT_MODELS[modelName], 'decoder', { runtime });
  const massDecoder = await longContextDecoder(mods, LONG_CONTEXT_MODELS[modelName], 'decoder-mass', { runtime });
  const t = dense.text;
  const cache = new mods.KvCache({ layers: t.numLayers, kvHeads: t.numKvHeads, headDim: t.headDim });
  const steps = QUICK ? 1 : 8;
  // Every step appends to the cache (a view's too): two dense rounds, the question's, and two per policy.
  cache.reserve(past + (steps + 1) * (2 * results.length + 3));
  fillCache(cache, past, t, mods);
  const embeds = randomFloats(t.hiddenSize, 3);
  const massWeights = new Float32Array([1]);
  const visualRows = {
    rows: Array.from({ length: visual }, (_, i) => before + i),
    image: Array.from({ length: visual }, (_, i) => Math.floor(i / (visual / workload.frames))),
  };
  const step = async (stepper, target, extra = {}) => {
    const ms = [];
    for (let i = 0; i <= steps; i++) {
      const t0 = performance.now();
      const out = await stepper.run(target, { embeds, positions: [cache.nextPosition], ...extra });
      if (i > 0) ms.push(performance.now() - t0);
      if (i === steps) return { ms: median(ms), all: ms, out };
    }
  };
  // Dense is timed first and again last, its median over both rounds: a shared machine's load drifts over the minute
  // the policies take, and every speed-up divides by this.
  const denseFirst = await step(dense.stepper, cache);
  let denseMs = denseFirst.ms;
  // The question's attention (a mass step over the whole cache): the sets every policy retrieves from.
  const mass = await step(massDecoder.stepper, cache, { massWeights });
  const question = mass.out.mass;
  const columns = cache.length;
  /** Per layer: the text rows (before the frames, and everything after them) and the layer's retrieved rows. */
  const subsets = (layers) =>
    layers.map((l) => [
      ...Array.from({ length: before }, (_, i) => i),
      ...l.rows,
      ...Array.from({ length: cache.length - before - visual }, (_, i) => before + visual + i),
    ]);
  const rows = [];
  for (const r of results) {
    const policy = engine.validatePolicy(r.policy);
    if (!policy.retrieve) {
      rows.push({ name: r.name, attended: 1 });
      continue;
    }
    const b = policy.retrieve;
    const budget = b.perLayer ? { ...b, perLayer: perLayerShares(b.perLayer, demo.tokens, t.numLayers) } : b;
    const layers = mods.retrieveLayers(question, columns, visualRows, budget, t.numKvHeads);
    const view = cache.select(subsets(layers));
    const viewMs = (await step(dense.stepper, view)).ms;
    const attended = mean(layers.map((l) => l.rows.length)) / visual;
    const row = { name: r.name, viewMs, attended };
    if (b.refreshEvery) {
      const N = b.refreshEvery;
      const refresh = await step(massDecoder.stepper, cache, { massWeights });
      const rerank = [];
      const gather = [];
      for (let i = 0; i < Math.max(1, steps); i++) {
        const t0 = performance.now();
        const again = mods.retrieveLayers(refresh.out.mass, cache.length - 1, visualRows, budget, t.numKvHeads, { question: layers, weight: b.refreshBlend });
        const t1 = performance.now();
        cache.select(subsets(again));
        gather.push(performance.now() - t1);
        rerank.push(t1 - t0);
      }
      Object.assign(row, { refreshEvery: N, massMs: refresh.ms, rerankMs: median(rerank), gatherMs: median(gather) });
      row.msPerToken = ((N - 1) * viewMs + refresh.ms + row.rerankMs + row.gatherMs) / N;
      row.attended = ((N - 1) * attended + 1) / N;
    } else row.msPerToken = viewMs;
    rows.push(row);
    process.stderr.write(`${r.name}: ${row.msPerToken.toFixed(1)} ms/token on ${workload.name} (dense at the start ${denseMs.toFixed(1)})\n`);
  }
  const denseLast = await step(dense.stepper, cache);
  denseMs = median([...denseFirst.all, ...denseLast.all]);
  for (const row of rows) {
    if (!row.viewMs) row.msPerToken = denseMs;
    row.speedUp = denseMs / row.msPerToken;
  }
  await dense.session.release();
  await massDecoder.session.release();
  return {
    model: modelName,
    workload: workload.name,
    visualTokens: visual,
    cachedTokens: past,
    layers: t.numLayers,
    demoLayers: demo.layers,
    steps,
    threads: THREADS ?? 'default',
    denseMs,
    denseFirstMs: denseFirst.ms,
    denseLastMs: denseLast.ms,
    questionMassMs: mass.ms,
    rows,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Per-layer budgets of a `from.length`-layer model as shares for an `layers`-layer one, by depth: bench layer l
 * covers demo layers [l·D/L, (l+1)·D/L) and takes their shares' mean weighted by overlap (24 over 4: six bench
 * layers per demo layer, each at its share), a count as its share of the demo image's `tokens`. The mean share
 * over layers is the demo's.
 */
function perLayerShares(from, tokens, layers) {
  const D = from.length;
  const shares = from.map((x) => ('count' in x ? x.count / tokens : x.ratio));
  return Array.from({ length: layers }, (_, l) => {
    const [a, b] = [(l * D) / layers, ((l + 1) * D) / layers];
    let sum = 0;
    for (let d = Math.floor(a); d < Math.min(D, Math.ceil(b)); d++) sum += shares[d] * (Math.min(b, d + 1) - Math.max(a, d));
    return { ratio: sum / (b - a) };
  });
}

function refreshMarkdown(report) {
  const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}`);
  const dense = report.results.find((r) => r.policy.method === 'dense');
  const w = report.workload;
  const head =
    '| policy | visual tokens attended (mean over steps) | caption cells | vs dense (points) | caption recall | decode ms/token | decode vs dense |' +
    ` ${w.workload}: visual attended | ${w.workload}: decode ms/token | ${w.workload}: speed-up vs dense |\n` +
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  const rows = report.results
    .map((r, i) => {
      const delta = dense ? `${r.cellAccuracy >= dense.cellAccuracy ? '+' : ''}${(100 * (r.cellAccuracy - dense.cellAccuracy)).toFixed(1)}` : '—';
      const cost = r.decodeMsPerToken && dense?.decodeMsPerToken ? `${(r.decodeMsPerToken / dense.decodeMsPerToken).toFixed(2)}×` : '—';
      const b = w.rows[i];
      return (
        `| ${r.name} | ${pct(r.attended)}% | ${pct(r.cellAccuracy)} | ${delta} | ${pct(r.retrievalRecall)} | ${r.decodeMsPerToken?.toFixed(2) ?? '—'} | ${cost} |` +
        ` ${pct(b.attended)}% | ${b.msPerToken.toFixed(1)} | ${b.speedUp.toFixed(2)}× |`
      );
    })
    .join('\n');
  const refresh = w.rows.find((b) => b.refreshEvery);
  return (
    `Captions ("${CAPTION_PROMPT}", up to 96 tokens) of ${report.results[0]?.images ?? 0} held-out images, model ${report.model}, every token kept at prefill. ` +
    `Visual tokens attended: the share of the retained visual tokens a decode step attended, averaged over layers and steps (a refresh step attends them all) and then over captions; ` +
    `caption recall: the dense twin's attention mass on what each step attended (1 on a refresh step), layers averaged; decode ms/token: decode time over decoded tokens, ` +
    `the refresh steps' re-ranking and view rebuilding included (a 64-token image on a 4-layer model: per-call overhead, not attention, sets this column).\n\n` +
    `${w.workload} columns: the same policies' decode at \`npm run bench\`'s scale, measured in the same run — its ${w.model === 'qwen05b' ? 'qwen2-0.5b text model (int4, 24 layers)' : 'qwen2-0.5b attention shapes (2 layers, fp32: a quick run)'} ` +
    `over a cache of ${w.cachedTokens} rows (${w.visualTokens} visual tokens of the ${w.workload} workload and 48 text rows, random values), one decode step at a time on the runtime's DecoderStepper ` +
    `(no worker messages), ${w.threads} thread(s), medians of ${w.steps} step(s) after a warm-up; dense ${w.denseMs.toFixed(1)} ms/token (timed before the policies, ${w.denseFirstMs.toFixed(1)}, and after, ${w.denseLastMs.toFixed(1)}: the median of both). ` +
    `Per-layer budgets map onto the ${w.layers} layers by depth (layer l takes the mean share of demo layers l · ${w.demoLayers} / ${w.layers} to (l + 1) · ${w.demoLayers} / ${w.layers}), the same mean share. ` +
    `A refresh every N costs N − 1 view steps, one dense step through the attention-mass graph and the re-rank and view gather, spread over N tokens` +
    (refresh
      ? ` (every ${refresh.refreshEvery}: mass step ${refresh.massMs.toFixed(1)} ms, re-rank ${refresh.rerankMs.toFixed(1)} ms, gather ${refresh.gatherMs.toFixed(1)} ms, view step ${refresh.viewMs.toFixed(1)} ms)`
      : '') +
    `:\n\n${head}${rows}\n`
  );
}

async function accuracyTable(model, conversations, media, header) {
  const results = [];
  for (const [name, policy, budget] of methods(model.spec.text.numLayers)) {
    const perTurn = Array.from({ length: 5 }, () => ({ correct: 0, total: 0 }));
    const perKind = {};
    const recall = [];
    const started = performance.now();
    for (const [i, c] of conversations.entries()) {
      const chat = model.chat({ policy, maxNewTokens: 8, fidelity: policy.method === 'sparsevila' });
      for (const [t, turn] of c.turns.entries()) {
        const answer = await chat.ask({ images: t === 0 ? media[i] : [], text: turn.question });
        const ok = isCorrect(answer.text, turn.answer);
        perTurn[t].total++;
        perTurn[t].correct += Number(ok);
        (perKind[turn.kind] ??= { correct: 0, total: 0 }).total++;
        perKind[turn.kind].correct += Number(ok);
        const r = answer.fidelity?.retrievalRecall;
        if (r) recall.push(mean(r));
      }
      await chat.close();
    }
    // Captions: ~55 tokens each, so the decode steps (where SparseVILA retrieves) write nearly all of the answer,
    // where a question's one-word answer comes from the prefill.
    const caption = await captions(model, policy, captionSet(conversations, media));
    const all = perTurn.reduce((a, b) => ({ correct: a.correct + b.correct, total: a.total + b.total }), { correct: 0, total: 0 });
    results.push({
      name,
      policy,
      budget,
      accuracy: all.correct / all.total,
      perTurn: perTurn.map((p) => (p.total ? { accuracy: p.correct / p.total, n: p.total } : null)),
      perKind: Object.fromEntries(Object.entries(perKind).map(([k, p]) => [k, { accuracy: p.correct / p.total, n: p.total }])),
      // Per answer that ran a decode step after its first token (the first comes from the prefill): the layer mean.
      retrievalRecall: recall.length ? mean(recall) : null,
      recallAnswers: recall.length,
      caption: { images: caption.images, cellAccuracy: caption.cellAccuracy, retrievalRecall: caption.retrievalRecall },
      seconds: (performance.now() - started) / 1000,
    });
    process.stderr.write(`${name}: ${(100 * results.at(-1).accuracy).toFixed(1)}% (${results.at(-1).seconds.toFixed(0)} s)\n`);
  }

  const report = {
    ...header,
    conversations: conversations.length,
    turns: conversations.reduce((n, c) => n + c.turns.length, 0),
    results,
  };
  fs.writeFileSync(path.join(OUT, 'fidelity.json'), JSON.stringify(report, null, 2));
  const md = markdown(report);
  fs.writeFileSync(path.join(OUT, 'fidelity.md'), md);
  const chart = plot(report);
  fs.writeFileSync(path.join(OUT, 'fidelity.svg'), chart);
  doc.write('fidelity', `${md}\n![Accuracy per turn per method](${doc.companion('fidelity.svg')})\n`, { 'fidelity.svg': chart });
  process.stdout.write(md);
}

function markdown(report) {
  const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}`);
  const head = `| method | visual tokens attended | all turns | ${[1, 2, 3, 4, 5].map((t) => `turn ${t}`).join(' | ')} | retrieval recall | caption cells | caption recall |\n| --- | ---: | ---: | ${'---: | '.repeat(7)}---: |\n`;
  const rows = report.results
    .map(
      (r) =>
        `| ${r.name} | ${pct(r.budget)}% | ${pct(r.accuracy)} | ${r.perTurn.map((p) => (p ? `${pct(p.accuracy)} (n=${p.n})` : '—')).join(' | ')} | ${pct(r.retrievalRecall)} | ${pct(r.caption.cellAccuracy)} | ${pct(r.caption.retrievalRecall)} |`,
    )
    .join('\n');
  const images = report.results[0]?.caption.images ?? 0;
  return `Accuracy (exact match, %) on ${report.conversations} held-out conversations (${report.turns} turns) of the synthetic world, model ${report.model}; caption cells: grid cells described right in "${CAPTION_PROMPT}" answers on ${images} of its images; retrieval recall: the share of the dense twin's attention mass over visual tokens that falls on the tokens SparseVILA's decode step attended, over the answers (or captions) that ran a decode step after their first token:\n\n${head}${rows}\n`;
}

/** Accuracy per turn per method, as a small self-contained SVG line chart. */
function plot(report) {
  const W = 640,
    H = 360,
    L = 50,
    B = 40,
    T = 20,
    R = 260;
  const x = (t) => L + ((t - 1) / 4) * (W - L - R);
  const y = (a) => T + (1 - a) * (H - T - B);
  const palette = ['#222', '#1f77b4', '#2ca02c', '#17becf', '#aec7e8', '#d62728', '#ff9896', '#9467bd', '#8c564b', '#ff7f0e', '#bcbd22'];
  const lines = report.results.map((r, i) => {
    const pts = r.perTurn
      .map((p, t) => (p ? `${x(t + 1)},${y(p.accuracy)}` : null))
      .filter(Boolean)
      .join(' ');
    return (
      `<polyline fill="none" stroke="${palette[i % palette.length]}" stroke-width="2" points="${pts}"/>` +
      `<text x="${W - R + 10}" y="${T + 16 * i + 10}" font-size="11" fill="${palette[i % palette.length]}">${r.name}</text>`
    );
  });
  const axes =
    [0, 0.25, 0.5, 0.75, 1]
      .map(
        (a) =>
          `<text x="${L - 8}" y="${y(a) + 4}" font-size="10" text-anchor="end">${a * 100}%</text><line x1="${L}" x2="${W - R}" y1="${y(a)}" y2="${y(a)}" stroke="#eee"/>`,
      )
      .join('') + [1, 2, 3, 4, 5].map((t) => `<text x="${x(t)}" y="${H - B + 16}" font-size="10" text-anchor="middle">turn ${t}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${axes}${lines.join('')}</svg>\n`;
}

await main();
