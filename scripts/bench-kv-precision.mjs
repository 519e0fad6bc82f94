/**
 * bench:engine's KV cache precision part: decode steps of the same int4 decoder with an fp32 and an fp16 KV cache
 * (LoadOptions.kvCache), side by side at each context, each against its own bandwidth bound.
 *
 * The steps run in this process on the runtime's own pieces (KvCache, DecoderStepper), over caches filled with random
 * rows (bench-common.mjs `fillCache`: a step's time depends on how many rows it reads, not on their values), so a 47k
 * context costs seconds, not a second prefill. Steps alternate between the two caches (fp32, fp16, fp32, …): a slow
 * spell of the shared machine hits both. It runs after the engine rounds, with their worker closed, so its two
 * sessions are not in those rounds' peak RSS.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bandwidthNow, dirBytes, fillCache, fmt, fmtMs, median, ms, randomFloats, tempDir } from './bench-common.mjs';
import { boundBandwidth, decodeStepBytes } from './bench-report.mjs';

const PRECISIONS = ['fp32', 'fp16'];

/**
 * Decode ms/token with each KV precision at each of `contexts` (tokens), `steps` alternating steps each, and the
 * bandwidth probed after each context. `mods`: bench-common.mjs `longContextModules`.
 */
export async function benchKvPrecision(mods, { checkpointDir, contexts, steps, threads, quick, precision, blockSize }) {
  const cacheDir = tempDir('kv-precision-graphs');
  try {
    const checkpoint = mods.openCheckpoint(checkpointDir);
    const t = checkpoint.spec.text;
    const engines = [];
    for (const kvCache of PRECISIONS) {
      const options = { precision, blockSize, cacheDir, kvCache };
      const graph = mods.ensureGraph(checkpoint, 'decoder', options);
      const session = await mods.createSession(graph, { executionProvider: 'cpu', intraOpThreads: threads });
      const kvType = mods.kvTypeOf(options);
      const stepper = new mods.DecoderStepper(session, t.numLayers, t.numKvHeads, t.headDim, t.hiddenSize, 1, false, kvType);
      engines.push({ kvCache, kvType, session, stepper, weightBytes: dirBytes(path.dirname(graph)) });
    }
    checkpoint.close();
    const embeds = randomFloats(t.hiddenSize, 3);
    const rows = [];
    for (const tokens of contexts) {
      const caches = engines.map((e) => {
        const cache = new mods.KvCache({ layers: t.numLayers, kvHeads: t.numKvHeads, headDim: t.headDim, type: e.kvType });
        cache.reserve(tokens + steps + 4);
        fillCache(cache, tokens, t, mods);
        return cache;
      });
      const times = engines.map(() => []);
      // Two warm-up steps each, then `steps` alternating.
      for (let i = 0; i < steps + 2; i++) {
        for (const [k, e] of engines.entries()) {
          const t0 = ms();
          await e.stepper.run(caches[k], { embeds, positions: [tokens + i] });
          if (i >= 2) times[k].push(ms() - t0);
        }
      }
      const bandwidth = bandwidthNow({ quick, threads });
      rows.push({
        tokens,
        steps,
        bandwidth,
        precisions: engines.map((e, k) => ({ kvCache: e.kvCache, weightBytes: e.weightBytes, msPerToken: median(times[k]), samples: times[k] })),
      });
      console.error(
        `  kv precision at ${tokens}: ${rows
          .at(-1)
          .precisions.map((p) => `${p.kvCache} ${fmtMs(p.msPerToken)} ms`)
          .join(', ')}`,
      );
    }
    await Promise.all(engines.map((e) => e.session.release()));
    return { text: t, contexts: rows };
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** The report's table: each precision's step, their ratio, and each against its bound (its graph + its K and V bytes). */
export function kvPrecisionTable(kv) {
  const out = [
    '### KV cache precision',
    '',
    `Decode steps of the same int4 decoder with an fp32 and an fp16 KV cache (\`kvCache\`), in this process over caches of random rows ` +
      `(a step's time depends on how many rows it reads, not their values), ${kv.contexts[0]?.steps} steps each, alternating. The fp16 graph ` +
      `casts each layer's past to float32 where its attention reads it. Bound: the decoder graph + K and V of every layer at the cache's ` +
      `precision + the logits, at the bandwidth probed after that context (the fastest of its three reads).`,
    '',
    '| context | bandwidth GB/s | fp32 KV ms/token | fp16 KV ms/token | fp16 ÷ fp32 | bound ms: fp32 / fp16 | measured ÷ bound: fp32 / fp16 |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of kv.contexts) {
    const gbs = boundBandwidth(c.bandwidth);
    const [f32, f16] = c.precisions;
    const bound = (p) =>
      decodeStepBytes(kv.text, { weightBytes: p.weightBytes, kvRows: c.tokens + (c.steps + 3) / 2, kvElementBytes: p.kvCache === 'fp16' ? 2 : 4 }).bytes /
      (gbs * 1e6);
    out.push(
      `| ${c.tokens} | ${fmt(gbs, 1)}${c.bandwidth.contention ? ' ⚠' : ''} | ${fmtMs(f32.msPerToken)} | ${fmtMs(f16.msPerToken)} | ` +
        `${fmt(f16.msPerToken / f32.msPerToken, 2)}× | ${fmtMs(bound(f32))} / ${fmtMs(bound(f16))} | ` +
        `${fmt(f32.msPerToken / bound(f32), 2)}× / ${fmt(f16.msPerToken / bound(f16), 2)}× |`,
    );
  }
  return [...out, ''];
}
