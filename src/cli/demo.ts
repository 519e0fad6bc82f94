/**
 * `sparsevila demo` (what `npm start` runs): multi-turn conversations on the bundled model, dense and with
 * SparseVILA, streamed to an in-process profiler. A model folder may ship `examples/conversations.json`
 * (media paths relative to the folder, turns with their reference answers): the demo asks those.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EXAMPLES_FILE, readExampleConversations, type ExampleConversation } from '../checkpoint/examples.js';
import { loadModel } from '../session/model.js';
import type { Answer } from '../session/types.js';
import { policyLabel, validatePolicy, type SparsityPolicy } from '../sparsity/registry.js';
import { Tracer } from '../trace/tracer.js';
import type { TraceEvent, TraceSink } from '../trace/schema.js';
import { modelOptionSpec, parseInteger, parseModelOptions, progressPrinter } from './options.js';
import { readPolicyFile } from './policy-options.js';
import { defaultDataDir, startOnFreePort, untilInterrupted } from './profile.js';
import { familyOf } from '../families/registry.js';
import { runLongVideo, speedups } from './long-video.js';

const MODELS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../../../src/models' : '../models',
);
/** The trained demo model when present, else the random-weight checkpoint. Resolved from src/ or dist/src/. */
export const DEFAULT_MODEL_DIR = fs.existsSync(path.join(MODELS_DIR, 'sparsevila-demo', 'config.json'))
  ? path.join(MODELS_DIR, 'sparsevila-demo')
  : path.join(MODELS_DIR, 'tiny-random-llava');

/** The model folder's example conversations, or two generic turns about an image. */
function demoConversations(dir: string, image: string | undefined): ExampleConversation[] {
  if (!image && fs.existsSync(path.join(dir, EXAMPLES_FILE))) return readExampleConversations(dir);
  return [
    {
      title: 'image',
      media: [image ?? path.join(MODELS_DIR, 'tiny-random-llava', 'image.png')],
      turns: [{ question: 'What is shown in this image?' }, { question: 'What colour is the top left corner?' }],
    },
  ];
}

