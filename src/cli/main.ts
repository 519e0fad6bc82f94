#!/usr/bin/env node
/** The `sparsevila` command line. Errors print their code and message; exit 2 for bad input, 1 otherwise. */
import { InputError, SparseVilaError } from '../errors.js';
import { ASK_HELP, runAsk } from './ask.js';
import { DATASET_HELP, runDataset } from './dataset.js';
import { DEMO_HELP, runDemo } from './demo.js';
import { MODEL_OPTIONS_HELP } from './options.js';
import { cliHelp } from '../sparsity/registry.js';
import { PROFILE_HELP, runProfile } from './profile.js';
import { TUNE_HELP, runTune } from './tune.js';

const HELP = `Usage: sparsevila <command> [options]

Commands:
  ask     answer a question about images with a Llava checkpoint
  dataset write a synthetic-world training dataset (shapes on a grid; images, videos, multi-turn questions)
  demo    a two-turn conversation on the bundled model (what \`npm start\` runs)
  profile the live profiler: a web page showing runs as they happen, and saved traces
  tune    the cheapest sparsity policy that keeps a fidelity floor on a workload (policy.json + report)

Run \`sparsevila <command> --help\` for a command's options.
`;

// Help is written when asked for: the sparsity section lists the methods registered by then.
const commands: Record<string, { run: (argv: string[]) => Promise<void>; help: () => string }> = {
  ask: { run: runAsk, help: () => ASK_HELP + '\n' + MODEL_OPTIONS_HELP + '\n' + cliHelp() },
  dataset: { run: runDataset, help: () => DATASET_HELP },
  demo: { run: runDemo, help: () => DEMO_HELP + '\n' + MODEL_OPTIONS_HELP },
  profile: { run: runProfile, help: () => PROFILE_HELP },
  tune: { run: runTune, help: () => TUNE_HELP + '\n' + MODEL_OPTIONS_HELP },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`sparsevila: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help());
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof SparseVilaError) {
      process.stderr.write(`sparsevila ${name}: error [${err.code}]: ${err.message}\n`);
      // Every InputError is the caller's to fix (a flag, a prompt, an image or video, a memory limit): exit 2.
      return err instanceof InputError ? 2 : 1;
    }
    const e = err as Error & { code?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sparsevila ${name}: ${e.message}\n\n${command.help()}`);
      return 2;
    }
    process.stderr.write(`sparsevila ${name}: unexpected error: ${e.stack ?? e.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
