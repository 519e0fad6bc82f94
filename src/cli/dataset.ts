/** `sparsevila dataset`: writes a synthetic-world training dataset (images, video frames, conversations). */
import { parseArgs } from 'node:util';
import { InputError } from '../errors.js';
import { parseInteger } from './options.js';

export const DATASET_HELP = `Usage: sparsevila dataset --out DIR --seed S --count N [options]

Writes a dataset of the synthetic visual world — colored shapes on a 3×3 grid, in images and short
videos — with multi-turn conversations whose turns ask about different regions, for training and
evaluating a model. Deterministic: the same options write the same bytes.

  DIR/images/<id>.png        one per image conversation
  DIR/frames/<id>_<k>.png    frames k = 1…F of each video conversation
  DIR/conversations.jsonl    one conversation per line: id, split, media paths, turns (question, answer,
                             kind, scope, cells, frame), layout hash, seed, ground truth
  DIR/meta.json              seed, options, counts, answer vocabulary, palette

Options:
  --out DIR          output folder (created; must not already hold a dataset unless --force)
  --seed S           integer seed (default 0)
  --count N          train conversations
  --heldout M        held-out conversations, none sharing a scene with the train split (default 0)
  --videos F         fraction of conversations about a video, 0–1 (default 0)
  --image-size PX    image side in pixels (default 64)
  --frames K         frames per video, 2–64 (default 8)
  --min-turns T      fewest turns per conversation (default 1)
  --max-turns T      most turns per conversation (default 5)
  --force            replace a dataset already in DIR
  --quiet            no progress on stderr
`;

export async function runDataset(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      seed: { type: 'string' },
      count: { type: 'string' },
      heldout: { type: 'string' },
      videos: { type: 'string' },
      'image-size': { type: 'string' },
      frames: { type: 'string' },
      'min-turns': { type: 'string' },
      'max-turns': { type: 'string' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new InputError('OPTION_INVALID', `unexpected argument '${positionals[0]}'`, { subject: positionals[0] });
  if (!values.out) throw new InputError('OPTION_INVALID', '--out DIR is required', { subject: '--out' });
  if (values.count === undefined) throw new InputError('OPTION_INVALID', '--count N is required', { subject: '--count' });
  const int = (flag: string, value: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (value === undefined) return fallback;
    const n = parseInteger(value, flag);
    if (n < min || n > max) throw new InputError('OPTION_INVALID', `${flag} must be ${min}–${max}, got ${n}`, { subject: flag });
    return n;
  };
  const seed = int('--seed', values.seed, 0, 0, 0xffffffff);
  const count = int('--count', values.count, 0, 0);
  const heldOut = int('--heldout', values.heldout, 0, 0);
  const imageSize = int('--image-size', values['image-size'], 64, 8, 4096);
  const frames = int('--frames', values.frames, 8, 2, 64);
  const minTurns = int('--min-turns', values['min-turns'], 1, 1, 9);
  const maxTurns = int('--max-turns', values['max-turns'], Math.max(5, minTurns), 1, 9);
  if (minTurns > maxTurns) throw new InputError('OPTION_INVALID', `--min-turns ${minTurns} exceeds --max-turns ${maxTurns}`, { subject: '--min-turns' });
  const videoFraction = values.videos === undefined ? 0 : Number(values.videos);
  if (!(videoFraction >= 0 && videoFraction <= 1))
    throw new InputError('OPTION_INVALID', `--videos must be a fraction in 0–1, got '${values.videos}'`, { subject: '--videos' });

  const progress = !values.quiet && process.stderr.isTTY;
  let lastShown = 0;
  // Loaded here: the other commands need no world.
  const { writeDataset } = await import('../world/dataset.js');
  let summary;
  try {
    summary = await writeDataset(values.out, {
      seed,
      count,
      heldOut,
      imageSize,
      frames,
      minTurns,
      maxTurns,
      videoFraction,
      overwrite: values.force ?? false,
      onProgress: progress
        ? (done, total) => {
            const now = Date.now();
            if (done === total || now - lastShown > 200) {
              lastShown = now;
              process.stderr.write(`\rwriting conversations ${done}/${total}`);
            }
          }
        : undefined,
    });
  } catch (err) {
    if (err instanceof Error && /already holds a dataset/.test(err.message)) {
      throw new InputError('OPTION_INVALID', `--out ${err.message.replace(/pass overwrite/, 'pass --force')}`, { subject: '--out' });
    }
    throw err;
  } finally {
    if (progress) process.stderr.write('\r\x1b[K');
  }
  const c = summary.meta.counts;
  process.stdout.write(
    `wrote ${c.conversations} conversations (${c.train} train, ${c.heldout} held-out; ${c.images} images, ${c.videos} videos of ${frames} frames; ` +
      `${c.turns} turns) to ${values.out} in ${summary.seconds.toFixed(1)} s\n`,
  );
}
