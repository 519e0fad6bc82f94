/** `sparsevila demo` (what `npm start` runs): a two-turn conversation about an image on a bundled model. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel } from '../session/model.js';
import type { Answer } from '../session/chat.js';
import { validatePolicy, type SparsityPolicy } from '../sparsity/policy.js';
import { Tracer } from '../trace/tracer.js';
import type { TraceSink } from '../trace/schema.js';
import { modelOptionSpec, parseInteger, parseModelOptions, progressPrinter } from './options.js';
import { startOnFreePort, untilInterrupted } from './profile.js';

/** The bundled checkpoint (random weights; see its README). Resolved from src/ or dist/src/. */
export const DEFAULT_MODEL_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../../../src/models/tiny-random-llava' : '../models/tiny-random-llava',
);

export const DEMO_HELP = `Usage: sparsevila demo [--model DIR] [--image FILE] [--port N] [--exit] [model options]

Runs a two-turn conversation about an image, dense and with SparseVILA, and prints the answers, timings,
what the sparsity kept and attended, and its agreement with a dense twin. Without --model it uses the
bundled tiny checkpoint (random weights: the pipeline is real, the answers are noise).
Both runs stream to a live profiler started in-process; its URL is printed first, and it keeps serving
after the conversation until Ctrl-C.

  --port N     profiler port (default 8765 or the next free one)
  --exit       stop after the conversation instead of serving the profiler
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...modelOptionSpec, image: { type: 'string' }, port: { type: 'string' }, exit: { type: 'boolean' } },
    strict: true,
  });
  const dir = values.model ?? DEFAULT_MODEL_DIR;
  const image = values.image ?? path.join(DEFAULT_MODEL_DIR, 'image.png');
  const { startProfiler } = await import('../../profiler-ui/server/server.js');
  const server = await startOnFreePort(values.port === undefined ? undefined : parseInteger(values.port, '--port'), (port) => startProfiler({ port }));
  console.log(`profiler: ${server.url}`);
  const sink: TraceSink = { write: (event) => server.ingest(event) };
  console.log(`model: ${dir}${values.model ? '' : ' (bundled, random weights)'}`);
  const model = await loadModel(dir, { ...parseModelOptions(values), onProgress: progressPrinter() });
  const answers = new Map<string, Answer[]>();
  try {
    const s = model.spec;
    console.log(
      `  ${s.vision.kind} tower ${s.vision.imageSize}px/${s.vision.patchSize} → ${s.imageTokenCount} image tokens; ` +
        `${s.text.kind} ${s.text.numLayers} layers, hidden ${s.text.hiddenSize}, heads ${s.text.numHeads}/${s.text.numKvHeads}`,
    );
    const turns = [
      { images: [image], text: 'What is shown in this image?' },
      { text: 'What colour is the top left corner?' },
    ];
    const policies: [string, SparsityPolicy][] = [
      ['dense', { method: 'dense' }],
      ['sparsevila (keep 50%, retrieve 25%)', validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.25 } } })],
    ];
    for (const [name, policy] of policies) {
      console.log(`\n== ${name}`);
      const chat = model.chat({ maxNewTokens: 16, policy, fidelity: policy.method !== 'dense', tracer: new Tracer([sink]) });
      answers.set(policy.method, []);
      for (const [i, turn] of turns.entries()) {
        const answer = await chat.ask(turn);
        answers.get(policy.method)!.push(answer);
        console.log(`turn ${i + 1} user: ${turn.text}${turn.images ? ` [${turn.images.length} image]` : ''}`);
        console.log(`turn ${i + 1} assistant: ${JSON.stringify(answer.text)}`);
        console.log(`  ${describeTimings(answer)}`);
        console.log(`  ${describeSparsity(answer)}`);
      }
      await chat.close();
    }
    console.log(`\n${describeSpeedups(answers.get('dense')!, answers.get('sparsevila')!)}`);
  } finally {
    await model.close();
    server.endInProcess();
  }
  console.log(`\nprofiler: ${server.url}`);
  if (!values.exit) {
    console.log('serving the profiler until Ctrl-C');
    await untilInterrupted();
  }
  await server.close();
}

/** Per turn: SparseVILA's prefill, decode and end-to-end speed against dense, measured side by side. */
export function describeSpeedups(dense: Answer[], sparse: Answer[]): string {
  return dense
    .map((d, i) => {
      const s = sparse[i]!;
      const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
      const perToken = (a: Answer) => (a.timings.decodeTokensPerSecond ? 1 / a.timings.decodeTokensPerSecond : 0);
      return (
        `turn ${i + 1} speedup vs dense: prefill ${ratio(d.timings.prefillSeconds, s.timings.prefillSeconds)}, ` +
        `decode ${ratio(perToken(d), perToken(s))} per token, end to end ${ratio(d.timings.totalSeconds, s.timings.totalSeconds)}`
      );
    })
    .join('\n');
}

export function describeTimings(a: Answer): string {
  const t = a.timings;
  return (
    `${t.promptTokens} new prompt tokens (${t.cachedTokens} reused from the cache), ${t.generatedTokens} generated (${a.stopReason}); ` +
    `vision ${(t.visionSeconds * 1000).toFixed(1)} ms, prefill ${(t.prefillSeconds * 1000).toFixed(1)} ms, ` +
    `first token ${(t.firstTokenSeconds * 1000).toFixed(1)} ms, decode ${t.decodeTokensPerSecond.toFixed(0)} tokens/s`
  );
}

export function describeSparsity(a: Answer): string {
  const s = a.sparsity;
  const f = a.fidelity;
  const attended = s.attendedVisualPerLayer;
  return (
    `visual tokens: ${s.turnKeptTokens}/${s.turnImageTokens} of this turn's image tokens entered the LLM, ${s.visualTokens} retained; ` +
    `attended per decode step ${Math.min(...attended)}–${Math.max(...attended)} by layer` +
    (f ? `; vs dense: token agreement ${(f.tokenAgreement * 100).toFixed(0)}%, mean KL ${f.meanKl.toExponential(2)}` : '')
  );
}
