/**
 * The llama.cpp peer's tables (scripts/bench-llama-peer.mjs): beside our engine at each context (bench-engine.mjs),
 * and its dense run beside our dense and SparseVILA turns on a model's longest workload (bench.mjs).
 */
import { contention, fmt, fmtMs, mb } from './bench-common.mjs';

const threads = (n) => `${n} thread${n === 1 ? '' : 's'}`;

/** Ours beside llama.cpp at each context: prefill tok/s, decode ms/token, peak RSS, and ours ÷ llama.cpp for each. */
export function peerTable(llm) {
  const p = llm.peer;
  const out = ['### llama.cpp beside us', ''];
  if (!p || p.skipped) return [...out, `Not run: ${p?.skipped ?? 'no result'}.`, ''];
  const ctx = llm.contexts[0]?.peer?.context;
  out.push(
    `${p.engine}, ${threads(p.threads)}, on the same checkpoint as a Q4_0 GGUF (${p.gguf.file}, ${fmt(mb(p.gguf.bytes), p.gguf.bytes < 10 * 2 ** 20 ? 1 : 0)} MiB; scripts/gguf.mjs: every matrix ` +
      `in llama.cpp's 4-bit blocks of 32, the tied embedding/head included; norms and biases F32), fed the same token ids in batches of ` +
      `${ctx?.batchSize ?? llm.contexts[0]?.chunk} (our chunk), the same decode steps, rounds interleaved with ours. Its KV cache is f16 with flash attention ` +
      `(${ctx?.flashAttention ? 'on' : 'off'}), as llama.cpp runs by default; ours is fp32. Peak RSS: each engine's own process (VmHWM reset once its ` +
      `model is loaded; llama.cpp in a child process), model and runtime included. Ours ÷ llama.cpp: above 1 means ours prefills faster; below 1 means ` +
      `ours decodes faster and uses less memory.`,
    '',
    '| context | prefill tok/s: ours | llama.cpp | ours ÷ llama.cpp | decode ms/token: ours | llama.cpp | ours ÷ llama.cpp | peak RSS MiB: ours | llama.cpp | ours ÷ llama.cpp |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const ratio = (a, b) => `${fmt(a / b, 2)}×`;
  for (const c of llm.contexts) {
    const q = c.peer;
    const warn = (load) => (contention(load) ? ' ⚠' : '');
    if (!q) {
      // A context llama.cpp does not run here (bench-engine.mjs: 46,800, whose peer row is bench.mjs's 64-frame video).
      out.push(
        `| ${c.tokens} | ${fmt(c.prefillTokensPerSecond, 0)}${warn(c.load)} | – | – | ${fmtMs(c.decodeMsPerToken)} | – | – | ${fmt(c.peakRssMiB, 0)} | – | – |`,
      );
      continue;
    }
    out.push(
      `| ${c.tokens} | ${fmt(c.prefillTokensPerSecond, 0)}${warn(c.load)} | ${fmt(q.prefillTokensPerSecond, 0)}${warn(q.load)} (n=${q.repeats.prefill}) | ` +
        `${ratio(c.prefillTokensPerSecond, q.prefillTokensPerSecond)} | ${fmtMs(c.decodeMsPerToken)} | ${fmtMs(q.decodeMsPerToken)} (n=${q.repeats.decodeSteps}) | ` +
        `${ratio(c.decodeMsPerToken, q.decodeMsPerToken)} | ${fmt(c.peakRssMiB, 0)} | ${fmt(q.peakRssMiB, 0)} | ${ratio(c.peakRssMiB, q.peakRssMiB)} |`,
    );
  }
  out.push(
    '',
    `- llama.cpp: model load ${fmt(p.loadSeconds, 1)} s, RSS once loaded ${fmt(p.rssAfterLoadMiB, 0)} MiB (weights mmapped: resident as they are read); ` +
      `GGUF ${p.gguf.cached ? 'reused' : `written in ${fmt(p.gguf.writeSeconds, 1)} s`}. ⚠: other processes took more than 10% of the CPUs during those rounds.`,
    '',
  );
  return out;
}

/**
 * Per model the peer ran: llama.cpp dense on the longest workload's prompt length beside our dense and SparseVILA
 * turns, and how much faster each is than llama.cpp dense and than our dense, LLM alone and end to end.
 */
export function llamaDenseTable(result) {
  const runs = result.llamaPeer ?? [];
  const out = ['### llama.cpp dense beside SparseVILA', ''];
  const done = runs.filter((r) => !r.skipped);
  for (const r of runs.filter((x) => x.skipped)) out.push(`- ${r.model}: not run: ${r.skipped}`);
  if (!runs.length) out.push(`Not run: ${result.llamaPeerSkipped ?? 'no model finished'}.`);
  if (!done.length) return [...out, ''];
  if (runs.some((x) => x.skipped)) out.push('');
  const n = result.newTokens;
  out.push(
    `${done[0].engine}, ${threads(done[0].threads)}, on each model's checkpoint as a Q4_0 GGUF (scripts/gguf.mjs). node-llama-cpp takes no image ` +
      `embeddings, so llama.cpp prefills the same number of tokens as our dense turn puts into the LLM, as text ids, then decodes ` +
      `${n - 1} steps (an answer of ${n} tokens): it runs no vision tower and decodes no video, which our end-to-end times include. ` +
      `LLM = prefill + ${n - 1} decode steps (ours: LLM prefill + ${n - 1} × the median decode step). A speed-up is the other's time ÷ this row's.`,
    '',
    '| model | workload | engine, policy | tokens into the LLM | LLM prefill ms | decode ms/token | LLM ms | end-to-end ms | speed-up over llama.cpp dense: LLM | end-to-end | speed-up over our dense: end-to-end | n |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const x = (a, b) => (a && b ? `${fmt(a / b, 2)}×` : '–');
  for (const p of done) {
    const m = result.models.find((mm) => mm.key === p.model);
    const rows = m.results.filter((r) => r.workload === p.workload);
    const dense = rows.find((r) => r.policy === 'dense')?.turns[0];
    const llmMs = (t) => t.llmPrefillMs + (n - 1) * t.decodeMsPerToken;
    out.push(
      `| ${p.model} | ${p.workload} | llama.cpp dense (text ids) | ${p.promptTokens} | ${fmtMs(p.prefillMs)}${contention(p.load) ? ' ⚠' : ''} | ` +
        `${fmtMs(p.decodeMsPerToken)} | ${fmtMs(p.llmMs)} | ${fmtMs(p.llmMs)} | 1.00× | 1.00× | ${x(dense?.wallMs, p.llmMs)} | ${p.repeats} |`,
    );
    for (const r of [...rows.filter((r) => r.policy === 'dense'), ...rows.filter((r) => r.policy !== 'dense')]) {
      const t = r.turns[0];
      out.push(
        `| ${p.model} | ${p.workload} | ours, ${r.policy} | ${t.promptTokens} | ${fmtMs(t.llmPrefillMs)} | ` +
          `${fmtMs(t.decodeMsPerToken)} | ${fmtMs(llmMs(t))} | ${fmtMs(t.wallMs)} | ${x(p.llmMs, llmMs(t))} | ${x(p.llmMs, t.wallMs)} | ${x(dense?.wallMs, t.wallMs)} | ${t.repeats} |`,
      );
    }
  }
  return [...out, ''];
}
