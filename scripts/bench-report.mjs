/**
 * The report of `npm run bench` (scripts/bench.mjs): speed-up ratios, the decode memory-bandwidth bound, the
 * paper's targets on the longest video workload, the markdown tables and an SVG chart — all computed from the
 * JSON result, so `--report-only` can re-render them.
 */
import { fmt, fmtMs, millions, mb } from './bench-common.mjs';
import { llamaDenseTable } from './bench-llama-report.mjs';

/** The paper's headline speed-ups (arXiv 2510.17777, long-context video), and the decode bandwidth target. */
export const TARGETS = { prefill: 4.0, decode: 2.5, endToEnd: 2.6, boundFactor: 1.5 };

const SPARSE = ['sparsevila-paper', 'sparsevila-fidelity'];
/** The answer length of the derived end-to-end figure (decode-heavy video answers). */
const LONG_ANSWER = 512;

/** dense / sparse of the turn-1 medians (> 1: sparse is faster). */
export function ratios(model, workload, policy, turn = 0) {
  const d = model.results.find((r) => r.workload === workload && r.policy === 'dense')?.turns[turn];
  const s = model.results.find((r) => r.workload === workload && r.policy === policy)?.turns[turn];
  if (!d || !s) return undefined;
  const q = (a, b) => (a > 0 && b > 0 ? a / b : undefined);
  return {
    llmPrefill: q(d.llmPrefillMs, s.llmPrefillMs),
    prefill: q(d.prefillMs, s.prefillMs),
    ttft: q(d.ttftMs, s.ttftMs),
    decode: q(d.decodeMsPerToken, s.decodeMsPerToken),
    endToEnd: q(d.wallMs, s.wallMs),
  };
}

/** The read bandwidth the bound uses: the fastest read measured (ORT ReduceSum, one-thread or all-core JS sum), GB/s. */
export function boundBandwidth(bw) {
  return bw ? Math.max(bw.ortReduceSumGBs ?? 0, bw.jsSumGBs ?? 0, bw.jsParallelSumGBs ?? 0) : undefined;
}

/**
 * Bytes one decode step reads: the decoder's weights (all of them, every step), one embedding row, `kvRows` rows of
 * keys and values in every layer (`kvElementBytes` each: 4 for our fp32 cache, 2 for llama.cpp's f16), and the logits
 * it writes.
 */
export function decodeStepBytes(t, { weightBytes, kvRows, kvElementBytes = 4 }) {
  const kvBytes = t.numLayers * 2 * t.numKvHeads * t.headDim * kvElementBytes * kvRows;
  return { kvRows, kvBytes, weightBytes, bytes: weightBytes + kvBytes + t.hiddenSize * 4 + t.vocabSize * 4 };
}

/**
 * Bytes one decode step of turn 1 reads (`decodeStepBytes`): the decoder graph's weights (int4 codes, fp32 scales,
 * norms, biases, the int4 LM head) and the fp32 KV rows it attends, the mean context over the turn's steps.
 */
export function decodeBytes(model, row) {
  const s = row.turns[0];
  const textRows = s.promptTokens - s.turnKeptTokens;
  const visualRows = row.policy === 'dense' ? s.turnKeptTokens : s.attendedVisualMean;
  return decodeStepBytes(model.text, { weightBytes: model.load.decoderWeightBytes, kvRows: textRows + visualRows + model.newTokens / 2 });
}

export function boundRows(result) {
  if (!boundBandwidth(result.bandwidth)) return [];
  return result.models.flatMap((m) =>
    m.results.map((r) => {
      // The workload's own probe, taken after its rounds; the run's first (or a given one) where it has none.
      const bandwidth = r.bandwidth ?? result.bandwidth;
      const gbs = boundBandwidth(bandwidth);
      const b = decodeBytes(m, r);
      const boundMs = b.bytes / (gbs * 1e6);
      return {
        model: m.key,
        workload: r.workload,
        policy: r.policy,
        ...b,
        bandwidth,
        gbs,
        boundMs,
        measuredMs: r.turns[0].decodeMsPerToken,
        factor: r.turns[0].decodeMsPerToken / boundMs,
      };
    }),
  );
}

