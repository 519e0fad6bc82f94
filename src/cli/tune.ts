/** `sparsevila tune`: the cheapest sparsity policy that keeps a fidelity floor on a workload (src/tune). */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InputError } from '../errors.js';
import { loadModel } from '../session/model.js';
import { WebSocketSink } from '../trace/ws-sink.js';
import { demoWorkload, isDemoWorkload, DEMO_WORKLOADS } from '../tune/demo-sets.js';
import { OBJECTIVES, parseFloor, type Objective } from '../tune/measures.js';
import { tune } from '../tune/tune.js';
import { readWorkload } from '../tune/workload.js';
import { modelOptionSpec, parseInteger, parseModelOptions, progressPrinter } from './options.js';
import { checkedProfiler } from './profile.js';

export const TUNE_HELP = `Usage: sparsevila tune --model DIR --workload FILE|demo:NAME --out DIR [options]

Searches a sparsity method's policy space for the cheapest policy that keeps a fidelity floor against a dense
twin, on part of the workload's conversations (successive halving over conversations, the floor judged by 95%
confidence bounds), then reports the choice on the held-out rest. Writes DIR/policy.json (for
\`ask --policy-file\`, \`demo --policy-file\`, \`model.chat({ policy })\`), report.md, report.json, pareto.svg and
trials.jsonl, the trial log: run the same command again to resume an interrupted tune.

  --model DIR            checkpoint folder (required)
  --workload W           a JSON-lines file, one conversation a line: {"images": [...] | "video": FILE, "turns":
                         [{"question", "answer"?}]} (paths relative to the file), or a demo set of the bundled
                         model: ${DEMO_WORKLOADS.map((d) => `demo:${d}`).join(', ')}
  --out DIR              where the log, policy and report go (required)
  --objective O          the cost to minimise: ${OBJECTIVES.join(', ')} (default e2e: first token + decode per turn;
                         kv-bytes: KV-cache bytes a decode step reads, independent of the machine's load)
  --floor F              agreement=0.98 (default: token agreement with dense), kl=0.05 (mean KL), or
                         accuracy=N (at most N points under dense; needs reference answers)
  --method M             the method whose space is searched (default sparsevila)
  --candidates N         policies sampled from the space (default 16)
  --conversations N      demo sets: how many conversations (default 32)
  --heldout-share S      share of conversations held out from the search (default 0.25)
  --seed S               seeds the split and the sample (default 0)
  --max-trials N         stop after N new trials (the log keeps them; run again to go on)
  --max-new-tokens N     tokens per answer (default 16; demo sets: 8 for questions, 96 for captions)
  --profile URL          stream every trial as a run to a running profiler: the URL \`sparsevila profile\`
                         printed (http://HOST:PORT/?token=…), checked before the model loads; its sweep view
                         plots the trials live
`;

export async function runTune(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...modelOptionSpec,
      workload: { type: 'string' },
      out: { type: 'string' },
      objective: { type: 'string' },
      floor: { type: 'string' },
      method: { type: 'string' },
      candidates: { type: 'string' },
      conversations: { type: 'string' },
      'heldout-share': { type: 'string' },
      seed: { type: 'string' },
      'max-trials': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      profile: { type: 'string' },
    },
    strict: true,
  });
  const required = (v: string | undefined, flag: string) => {
    if (v === undefined) throw new InputError('OPTION_INVALID', `${flag} is required`, { subject: flag });
    return v;
  };
  const model_ = required(values.model, '--model');
  const workloadName = required(values.workload, '--workload');
  const out = required(values.out, '--out');
  const objective = (values.objective ?? 'e2e') as Objective;
  if (!OBJECTIVES.includes(objective))
    throw new InputError('OPTION_INVALID', `--objective must be one of ${OBJECTIVES.join(', ')}; got '${values.objective}'`, { subject: '--objective' });
  const floor = parseFloor(values.floor ?? 'agreement=0.98');
  const int = (v: string | undefined, flag: string) => (v === undefined ? undefined : parseInteger(v, flag));
  const heldOutShare = values['heldout-share'] === undefined ? undefined : Number(values['heldout-share']);
  // A file workload is read (and its errors reported) before the model loads.
  const fileWorkload = isDemoWorkload(workloadName) ? undefined : readWorkload(path.resolve(workloadName));
  const profiler = values.profile === undefined ? undefined : await checkedProfiler(values.profile);
  const sink = profiler && new WebSocketSink(profiler.ingest);
  const model = await loadModel(model_, { ...parseModelOptions(values), onProgress: progressPrinter() });
  try {
    const spec = model.spec;
    if (!fileWorkload && spec.family !== 'llava')
      throw new InputError(
        'OPTION_INVALID',
        `--workload ${workloadName}: the demo sets are the bundled Llava demo model's world; give a workload file for ${model_}`,
        { subject: '--workload' },
      );
    const loaded =
      fileWorkload ??
      (await demoWorkload(workloadName, model_, int(values.conversations, '--conversations') ?? 32, spec.family === 'llava' ? spec.vision.imageSize : 0));
    const maxNewTokens = int(values['max-new-tokens'], '--max-new-tokens');
    const workload = maxNewTokens === undefined ? loaded : { ...loaded, maxNewTokens };
    const result = await tune(model, workload, {
      objective,
      floor,
      method: values.method,
      candidates: int(values.candidates, '--candidates'),
      heldOutShare,
      seed: int(values.seed, '--seed'),
      out,
      maxTrials: int(values['max-trials'], '--max-trials'),
      sink,
      onTrial: (t, resumed) =>
        process.stderr.write(
          `trial ${t.n} ${t.trial}: ${t.label} on ${t.conversations.length} conversations${resumed ? ' (from the log)' : ` in ${t.seconds.toFixed(1)} s`}\n`,
        ),
    });
    if (!result.complete) {
      process.stdout.write(`stopped after ${result.trials.run} new trials (--max-trials); the log is ${result.log}: run the same command again to go on\n`);
      return;
    }
    const h = result.heldOut;
    process.stdout.write(
      `choice: ${result.label}${result.confirmed ? '' : ' (not confirmed on the tuning conversations)'}\n` +
        `held out (${result.split.heldOut.length} conversations): token agreement ${(100 * h.choice.agreement).toFixed(1)}%, mean KL ${h.choice.meanKl.toPrecision(3)}` +
        `${h.choice.accuracy === null ? '' : `, accuracy ${(100 * h.choice.accuracy).toFixed(1)}% (dense ${(100 * h.dense.accuracy!).toFixed(1)}%)`}, ` +
        `${result.objective} cost ×${h.costRatio.toFixed(3)} of dense; floor ${result.floor} ${h.meetsFloor ? 'met' : 'NOT met'}\n` +
        `wrote ${path.join(out, 'policy.json')}, report.md, report.json, pareto.svg (${result.trials.run} trials run, ${result.trials.resumed} from the log)\n`,
    );
  } finally {
    await model.close();
    await sink?.close();
  }
}
