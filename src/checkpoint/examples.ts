/**
 * A model folder's example conversations: `examples/conversations.json`, which the demo model's trainer
 * (tools/train-demo-vlm/train.py) writes beside the weights — held-out media copied into `examples/`, each
 * conversation's questions with their reference answers. `sparsevila demo` and the notebooks ask them.
 * The file is rewritten whenever the model is retrained (other media, other questions), so callers read it
 * at run time instead of naming its contents.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError } from '../errors.js';

/** Where a model folder keeps its example conversations, relative to the folder. */
export const EXAMPLES_FILE = path.join('examples', 'conversations.json');

export interface ExampleTurn {
  question: string;
  /** The reference answer (the ground truth of the synthetic world, not the model's answer). */
  answer?: string;
}

export interface ExampleConversation {
  title: string;
  /** Absolute paths: one image, or a video's frames in order. */
  media: string[];
  turns: ExampleTurn[];
}

/** The conversations of `modelDir`'s examples/conversations.json, media resolved against examples/. */
export function readExampleConversations(modelDir: string): ExampleConversation[] {
  const file = path.join(modelDir, EXAMPLES_FILE);
  let list: unknown;
  try {
    list = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CheckpointError(
      missing ? 'CHECKPOINT_NOT_FOUND' : 'CHECKPOINT_CORRUPT',
      missing ? `${file} not found: the model folder ships no example conversations` : `${file} is not readable JSON: ${(cause as Error).message}`,
      { subject: file, cause },
    );
  }
  if (!Array.isArray(list)) throw corrupt(file, 'the top level is not a list of conversations');
  return list.map((c: Partial<ExampleConversation>, i) => {
    const where = `conversation ${i}`;
    if (!Array.isArray(c.media) || c.media.length === 0 || !c.media.every((m) => typeof m === 'string')) {
      throw corrupt(file, `${where} has no "media" list of file names`);
    }
    if (!Array.isArray(c.turns) || c.turns.length === 0 || !c.turns.every((t) => typeof t?.question === 'string')) {
      throw corrupt(file, `${where} has no "turns" list of { question, answer }`);
    }
    const media = c.media.map((m) => path.resolve(path.dirname(file), m));
    return { title: typeof c.title === 'string' ? c.title : where, media, turns: c.turns.map(({ question, answer }) => ({ question, answer })) };
  });
}

function corrupt(file: string, what: string): CheckpointError {
  return new CheckpointError('CHECKPOINT_CORRUPT', `${file}: ${what} (it is written by tools/train-demo-vlm/train.py)`, { subject: file });
}