/** The targets on the primary model's longest video workload (most visual tokens), per sparse policy. */
/** A model's dense row with the most visual tokens: the workload the targets (and the llama.cpp peer) are read on. */
export function longestDense(m) {
  return m.results.filter((r) => r.policy === 'dense').reduce((a, r) => (!a || r.turns[0].turnImageTokens > a.turns[0].turnImageTokens ? r : a), undefined);
}

export function targets(result) {
  const m = result.models[0];
  if (!m) return undefined;
  const longest = longestDense(m);
  if (!longest) return undefined;
  const bound = boundRows(result).find((b) => b.model === m.key && b.workload === longest.workload && b.policy === 'dense');
  const perPolicy = Object.fromEntries(SPARSE.map((p) => [p, ratios(m, longest.workload, p)]).filter(([, r]) => r));
  // The tower runs 2 of its reference layers here; scaling its time to all of them shows what a full tower does to the prefill ratio.
  const k = m.reference ? m.reference.visionLayers / m.vision.numLayers : 1;
  const fullTower = Object.fromEntries(
    SPARSE.map((p) => {
      const d = longest.turns[0];
      const s = m.results.find((r) => r.workload === longest.workload && r.policy === p)?.turns[0];
      return [p, s ? (d.visionMs * k + d.llmPrefillMs) / (s.visionMs * k + s.llmPrefillMs) : undefined];
    }),
  );
  // End-to-end for a longer answer, derived (not measured) from the medians: TTFT + (N − 1) decode steps.
  const derived = (s, n) => s.ttftMs + (n - 1) * s.decodeMsPerToken;
  const longAnswer = Object.fromEntries(
    SPARSE.map((p) => {
      const s = m.results.find((r) => r.workload === longest.workload && r.policy === p)?.turns[0];
      return [p, s ? derived(longest.turns[0], LONG_ANSWER) / derived(s, LONG_ANSWER) : undefined];
    }),
  );
  const primary = perPolicy['sparsevila-paper'];
  return {
    model: m.key,
    workload: longest.workload,
    visualTokens: longest.turns[0].turnImageTokens,
    goals: TARGETS,
    ratios: perPolicy,
    endToEndLongAnswer: { tokens: LONG_ANSWER, ...longAnswer },
    prefillWithFullTower: m.reference ? { visionLayersScaledTo: m.reference.visionLayers, ...fullTower } : undefined,
    denseDecodeBound: bound && { boundMs: bound.boundMs, measuredMs: bound.measuredMs, factor: bound.factor },
    met: primary && {
      prefill: primary.prefill >= TARGETS.prefill,
      decode: primary.decode >= TARGETS.decode,
      endToEnd: primary.endToEnd >= TARGETS.endToEnd,
      denseDecodeBound: bound ? bound.factor <= TARGETS.boundFactor : undefined,
    },
  };
}

// ----------------------------------------------------------------------------------------------- markdown

const px = (size) => `${size.width} × ${size.height}`;

/**
 * The tower and what it makes of the media: Llava's fixed tokens per image (and per frame); a Qwen2-VL tower's token
 * count per native-resolution image and per video, each workload's (`media.visualTokens`, from the model's sizing
 * rule) listed.
 */
function visionLine(v, media) {
  if (v.imageSize) return `${v.kind}, ${v.numLayers} layers × ${v.hiddenSize}, ${v.imageSize} px / ${v.patchSize} → ${v.imageTokenCount} tokens per image`;
  const full = v.fullAttentionBlocks;
  const attention =
    v.windowSize === null
      ? 'full attention in every block'
      : `full attention in block${full.length > 1 ? 's' : ''} ${full.join(', ')}, ${v.windowSize} px windows in the rest`;
  const tokens = Object.entries(media?.visualTokens ?? {})
    .map(([w, n]) => `${w}: ${n}`)
    .join(', ');
  const sizes = media ? `; images ${px(media.image)} px${media.video ? `, video frames ${px(media.video)} px` : ''}` : '';
  return (
    `qwen${v.version}-vl, ${v.numLayers} blocks × ${v.hiddenSize} (${v.numHeads} heads, MLP ${v.intermediateSize}; ${attention}), patch ${v.patchSize}, ` +
    `${v.mergeSize} × ${v.mergeSize} merged per token, native resolution${sizes} → visual tokens ${tokens}`
  );
}

