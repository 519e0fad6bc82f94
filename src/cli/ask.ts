/** `sparsevila ask`: one question about one or more images, streamed or as JSON. */
import { parseArgs } from 'node:util';
import { InputError } from '../errors.js';
import type { Sampling } from '../session/sampling.js';
import { loadModel } from '../session/model.js';
import { ChromeTraceSink, JsonlSink, Tracer, WebSocketSink } from '../trace/index.js';
import { modelOptionSpec, parseInteger, parseModelOptions, parseSize, progressPrinter } from './options.js';
import type { CliValues } from '../sparsity/method.js';
import { POLICY_FILE_HELP, policyOfFlags, policyOptionSpec } from './policy-options.js';
import { checkChatOptions, checkDropLayers, checkWritable } from './up-front.js';
import { checkedProfiler, profiledRun } from './profile.js';
import { parseVideoOptions, VIDEO_OPTIONS_HELP, videoOptionSpec } from './video-options.js';

export const ASK_HELP = `Usage: sparsevila ask --model DIR (--image FILE [--image FILE…] | --video FILE) --prompt TEXT [options]

Answers one question about the images, or about frames of a video, with a Hugging Face Llava checkpoint
(config.json, *.safetensors, tokenizer.json, tokenizer_config.json, preprocessor_config.json in DIR).
Tokens stream to stdout; timings go to stderr.

  --model DIR            checkpoint folder (required)
  --image FILE           an image (PNG, JPEG, WebP, …); repeat for several, in prompt order
  --prompt TEXT          the question (required)
  --max-new-tokens N     stop after N new tokens (default 128)
  --min-new-tokens N     end-of-sequence cannot end the answer before N tokens (default 0)
  --greedy               greedy decoding (the default; overrides --temperature)
  --temperature T        sample with temperature T instead of greedy
  --top-p P              nucleus sampling mass, in (0, 1] (default 1; with --temperature)
  --seed S               sampling seed (default 0)
  --json                 print one JSON object: text, tokenIds, promptTokenIds, stopReason, timings,
                         sparsity (kept tokens per image / frame), video (the frames' numbers and times)
  --logits               with --json: add lastPromptLogits (logits at the last prompt position)
  --prefill-chunk N      prefill at most N tokens per graph call (default 512)
  --prefill-scores SIZE  the most one prefill call's attention scores may take (heads × chunk × context × 4
                         bytes): calls shrink past it at long context (default 256M; K, M, G, T binary units)
  --trace FILE           write the run's trace events (salience, kept tokens, retrieval sets, spans,
                         decode steps) as JSON lines
  --chrome-trace FILE    write the run as a Chrome trace (opens in Perfetto or chrome://tracing)
  --profile URL          stream the run live to a running profiler: the URL \`sparsevila profile\` printed
                         (http://HOST:PORT/?token=…). Checked before the model loads: no profiler there, or
                         a wrong token, is an error. Should it go away mid-run, the answer still comes; the
                         events it missed are counted on stderr
  --ort-profile PREFIX   also record onnxruntime's per-operator profile (PREFIX-<graph>_<date>.json); with
                         --chrome-trace it is merged into that trace on its own track
${POLICY_FILE_HELP}
${VIDEO_OPTIONS_HELP}${'' /* model options are shared with other commands */}`;

