/**
 * The demo model's named workloads (`--workload demo:NAME`): held-out conversations of the synthetic world it
 * was trained on (src/world/heldout.ts; never in its training split), by what they ask.
 *   image-questions  multi-turn questions about one image (one- or two-token answers: the prefill decides them)
 *   video-questions  multi-turn questions about an 8-frame video (frames as images)
 *   captions         "Describe the image." (~55 tokens, cell by cell: decode writes nearly all of it), scored
 *                    by grid cells right
 */
import { InputError } from '../errors.js';
import { CAPTION_PROMPT, captionCellsRight, heldOutConversations, renderConversationMedia } from '../world/heldout.js';
import type { Workload } from './workload.js';

export const DEMO_WORKLOADS = ['image-questions', 'video-questions', 'captions'] as const;
export type DemoWorkloadName = (typeof DEMO_WORKLOADS)[number];

/** Tokens a caption needs (the trainer's captions run to ~55 tokens) and a question (an answer and its end). */
const CAPTION_TOKENS = 96;
const QUESTION_TOKENS = 8;

/** Whether `--workload` names a demo set (`demo:NAME`). */
export const isDemoWorkload = (name: string): boolean => name.startsWith('demo:');

/** `count` conversations of a demo set for the model in `modelDir` (its training.json's world and split), rendered at `imageSize`. */
export async function demoWorkload(name: string, modelDir: string, count: number, imageSize: number): Promise<Workload> {
  const set = name.replace(/^demo:/, '') as DemoWorkloadName;
  if (!DEMO_WORKLOADS.includes(set))
    throw new InputError('OPTION_INVALID', `--workload ${name}: unknown demo set; known: ${DEMO_WORKLOADS.map((d) => `demo:${d}`).join(', ')}`, {
      subject: '--workload',
    });
  // A quarter of the world's conversations are videos: draw enough to find `count` of the wanted kind.
  const wanted = set === 'video-questions' ? 'video' : 'image';
  const pool = heldOutConversations(modelDir, wanted === 'video' ? count * 6 : count * 2)
    .conversations.filter((c) => c.media.kind === wanted)
    .slice(0, count);
  const conversations = await Promise.all(
    pool.map(async (c) => {
      const images = await renderConversationMedia(c, imageSize);
      if (set !== 'captions') return { id: c.id, media: { images }, turns: c.turns.map((t) => ({ question: t.question, answer: t.answer })) };
      const scene = c.media.kind === 'image' ? c.media.scene : undefined;
      return { id: c.id, media: { images }, turns: [{ question: CAPTION_PROMPT, score: (text: string) => captionCellsRight(text, scene!) / 9 }] };
    }),
  );
  return { name: `demo:${set}`, conversations, maxNewTokens: set === 'captions' ? CAPTION_TOKENS : QUESTION_TOKENS };
}