const x = (r) => (r === undefined ? '–' : `${r.toFixed(2)}×`);
const policyLabel = (m, name) => m.policies?.find((p) => p.name === name)?.label ?? name;

export function markdown(result) {
  const L = [];
  const info = result.machine;
  L.push(`## SparseVILA vs dense${result.quick ? ' (quick)' : ''}`, '');
  L.push(
    `\`npm run bench${result.quick ? ':quick' : ''}\` — ${info.cpus} × ${info.cpuModel}, ${info.memoryGiB} GiB, node ${info.node}, onnxruntime-node ${info.onnxruntime}, ` +
      `commit ${info.commit ?? '?'}; ${{ cpu: 'CPU', cuda: 'CUDA', webgpu: 'WebGPU' }[result.provider ?? 'cpu']} EP, threads ${result.threads}. Every answer is exactly ${result.newTokens} tokens (minNewTokens = maxNewTokens). ` +
      `Medians over repeats (n); a workload whose dense run took over ${result.longSeconds} s is measured once.`,
    '',
  );
  for (const m of result.models) {
    const t = m.text;
    const v = m.vision;
    L.push(`### ${m.name}`, '');
    L.push(
      `Text: ${t.kind}, hidden ${t.hiddenSize}, ${t.numLayers} layers, ${t.numHeads} / ${t.numKvHeads} heads × ${t.headDim}, MLP ${t.intermediateSize}, vocab ${t.vocabSize}, ` +
        `${t.tieWordEmbeddings ? 'tied' : 'untied'} head; ${millions(m.llmParameters)} LLM parameters, ${m.precision} block ${m.blockSize} ` +
        `(decoder graph ${fmt(mb(m.load.decoderWeightBytes), 0)} MiB). Vision: ${visionLine(v, m.media)}. Scaled: ${m.scaled}. Video: ${m.videoInput}. ` +
        `Prefill chunk ${m.prefillChunk}.`,
      '',
    );
    L.push('Policies: ' + (m.policies ?? []).map((p) => `**${p.name}** = ${p.label} (${p.source})`).join('; ') + '.', '');
    L.push(
      '| workload | visual tokens into the LLM | policy | vision ms | LLM prefill ms | prefill ms | TTFT ms | decode ms/token (tok/s) | end-to-end ms | peak RSS MiB | n |',
    );
    L.push('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of m.results) {
      const s = r.turns[0];
      const visual = r.policy === 'dense' ? `${s.turnImageTokens}` : `${s.turnKeptTokens} of ${s.turnImageTokens}, decode ${fmt(s.attendedVisualMean, 0)}`;
      const flag = s.contention.length ? ' ⚠' : '';
      L.push(
        `| ${r.workload} | ${visual} | ${r.policy} | ${fmtMs(s.visionMs)} | ${fmtMs(s.llmPrefillMs)} | ${fmtMs(s.prefillMs)} | ${fmtMs(s.ttftMs)} | ` +
          `${fmtMs(s.decodeMsPerToken)} (${fmt(s.decodeTokensPerSecond, 1)}) | ${fmtMs(s.wallMs)}${flag} | ${fmt(s.peakRssMiB, 0)} | ${s.repeats} |`,
      );
    }
    L.push('');
  }
  L.push('### Speed-ups (dense ÷ sparse, turn 1)', '');
  L.push(
    '| model | workload | policy | LLM prefill | prefill (vision + LLM) | TTFT | decode | end-to-end |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const m of result.models) {
    for (const w of [...new Set(m.results.map((r) => r.workload))]) {
      for (const p of SPARSE) {
        const q = ratios(m, w, p);
        if (q) L.push(`| ${m.key} | ${w} | ${policyLabel(m, p)} | ${x(q.llmPrefill)} | ${x(q.prefill)} | ${x(q.ttft)} | ${x(q.decode)} | ${x(q.endToEnd)} |`);
      }
    }
  }
  L.push('');
  const tg = result.targets;
  if (tg) {
    const g = tg.goals;
    L.push(`### Targets (${tg.model}, ${tg.workload}: ${tg.visualTokens} visual tokens)`, '');
    L.push(
      `| target | goal | ${SPARSE.filter((p) => tg.ratios[p])
        .map((p) => policyLabel(result.models[0], p))
        .join(' | ')} |`,
      `| --- | ---: | ${SPARSE.filter((p) => tg.ratios[p])
        .map(() => '---:')
        .join(' | ')} |`,
    );
    const cells = (k, goal) =>
      SPARSE.filter((p) => tg.ratios[p])
        .map((p) => `${x(tg.ratios[p][k])} ${tg.ratios[p][k] >= goal ? '✓' : '✗'}`)
        .join(' | ');
    L.push(`| prefill speed-up (vision + LLM) | ≥ ${g.prefill}× | ${cells('prefill', g.prefill)} |`);
    L.push(`| decode speed-up | ≥ ${g.decode}× | ${cells('decode', g.decode)} |`);
    L.push(`| end-to-end speed-up (${result.newTokens} tokens) | ≥ ${g.endToEnd}× | ${cells('endToEnd', g.endToEnd)} |`);
    if (tg.denseDecodeBound) {
      const b = tg.denseDecodeBound;
      const others = SPARSE.filter((p) => tg.ratios[p])
        .slice(1)
        .map(() => ' (dense: as left) |')
        .join('');
      L.push(
        `| dense decode ÷ bandwidth bound | ≤ ${g.boundFactor}× | ${fmt(b.factor, 2)}× (${fmtMs(b.measuredMs)} vs ${fmtMs(b.boundMs)} ms) ${b.factor <= g.boundFactor ? '✓' : '✗'} |${others}`,
      );
    }
    L.push('');
    const la = tg.endToEndLongAnswer;
    L.push(
      `For a ${la.tokens}-token answer (TTFT + ${la.tokens - 1} decode steps, derived from the medians above, not measured) the end-to-end speed-up would be ` +
        SPARSE.filter((p) => la[p])
          .map((p) => `${x(la[p])} (${p})`)
          .join(', ') +
        '.',
      '',
    );
    if (tg.prefillWithFullTower) {
      const f = tg.prefillWithFullTower;
      L.push(
        `With the tower's time scaled to all ${f.visionLayersScaledTo} layers (extrapolated, not measured) the prefill speed-up would be ` +
          SPARSE.filter((p) => f[p])
            .map((p) => `${x(f[p])} (${p})`)
            .join(', ') +
          ': pruning happens after the tower, which every policy pays in full.',
        '',
      );
    }
  }
  const bw = result.bandwidth;
  const rows = boundRows(result);
  if (bw && rows.length) {
    L.push('### Decode against memory bandwidth', '');
    L.push(
      (bw.given
        ? `Bandwidth given (--bandwidth-gbps), not measured: `
        : `Bandwidth (${bw.bufferMiB} MiB buffer, median of ${bw.repeats}; scripts/bench-bandwidth.mjs in a child process): at the start of the run ORT ReduceSum ` +
          `${fmt(bw.ortReduceSumGBs, 1)} GB/s, one-thread JS sum ${fmt(bw.jsSumGBs, 1)} GB/s, ${bw.parallelThreads}-thread JS sum ${fmt(bw.jsParallelSumGBs, 1)} GB/s, ` +
          `memcpy ${fmt(bw.memcpyGBs, 1)} GB/s (read + write), and again after each workload's rounds (the table's column: the machine is shared and its ` +
          `bandwidth moves); a bound uses the fastest of the three reads. `) +
        `Bytes per step = the decoder graph (int4 codes + fp32 scales + ` +
        'norms, biases, int4 LM head) + one embedding row + fp32 K and V of the attended rows over every layer (mean context of the turn) + the logits.',
      '',
    );
    L.push(
      '| model | workload | policy | bandwidth GB/s | KV rows read | weights MiB | KV MiB | bound ms | measured ms/token | measured ÷ bound |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const b of rows) {
      L.push(
        `| ${b.model} | ${b.workload} | ${b.policy} | ${fmt(b.gbs, 1)}${b.bandwidth?.contention ? ' ⚠' : ''} | ${fmt(b.kvRows, 0)} | ${fmt(mb(b.weightBytes), 0)} | ${fmt(mb(b.kvBytes), 0)} | ${fmtMs(b.boundMs)} | ${fmtMs(b.measuredMs)} | ${fmt(b.factor, 2)}× |`,
      );
    }
    L.push('');
  }
  const peer = result.peer;
  L.push('### Peer dense engine', '');
  if (!peer || peer.skipped) L.push(`Not run: ${peer?.skipped ?? 'no result'}.`, '');
  else {
    L.push(
      `${peer.engine}, torch ${peer.torch}, ${peer.threads} threads: one decode step (batch 1) over a cache of the dense turn's context; median of up to ${peer.steps} steps after ${peer.warmup} (at least 3 within 30 s per context).`,
      '',
    );
    L.push(
      '| model | context | PyTorch dtype | PyTorch ms/token (tok/s) | weights + KV read MiB | this engine, int4 dense ms/token (tok/s) |',
      '| --- | ---: | --- | ---: | ---: | ---: |',
    );
    for (const p of peer.results) {
      const m = result.models.find((mm) => mm.key === p.shape);
      const ours = m?.results.find((r) => r.policy === 'dense' && r.turns[0].promptTokens === p.context)?.turns[0];
      L.push(
        `| ${p.shape} | ${p.context} | ${p.dtype} | ${fmtMs(p.msPerToken)} (${fmt(p.tokensPerSecond, 1)}) | ${fmt(mb(p.weightBytes + p.kvBytes), 0)} | ` +
          `${ours ? `${fmtMs(ours.decodeMsPerToken)} (${fmt(ours.decodeTokensPerSecond, 1)})` : '–'} |`,
      );
    }
    L.push('');
  }
  L.push(...llamaDenseTable(result));
  L.push('### Follow-up turn (text only, over the retained cache)', '');
  L.push('| model | workload | policy | cached tokens | prefill ms | decode ms/token | end-to-end ms |', '| --- | --- | --- | ---: | ---: | ---: | ---: |');
  for (const m of result.models) {
    for (const r of m.results) {
      const s = r.turns[1];
      L.push(`| ${m.key} | ${r.workload} | ${r.policy} | ${s.cachedTokens} | ${fmtMs(s.llmPrefillMs)} | ${fmtMs(s.decodeMsPerToken)} | ${fmtMs(s.wallMs)} |`);
    }
  }
  L.push('');
  L.push('Notes:', '');
  L.push(
    '- vision = tower + projector (+ salience), the same work under every policy; prefill = vision + LLM prefill; TTFT = from the start of the turn ' +
      '(image or video decode included) to the first token; decode = median wall interval between streamed tokens; end-to-end = wall time of the turn; ' +
      "peak RSS = VmHWM of the process (worker included) during the turn, ORT's arena from earlier runs included.",
  );
  for (const m of result.models) {
    const noted = m.results.filter((r) => r.note).map((r) => `${r.workload} ${r.policy}`);
    if (noted.length) L.push(`- ${m.key}: ${[...new Set(m.results.filter((r) => r.note).map((r) => `${r.workload}: ${r.note}`))].join('; ')}`);
    const noisy = m.results.filter((r) => r.turns[0].contention.length).map((r) => `${r.workload} ${r.policy} (${r.turns[0].contention.join(', ')})`);
    if (noisy.length) L.push(`- ${m.key}: **shared machine** (⚠) — other processes took CPU during: ${noisy.join('; ')}`);
    const retried = m.results.filter((r) => r.attempts.some((a) => a > 1)).map((r) => `${r.workload} ${r.policy}`);
    if (retried.length) L.push(`- ${m.key}: repeats run again because they were disturbed (least disturbed kept): ${retried.join(', ')}`);
    for (const f of m.failures ?? []) L.push(`- ${m.key}: **${f.workload} failed**: ${f.error.split('\n')[0]}`);
    const ck = m.checkpoint;
    const g = Object.entries(m.load.graphs)
      .map(([k, v]) => `${k} ${v.cached ? 'cached' : `${fmt(v.seconds, 1)} s`}`)
      .join(', ');
    L.push(
      `- ${m.key}: checkpoint ${ck.dir} (${millions(ck.parameters)} parameters, written in ${fmt(ck.writeSeconds, 0)} s${ck.cached ? ', reused' : ''}); ` +
        `load ${fmt(m.load.seconds, 1)} s (${g}; ${fmt(mb(m.load.graphBytes), 0)} MiB of graphs), RSS once loaded ${fmt(m.load.rssAfterLoadMiB, 0)} MiB`,
    );
  }
  for (const f of result.failures ?? []) L.push(`- **bench part failed**: ${f} (its results up to the failure are above)`);
  L.push(`- total ${fmt(result.seconds / 60, 1)} min; JSON: bench-results/bench.json, chart: bench-results/bench.svg`, '');
  return L.join('\n');
}

