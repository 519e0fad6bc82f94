#!/usr/bin/env node
/**
 * Tunes SparseVILA on the demo model's three held-out workloads — image questions, video questions, captions —
 * and tabulates each choice: the policy, its fidelity and score on the held-out conversations, and its cost
 * against dense. The objective is kv-bytes (the KV-cache bytes a decode step reads: the same on any machine,
 * where this model's timings are within the noise of a shared CPU); the e2e ratio beside it is measured.
 *
 * Usage: node scripts/bench-tune.mjs [--quick] [--model DIR] [--count N] [--out DIR] [--threads N] [--floor F] [--doc FILE | --no-doc]
 *   --quick    8 candidates, 12 conversations a workload (CI)
 * Writes bench-results/tune-<workload>/ (each tune's log, policy and report) and bench-results/tune.md, and
 * replaces the "tune" section of docs/tuning.md, the workloads' Pareto charts beside it (a --quick run only with
 * --doc FILE). Needs `npm run build` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as engine from 'sparsevila-ts';
import { benchDoc, DOC_OPTIONS } from './bench-doc.mjs';
import { demoBenchArgs, REPO } from './heldout.mjs';

const { args, model: MODEL, out: OUT, threads: THREADS } = demoBenchArgs({ ...DOC_OPTIONS, floor: { type: 'string' } });
const QUICK = args.quick;
const doc = benchDoc({ ...args, doc: args.doc ?? (QUICK ? undefined : path.join(REPO, 'docs', 'tuning.md')) });
const FLOOR = args.floor ?? 'agreement=0.95';
/** Conversations per workload: captions decode ~55 tokens each, questions one or two. */
const COUNTS = QUICK ? { 'image-questions': 12, 'video-questions': 12, captions: 12 } : { 'image-questions': 64, 'video-questions': 32, captions: 32 };

async function main() {
  const model = await engine.loadModel(MODEL, { threads: THREADS });
  const rows = [];
  for (const name of engine.DEMO_WORKLOADS) {
    const count = args.count ? Number(args.count) : COUNTS[name];
    const workload = await engine.demoWorkload(`demo:${name}`, MODEL, count, model.spec.vision.imageSize);
    const out = path.join(OUT, `tune-${name}`);
    // A benchmark measures afresh: a log left by an earlier run (perhaps of other code) is not resumed.
    fs.rmSync(path.join(out, 'trials.jsonl'), { force: true });
    const started = performance.now();
    const r = await engine.tune(model, workload, { objective: 'kv-bytes', floor: FLOOR, candidates: QUICK ? 8 : 16, out, seed: 0 });
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(`${name}: ${r.label} (${seconds.toFixed(0)} s)\n`);
    rows.push({ name, result: r, seconds, svg: fs.readFileSync(path.join(out, 'pareto.svg'), 'utf8') });
  }
  await model.close();
  const md = markdown(rows);
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'tune.md'), md);
  const charts = Object.fromEntries(rows.map((r) => [`${r.name}.svg`, r.svg]));
  const links = rows.map((r) => `![${r.name}: kv-bytes cost ratio against token agreement](${doc.companion(`${r.name}.svg`)})`).join('\n');
  doc.write('tune', `${md}\n${links}\n`, charts);
  process.stdout.write(md);
}

function markdown(rows) {
  const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}%`);
  const head =
    `SparseVILA tuned on the demo model (${path.relative(REPO, MODEL)}), objective kv-bytes, floor ${FLOOR} (token agreement with the dense twin), ` +
    `${rows[0]?.result.candidates.length ?? 0} candidates a workload, a quarter of each workload's conversations held out. Held-out numbers are the ` +
    `choice's on conversations the search never ran; score: exact-match accuracy (questions) or grid cells right (captions), dense beside it.\n\n` +
    '| workload | chosen policy | confirmed | held-out conversations | token agreement [95% lower] | mean KL | score (dense) | kv-bytes ratio | e2e ratio (measured) | trials | minutes |\n' +
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  return (
    head +
    rows
      .map(({ name, result: r, seconds }) => {
        const h = r.heldOut;
        const e2e = h.choice.cost.e2e / h.dense.cost.e2e;
        return (
          `| ${name} | ${r.label} | ${r.confirmed ? 'yes' : 'no'} | ${r.split.heldOut.length} | ${pct(h.choice.agreement)} [${pct(h.choice.agreementLower)}] | ` +
          `${h.choice.meanKl.toPrecision(3)} | ${pct(h.choice.accuracy)} (${pct(h.dense.accuracy)}) | ${h.costRatio.toFixed(3)} | ${e2e.toFixed(2)} | ` +
          `${r.trials.run + r.trials.resumed} | ${(seconds / 60).toFixed(1)} |`
        );
      })
      .join('\n') +
    '\n'
  );
}

await main();
