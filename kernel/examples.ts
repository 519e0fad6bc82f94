/**
 * The demo model's held-out example for the notebooks, taken from its examples/conversations.json at run
 * time: retraining the model rewrites that file (other images, other questions), so the notebooks name
 * neither a file nor a question.
 */
import { readExampleConversations, type ExampleConversation } from '../src/checkpoint/examples.js';
import { CheckpointError } from '../src/errors.js';
import { paths } from './paths.js';

export interface ImageExampleOptions {
  /** A model folder with examples/conversations.json (default: the demo model, `paths.demoModel`). */
  modelDir?: string;
  /** Skip image conversations with fewer turns (default 1). */
  minTurns?: number;
}

/** The first conversation about a single image (not a video's frames): its absolute image path and its turns. */
export function demoImageExample(options: ImageExampleOptions = {}): ExampleConversation {
  const dir = options.modelDir ?? paths.demoModel;
  const minTurns = options.minTurns ?? 1;
  const example = readExampleConversations(dir).find((c) => c.media.length === 1 && c.turns.length >= minTurns);
  if (!example) {
    throw new CheckpointError(
      'CHECKPOINT_NOT_FOUND',
      `${dir}'s example conversations have none about one image with ${minTurns}+ turns: ask for fewer turns or pick another model folder`,
      { subject: dir },
    );
  }
  return example;
}
