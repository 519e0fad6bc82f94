/** `sparsevila demo` (what `npm start` runs): a two-turn conversation about an image on a bundled model. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel } from '../session/model.js';
import type { Answer } from '../session/chat.js';
import { modelOptionSpec, parseModelOptions, progressPrinter } from './options.js';

/** The bundled checkpoint (random weights; see its README). Resolved from src/ or dist/src/. */
export const DEFAULT_MODEL_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../../../src/models/tiny-random-llava' : '../models/tiny-random-llava',
);

export const DEMO_HELP = `Usage: sparsevila demo [--model DIR] [--image FILE] [model options]

Runs a two-turn conversation about an image and prints the answers and timings. Without --model it uses
the bundled tiny checkpoint (random weights: the pipeline is real, the answers are noise).
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { ...modelOptionSpec, image: { type: 'string' } }, strict: true });
  const dir = values.model ?? DEFAULT_MODEL_DIR;
  const image = values.image ?? path.join(DEFAULT_MODEL_DIR, 'image.png');
  console.log(`model: ${dir}${values.model ? '' : ' (bundled, random weights)'}`);
  const model = await loadModel(dir, { ...parseModelOptions(values), onProgress: progressPrinter() });
  try {
    const s = model.spec;
    console.log(
      `  ${s.vision.kind} tower ${s.vision.imageSize}px/${s.vision.patchSize} → ${s.imageTokenCount} image tokens; ` +
        `${s.text.kind} ${s.text.numLayers} layers, hidden ${s.text.hiddenSize}, heads ${s.text.numHeads}/${s.text.numKvHeads}`,
    );
    const chat = model.chat({ maxNewTokens: 16 });
    const turns = [
      { images: [image], text: 'What is shown in this image?' },
      { text: 'What colour is the top left corner?' },
    ];
    for (const [i, turn] of turns.entries()) {
      const answer = await chat.ask(turn);
      console.log(`\nturn ${i + 1} user: ${turn.text}${turn.images ? ` [${turn.images.length} image]` : ''}`);
      console.log(`turn ${i + 1} assistant: ${JSON.stringify(answer.text)}`);
      console.log(`  ${describeTimings(answer)}`);
    }
  } finally {
    await model.close();
  }
}

export function describeTimings(a: Answer): string {
  const t = a.timings;
  return (
    `${t.promptTokens} new prompt tokens (${t.cachedTokens} reused from the cache), ${t.generatedTokens} generated (${a.stopReason}); ` +
    `vision ${(t.visionSeconds * 1000).toFixed(1)} ms, prefill ${(t.prefillSeconds * 1000).toFixed(1)} ms, ` +
    `first token ${(t.firstTokenSeconds * 1000).toFixed(1)} ms, decode ${t.decodeTokensPerSecond.toFixed(0)} tokens/s`
  );
}
