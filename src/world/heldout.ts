/**
 * The held-out conversations a model trained on this world is judged on: the world and split its
 * training.json records (tools/train-demo-vlm writes it beside the weights), rendered at the model's image
 * size, and the rules that score answers — exact match for questions, grid cells right for captions. The
 * benchmarks (scripts/heldout.mjs) and the tuner's named workloads (src/tune/demo-sets.ts) share them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { renderScene } from './render.js';
import { CELLS, CELL_PHRASE, type Scene } from './scene.js';
import { makeSplits, type Conversation, type ConversationOptions } from './conversations.js';
import { toPng } from './png.js';
import { renderVideo } from './video.js';

/** The split the trainer used when training.json records none: the world generator's defaults. */
const DEFAULT_SPLIT = { seed: 1234, train: 0, options: { videoFraction: 0.25 } as ConversationOptions };

/** `count` held-out conversations of the world the model in `modelDir` was trained on (its training.json). */
export function heldOutConversations(modelDir: string, count: number): { seed: number; conversations: Conversation[] } {
  const file = path.join(modelDir, 'training.json');
  const dataset = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { dataset?: Record<string, unknown> }).dataset : undefined;
  const seed = typeof dataset?.seed === 'number' ? dataset.seed : DEFAULT_SPLIT.seed;
  const train = typeof dataset?.train === 'number' ? dataset.train : DEFAULT_SPLIT.train;
  const options = (dataset?.options as ConversationOptions | undefined) ?? DEFAULT_SPLIT.options;
  return { seed, conversations: makeSplits(seed, { train, heldOut: count }, options).heldOut };
}

/** A conversation's frames (one for an image) as PNG bytes at `imageSize`. */
export function renderConversationMedia(conversation: Conversation, imageSize: number): Promise<Buffer[]> {
  const m = conversation.media;
  const frames = m.kind === 'image' ? [renderScene(m.scene, imageSize)] : renderVideo(m.video, imageSize);
  return Promise.all(frames.map((rgb) => toPng(rgb, imageSize, imageSize)));
}

/** Each conversation's frames, as `renderConversationMedia` renders them. */
export function renderMedia(conversations: readonly Conversation[], imageSize: number): Promise<Buffer[][]> {
  return Promise.all(conversations.map((c) => renderConversationMedia(c, imageSize)));
}

/** Whether a generated answer is the reference: exact match after trimming, lower-casing and a final stop. */
export const isCorrect = (text: string, reference: string): boolean =>
  text
    .trim()
    .toLowerCase()
    .replace(/[.!]+$/, '') === reference.trim().toLowerCase();

/** The prompt the demo model's trainer teaches captions with. */
export const CAPTION_PROMPT = 'Describe the image.';

/**
 * How many of an image's 9 grid cells a caption describes right. The demo model's trainer teaches captions
 * of the form "top left: nothing; top middle: green large square; ..." (tools/train-demo-vlm, "Describe the
 * image."); a cell the caption leaves out, or names twice with different contents, counts as wrong.
 */
export function captionCellsRight(text: string, scene: Scene): number {
  const said = new Map<string, string | null>();
  for (const part of text.split(';')) {
    const [cell, what] = part.split(':').map((x) => x?.trim().toLowerCase());
    if (!cell || what === undefined) continue;
    said.set(cell, said.has(cell) && said.get(cell) !== what ? null : what);
  }
  let right = 0;
  for (const cell of CELLS) {
    const o = scene.objects.find((x) => x.cell === cell);
    right += Number(said.get(CELL_PHRASE[cell]) === (o ? `${o.color} ${o.size} ${o.shape}` : 'nothing'));
  }
  return right;
}