export async function runAsk(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...modelOptionSpec,
      ...policyOptionSpec(),
      'policy-file': { type: 'string' },
      ...videoOptionSpec,
      image: { type: 'string', multiple: true },
      prompt: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      'min-new-tokens': { type: 'string' },
      greedy: { type: 'boolean' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      logits: { type: 'boolean' },
      'prefill-chunk': { type: 'string' },
      'prefill-scores': { type: 'string' },
      trace: { type: 'string' },
      'chrome-trace': { type: 'string' },
      'ort-profile': { type: 'string' },
      profile: { type: 'string' },
    },
    strict: true,
  });
  if (!values.model) throw new InputError('OPTION_INVALID', '--model DIR is required', { subject: '--model' });
  if (values.prompt === undefined) throw new InputError('OPTION_INVALID', '--prompt TEXT is required', { subject: '--prompt' });
  if (values.logits && !values.json) throw new InputError('OPTION_INVALID', '--logits needs --json', { subject: '--logits' });
  const sampling: Sampling =
    values.temperature !== undefined && !values.greedy
      ? {
          kind: 'sample',
          temperature: Number(values.temperature),
          topP: values['top-p'] === undefined ? 1 : Number(values['top-p']),
          seed: values.seed === undefined ? 0 : parseInteger(values.seed, '--seed'),
        }
      : { kind: 'greedy' };
  // Absent flags stay undefined: the chat applies its defaults (CHAT_DEFAULTS).
  const maxNewTokens = values['max-new-tokens'] === undefined ? undefined : parseInteger(values['max-new-tokens'], '--max-new-tokens');
  const minNewTokens = values['min-new-tokens'] === undefined ? undefined : parseInteger(values['min-new-tokens'], '--min-new-tokens');
  const prefillChunk = values['prefill-chunk'] === undefined ? undefined : parseInteger(values['prefill-chunk'], '--prefill-chunk');
  const prefillScoreBytes = values['prefill-scores'] === undefined ? undefined : parseSize(values['prefill-scores'], '--prefill-scores');

  const { video, policy, visionBatch, memoryLimit } = parseVideoOptions(values, policyOfFlags(values as CliValues, values['policy-file']));
  const chatOptions = { maxNewTokens, minNewTokens, sampling, prefillChunk, prefillScoreBytes, policy, visionBatch, memoryLimit };
  checkChatOptions(chatOptions);
  checkWritable(values.trace, '--trace');
  checkWritable(values['chrome-trace'], '--chrome-trace');
  const profiler = values.profile === undefined ? undefined : await checkedProfiler(values.profile);
  const model = await loadModel(values.model, {
    ...parseModelOptions(values),
    onProgress: progressPrinter(),
    ortProfilePrefix: values['ort-profile'],
  });
  const chrome = values['chrome-trace'] ? new ChromeTraceSink(values['chrome-trace']) : undefined;
  const live = profiler && new WebSocketSink(profiler.ingest);
  const tracer = new Tracer([...(values.trace ? [new JsonlSink(values.trace, { truncate: true })] : []), ...(chrome ? [chrome] : []), ...(live ? [live] : [])]);
  try {
    checkDropLayers(policy, model.spec);
    const chat = model.chat({ ...chatOptions, tracer });
    const turn = chat.stream({ images: values.image ?? [], video, text: values.prompt });
    let r = await turn.next();
    while (!r.done) {
      if (!values.json) process.stdout.write(r.value.text);
      r = await turn.next();
    }
    const answer = r.value;
    if (values.json) {
      const { lastPromptLogits, ...rest } = answer;
      const out = values.logits ? { ...rest, lastPromptLogits: Array.from(lastPromptLogits) } : rest;
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      const t = answer.timings;
      process.stdout.write('\n');
      const frames = answer.video ? `${answer.video.frames.length} frames at ${answer.video.frames.map((f) => f.timestamp.toFixed(2)).join(', ')} s; ` : '';
      process.stderr.write(
        `[${frames}${t.promptTokens} prompt tokens, ${t.generatedTokens} generated (${answer.stopReason}); ` +
          `prefill ${(t.prefillSeconds * 1000).toFixed(1)} ms, first token ${(t.firstTokenSeconds * 1000).toFixed(1)} ms, ` +
          `decode ${t.decodeTokensPerSecond.toFixed(1)} tokens/s]\n`,
      );
    }
    if (values['ort-profile']) for (const file of await model.runtime.endProfiling()) chrome?.addOrtProfile(file);
  } finally {
    // The traces are written whether the turn finished or failed: a failed turn is when they are wanted most.
    await tracer.close();
    await model.close();
    if (profiler && live) process.stderr.write(profiledRun(profiler, live, tracer.run));
  }
}