export const DEMO_HELP = `Usage: sparsevila demo [--model DIR] [--image FILE] [--policy-file FILE] [--port N] [--data-dir DIR] [--exit] [model options]

Runs multi-turn conversations, dense and with SparseVILA, and prints the answers, timings, what the
sparsity kept and attended, and the agreement with a dense twin. Without --model it uses the bundled demo
model and its example image and video conversations (the model folder's examples/conversations.json);
--image asks two generic questions about your image instead.
Both runs stream to a live profiler started in-process; its URL is printed first, and it keeps serving
after the conversation until Ctrl-C. The runs are written to the profiler's data dir as they stream, so
\`sparsevila profile\` shows them again after Ctrl-C.

  --port N     profiler port (default 8765 or the next free one)
  --data-dir DIR  where the runs are saved (default $SPARSEVILA_TRACES or ~/.cache/sparsevila/traces,
               as \`sparsevila profile\`)
  --exit       stop after the conversation instead of serving the profiler
  --policy-file FILE
               the sparse run's policy (JSON, e.g. a \`sparsevila tune\` policy.json) instead of SparseVILA
               keep 50% / retrieve 25%
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...modelOptionSpec,
      image: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      exit: { type: 'boolean' },
      'policy-file': { type: 'string' },
    },
    strict: true,
  });
  const dir = values.model ?? DEFAULT_MODEL_DIR;
  const sparse = values['policy-file'] === undefined ? undefined : readPolicyFile(values['policy-file']);
  const conversations = demoConversations(dir, values.image);
  const { startProfiler } = await import('../../profiler-ui/server/server.js');
  const dataDir = values['data-dir'] ?? defaultDataDir();
  const server = await startOnFreePort(values.port === undefined ? undefined : parseInteger(values.port, '--port'), (port) => startProfiler({ port, dataDir }));
  console.log(`profiler: ${server.url} (runs saved in ${dataDir})`);
  // Ctrl-C before the conversations end: close the server, which flushes the runs' files, then die of the
  // signal as without this handler (process.exit would run native teardown under onnxruntime's busy worker: abort).
  const interrupted = (): void =>
    void server.close().finally(() => {
      process.off('SIGINT', interrupted);
      process.kill(process.pid, 'SIGINT');
    });
  process.on('SIGINT', interrupted);
  // The profiler validates and stores each event; done in the turn it would be timed as the turn's (a long video's
  // retrieval events hold every retained token), so it runs at the next turn of the event loop, while the worker computes.
  const sink: TraceSink = { write: (event) => void setImmediate(() => ingestOrWarn(server, event)) };
  // The deferred events first (setImmediate runs callbacks in the order they were queued).
  const delivered = () => new Promise((resolve) => setImmediate(resolve));
  console.log(`model: ${dir}`);
  const model = await loadModel(dir, { ...parseModelOptions(values), onProgress: progressPrinter() });
  const answers = new Map<string, Answer[]>();
  try {
    const s = model.spec;
    const tower = familyOf(s).describe(s);
    console.log(
      `  ${tower.vision} tower → ${tower.imageTokens || 'native-resolution'} image tokens; ` +
        `${s.text.kind} ${s.text.numLayers} layers, hidden ${s.text.hiddenSize}, heads ${s.text.numHeads}/${s.text.numKvHeads}`,
    );
    const policies: [string, SparsityPolicy][] = [
      ['dense', { method: 'dense' }],
      sparse
        ? [`${policyLabel(sparse)} (${values['policy-file']})`, sparse]
        : [
            'sparsevila (keep 50%, retrieve 25%)',
            validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.25 } } }),
          ],
    ];
    // One unmeasured turn per policy first: ORT's first runs allocate and tune, and would skew the ratios.
    for (const [, policy] of policies) {
      const warm = model.chat({ maxNewTokens: 2, policy });
      await warm.ask({ images: conversations[0]!.media, text: conversations[0]!.turns[0]!.question });
      await warm.close();
    }
    for (const [name, policy] of policies) {
      answers.set(policy.method, []);
      for (const conversation of conversations) {
        console.log(`\n== ${name}: ${conversation.title} (${conversation.media.length} ${conversation.media.length > 1 ? 'frames' : 'image'})`);
        const chat = model.chat({ maxNewTokens: 16, policy, fidelity: policy.method !== 'dense', tracer: new Tracer([sink]) });
        for (const [i, turn] of conversation.turns.entries()) {
          const answer = await chat.ask({ images: i === 0 ? conversation.media : [], text: turn.question });
          answers.get(policy.method)!.push(answer);
          console.log(`turn ${i + 1} user: ${turn.question}`);
          console.log(`turn ${i + 1} assistant: ${JSON.stringify(answer.text)}${turn.answer === undefined ? '' : `   (reference: ${turn.answer})`}`);
          console.log(`  ${describeTimings(answer)}`);
          console.log(`  ${describeSparsity(answer)}`);
        }
        await chat.close();
      }
    }
    console.log(`\n${describeSpeedups(answers.get('dense')!, answers.get(policies[1]![1].method)!)}`);
    const references = conversations.flatMap((c) => c.turns.map((t) => t.answer));
    if (references.every((r) => r !== undefined)) {
      console.log(policies.map(([name, p]) => `${name}: ${describeMatches(answers.get(p.method)!, references as string[])}`).join('\n'));
    }
    // A long video where sparsity pays: the shipped examples' images are 64 tokens each, too few to save on.
    if (!values.image && tower.imageTokens && 'imageSize' in s.vision)
      await runLongVideo(model, { imageTokens: tower.imageTokens, imageSize: s.vision.imageSize }, policies, sink);
    else if (tower.imageTokens && tower.imageTokens * Math.max(...conversations.map((c) => c.media.length)) < 1024) {
      console.log(
        `(${tower.imageTokens} visual tokens an image: at this size fixed per-turn costs — scoring, building the ` +
          `retrieval view — outweigh what sparsity saves; \`npm run bench\` measures one image to 64-frame videos)`,
      );
    }
  } catch (err) {
    // A failed demo must not be kept alive by its server (its runs' files are flushed on close).
    await delivered();
    await server.close();
    throw err;
  } finally {
    await model.close();
    await delivered();
    // The runs stop being live: their files in the data dir are complete.
    server.endInProcess();
  }
  // From here Ctrl-C closes the server normally; listening before saying so, as a Ctrl-C right after the line must too.
  process.off('SIGINT', interrupted);
  const stopped = values.exit ? null : untilInterrupted();
  console.log(`\nprofiler: ${server.url}`);
  if (stopped) {
    console.log('serving the profiler until Ctrl-C');
    await stopped;
  }
  await server.close();
}

/** Feeds an event to the in-process profiler; an event it refuses is reported, not thrown (a sink must not throw). */
function ingestOrWarn(server: { ingest(event: TraceEvent): void }, event: TraceEvent): void {
  try {
    server.ingest(event);
  } catch (err) {
    console.error(`profiler: ${(err as Error).message}`);
  }
}

/** Per turn: SparseVILA's prefill, decode and end-to-end speed against dense, measured side by side. */
export function describeSpeedups(dense: Answer[], sparse: Answer[]): string {
  return dense
    .map((d, i) => {
      return `turn ${i + 1} speedup vs dense: ${speedups(d, sparse[i]!)}`;
    })
    .join('\n');
}

/** How many answers are their reference (trimmed, case-insensitive, a final stop ignored). */
export function describeMatches(answers: Answer[], references: string[]): string {
  const norm = (t: string) =>
    t
      .trim()
      .toLowerCase()
      .replace(/[.!]+$/, '');
  const right = answers.filter((a, i) => norm(a.text) === norm(references[i]!)).length;
  return `${right}/${references.length} answers match the reference`;
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