// -------------------------------------------------------------------------------------------------- chart

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * Per model, two panels: the speed-ups per workload (prefill, decode, end-to-end for each sparse policy, with the
 * paper's targets as dashed lines), and each policy's turn split into media + vision / LLM prefill / other / decode,
 * as a share of the dense turn's end-to-end time.
 */
export function svg(result) {
  const PW = 460,
    PH = 240,
    M = { l: 44, t: 34, b: 56, r: 12 };
  const measures = [
    ['prefill', '#1f77b4', TARGETS.prefill],
    ['decode', '#2ca02c', TARGETS.decode],
    ['endToEnd', '#d62728', TARGETS.endToEnd],
  ];
  const parts = [
    ['media + vision', '#9467bd', (s) => s.imageMs + s.visionMs],
    ['LLM prefill', '#1f77b4', (s) => s.llmPrefillMs],
    ['other', '#bbbbbb', (s) => Math.max(0, s.otherMs)],
    ['decode', '#2ca02c', (s) => Math.max(0, s.wallMs - s.ttftMs)],
  ];
  const out = [];
  result.models.forEach((m, mi) => {
    const y0 = mi * (PH + 20);
    const workloads = [...new Set(m.results.map((r) => r.workload))];
    // Panel 1: speed-ups.
    const all = workloads.flatMap((w) => SPARSE.flatMap((p) => Object.values(ratios(m, w, p) ?? {}))).filter((v) => v !== undefined);
    const top = Math.ceil(Math.max(4.5, ...all) + 0.5);
    const gw = (PW - M.l - M.r) / workloads.length;
    const bw = gw / (SPARSE.length * measures.length + 2);
    const ys = (v) => y0 + M.t + (1 - v / top) * (PH - M.t - M.b);
    out.push(`<text x="${M.l}" y="${y0 + 16}" font-size="13" font-weight="bold">${esc(m.name)}: speed-up over dense (turn 1)</text>`);
    for (let v = 0; v <= top; v++)
      out.push(
        `<line x1="${M.l}" x2="${PW - M.r}" y1="${ys(v)}" y2="${ys(v)}" stroke="#eee"/><text x="${M.l - 6}" y="${ys(v) + 4}" font-size="10" text-anchor="end">${v}×</text>`,
      );
    workloads.forEach((w, wi) => {
      SPARSE.forEach((p, pi) => {
        const q = ratios(m, w, p);
        measures.forEach(([k, color], ki) => {
          const v = q?.[k];
          if (v === undefined) return;
          const xx = M.l + wi * gw + bw * (1 + pi * measures.length + ki);
          out.push(
            `<rect x="${xx}" y="${ys(v)}" width="${bw - 1}" height="${ys(0) - ys(v)}" fill="${color}" fill-opacity="${pi ? 0.45 : 0.9}"><title>${esc(`${w}, ${p}, ${k}: ${v.toFixed(2)}×`)}</title></rect>`,
          );
        });
      });
      out.push(`<text x="${M.l + wi * gw + gw / 2}" y="${ys(0) + 14}" font-size="10" text-anchor="middle">${esc(w)}</text>`);
    });
    for (const [k, color, goal] of measures) {
      out.push(
        `<line x1="${M.l}" x2="${PW - M.r}" y1="${ys(goal)}" y2="${ys(goal)}" stroke="${color}" stroke-dasharray="4 3"><title>target ${k} ${goal}×</title></line>`,
      );
    }
    measures.forEach(([k, c], i) =>
      out.push(
        `<rect x="${M.l + i * 80}" y="${y0 + PH - 26}" width="9" height="9" fill="${c}"/>` +
          `<text x="${M.l + 12 + i * 80}" y="${y0 + PH - 18}" font-size="10">${k === 'endToEnd' ? 'end-to-end' : k}</text>`,
      ),
    );
    out.push(
      `<text x="${M.l}" y="${y0 + PH - 5}" font-size="10">solid: paper budgets · pale: fidelity budgets · dashed: the paper's targets (${TARGETS.prefill}× / ${TARGETS.decode}× / ${TARGETS.endToEnd}×)</text>`,
    );
    // Panel 2: turn split, share of dense end-to-end.
    const ox = PW + 20;
    const pols = ['dense', ...SPARSE];
    const gw2 = (PW - M.l - M.r) / workloads.length;
    const bw2 = gw2 / (pols.length + 1);
    const shares = workloads.flatMap((w) => {
      const dense = m.results.find((r) => r.workload === w && r.policy === 'dense')?.turns[0];
      return dense ? m.results.filter((r) => r.workload === w).map((r) => parts.reduce((a, [, , f]) => a + f(r.turns[0]), 0) / dense.wallMs) : [];
    });
    const top2 = Math.max(1.05, ...shares) * 1.02;
    const ys2 = (v) => y0 + M.t + (1 - v / top2) * (PH - M.t - M.b);
    out.push(`<text x="${ox + M.l}" y="${y0 + 16}" font-size="13" font-weight="bold">turn 1 time, share of dense end-to-end (dense · paper · fidelity)</text>`);
    for (const v of [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2].filter((v) => v <= top2))
      out.push(
        `<line x1="${ox + M.l}" x2="${ox + PW - M.r}" y1="${ys2(v)}" y2="${ys2(v)}" stroke="#eee"/><text x="${ox + M.l - 6}" y="${ys2(v) + 4}" font-size="10" text-anchor="end">${v * 100}%</text>`,
      );
    workloads.forEach((w, wi) => {
      const dense = m.results.find((r) => r.workload === w && r.policy === 'dense')?.turns[0];
      if (!dense) return;
      pols.forEach((p, pi) => {
        const s = m.results.find((r) => r.workload === w && r.policy === p)?.turns[0];
        if (!s) return;
        let acc = 0;
        const xx = ox + M.l + wi * gw2 + bw2 * (0.5 + pi);
        for (const [label, color, f] of parts) {
          const v = f(s) / dense.wallMs;
          out.push(
            `<rect x="${xx}" y="${ys2(acc + v)}" width="${bw2 - 2}" height="${Math.max(0, ys2(acc) - ys2(acc + v))}" fill="${color}"><title>${esc(`${w}, ${p}, ${label}: ${fmtMs(f(s))} ms`)}</title></rect>`,
          );
          acc += v;
        }
      });
      out.push(`<text x="${ox + M.l + wi * gw2 + gw2 / 2}" y="${ys2(0) + 14}" font-size="10" text-anchor="middle">${esc(w)}</text>`);
    });
    parts.forEach(([label, c], i) =>
      out.push(
        `<rect x="${ox + M.l + i * 105}" y="${y0 + PH - 26}" width="9" height="9" fill="${c}"/><text x="${ox + M.l + 12 + i * 105}" y="${y0 + PH - 18}" font-size="10">${esc(label)}</text>`,
      ),
    );
  });
  const H = result.models.length * (PH + 20) + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * PW + 20}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${out.join('')}</svg>\n`;
}
