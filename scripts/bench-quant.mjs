#!/usr/bin/env node
/**
 * Weight precision on the trained demo model: fp32 against int4 round-to-nearest and AWQ (int4 with
 * activation-aware scales and clipping), dense, on held-out conversations of the synthetic world. Per precision:
 * exact-match accuracy, agreement with fp32's answers, the error of the last prompt position's logits against
 * fp32's (over the turns whose whole history matches fp32's, so the prompts are identical), the time to load
 * (AWQ: calibration and search included), median turn-1 prefill time and median decode tokens/s (32 tokens
 * forced on the first turn of 8 conversations).
 *
 * Usage: node scripts/bench-quant.mjs [--quick] [--model DIR] [--count N] [--block-size N] [--threads N] [--out DIR] [--doc FILE | --no-doc]
 *   --quick    12 conversations (CI)
 * Writes bench-results/quant.{json,md}, prints the markdown table, and replaces the "quant" section of
 * docs/benchmarks.md (a --quick run only with --doc FILE: scripts/bench-doc.mjs). Needs `npm run build` first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as engine from 'sparsevila-ts';
import { benchDoc, DOC_OPTIONS } from './bench-doc.mjs';
import { demoBenchArgs, heldOutConversations, isCorrect, renderMedia, REPO } from './heldout.mjs';

const { args, model: MODEL, out: OUT, threads: THREADS } = demoBenchArgs({ 'block-size': { type: 'string' }, ...DOC_OPTIONS });
const doc = benchDoc(args);
const COUNT = Number(args.count ?? (args.quick ? 12 : 200));
const BLOCK = Number(args['block-size'] ?? 32);
const PRECISIONS = ['fp32', 'int4', 'awq'];
const LABEL = { fp32: 'fp32', int4: `int4 round-to-nearest (group ${BLOCK})`, awq: `AWQ int4 (group ${BLOCK})` };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

/** Every turn of every conversation, dense, greedy: answer, correctness, prompt ids, last logits, timings. */
async function runAll(model, conversations, media) {
  const out = [];
  for (const [i, c] of conversations.entries()) {
    const chat = model.chat({ maxNewTokens: 8 });
    const turns = [];
    for (const [t, turn] of c.turns.entries()) {
      const a = await chat.ask({ images: t === 0 ? media[i] : [], text: turn.question });
      turns.push({
        kind: turn.kind,
        text: a.text,
        correct: isCorrect(a.text, turn.answer),
        ids: a.tokenIds,
        prompt: a.promptTokenIds,
        logits: a.lastPromptLogits,
        timings: a.timings,
      });
    }
    await chat.close();
    out.push(turns);
  }
  return out;
}

/**
 * Decode speed: the first turn of the first `n` conversations, made to generate exactly `tokens` tokens (the
 * world's answers are one or two tokens long).
 */
async function decodeSpeed(model, media, n, tokens) {
  const rates = [];
  for (const images of media.slice(0, n)) {
    const chat = model.chat({ maxNewTokens: tokens, minNewTokens: tokens });
    rates.push((await chat.ask({ images, text: 'Describe the picture.' })).timings.decodeTokensPerSecond);
    await chat.close();
  }
  return median(rates);
}

/** Logit error and answer agreement against the fp32 run, over turns whose whole history matches fp32's. */
function against(reference, run) {
  let maxAbs = 0,
    sumAbs = 0,
    values = 0,
    compared = 0,
    agree = 0,
    turns = 0;
  for (const [c, ref] of reference.entries()) {
    let sameHistory = true;
    for (const [t, r] of ref.entries()) {
      const q = run[c][t];
      turns++;
      agree += Number(q.text === r.text);
      sameHistory &&= q.prompt.length === r.prompt.length && q.prompt.every((id, k) => id === r.prompt[k]);
      if (!sameHistory) continue;
      compared++;
      for (let k = 0; k < r.logits.length; k++) {
        const d = Math.abs(q.logits[k] - r.logits[k]);
        maxAbs = Math.max(maxAbs, d);
        sumAbs += d;
      }
      values += r.logits.length;
      sameHistory &&= q.ids.length === r.ids.length && q.ids.every((id, k) => id === r.ids[k]);
    }
  }
  return { maxAbsLogitError: maxAbs, meanAbsLogitError: values ? sumAbs / values : 0, turnsCompared: compared, answerAgreement: agree / turns };
}

async function main() {
  const { seed, conversations } = heldOutConversations(MODEL, COUNT);
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-quant-'));
  const results = [];
  let reference;
  try {
    for (const precision of PRECISIONS) {
      const started = performance.now();
      const model = await engine.loadModel(MODEL, { precision, blockSize: BLOCK, cacheDir, threads: THREADS });
      const loadSeconds = (performance.now() - started) / 1000;
      const media = await renderMedia(conversations, model.spec.vision.imageSize);
      const run = await runAll(model, conversations, media);
      const decodeTokensPerSecond = await decodeSpeed(model, media, 8, 32);
      await model.close();
      reference ??= run;
      const flat = run.flat();
      const perKind = {};
      for (const t of flat) {
        const k = (perKind[t.kind] ??= { correct: 0, n: 0 });
        k.n++;
        k.correct += Number(t.correct);
      }
      results.push({
        precision,
        name: LABEL[precision],
        accuracy: flat.filter((t) => t.correct).length / flat.length,
        perKind: Object.fromEntries(
          Object.entries(perKind)
            .sort()
            .map(([k, v]) => [k, { accuracy: v.correct / v.n, n: v.n }]),
        ),
        ...against(reference, run),
        loadSeconds,
        medianFirstTurnPrefillSeconds: median(run.map((turns) => turns[0].timings.prefillSeconds)),
        medianDecodeTokensPerSecond: decodeTokensPerSecond,
      });
      process.stderr.write(`${LABEL[precision]}: ${(100 * results.at(-1).accuracy).toFixed(1)}% (load ${loadSeconds.toFixed(1)} s)\n`);
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  const report = {
    date: new Date().toISOString(),
    quick: args.quick,
    model: path.relative(REPO, MODEL),
    seed,
    conversations: conversations.length,
    turns: conversations.reduce((n, c) => n + c.turns.length, 0),
    blockSize: BLOCK,
    results,
  };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'quant.json'), JSON.stringify(report, null, 2));
  const md = markdown(report);
  fs.writeFileSync(path.join(OUT, 'quant.md'), md);
  doc.write('quant', md);
  process.stdout.write(md);
}

function markdown(report) {
  const f = (x, d) => (x === null ? '—' : x.toFixed(d));
  const head =
    '| LLM weights | accuracy | answers as fp32 | max \\|Δlogit\\| | mean \\|Δlogit\\| | turns compared | load (s) | turn-1 prefill (ms) | decode (tok/s) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  const rows = report.results
    .map(
      (r) =>
        `| ${r.name} | ${f(100 * r.accuracy, 1)}% | ${f(100 * r.answerAgreement, 1)}% | ${r.maxAbsLogitError.toExponential(2)} | ${r.meanAbsLogitError.toExponential(2)} | ${r.turnsCompared} | ${f(r.loadSeconds, 1)} | ${f(1000 * r.medianFirstTurnPrefillSeconds, 1)} | ${f(r.medianDecodeTokensPerSecond, 0)} |`,
    )
    .join('\n');
  return `Weight precision on ${report.conversations} held-out conversations (${report.turns} turns), dense, model ${report.model} (medians over turns; logit error against fp32 on turns with fp32's history):\n\n${head}${rows}\n`;
}

await main();
