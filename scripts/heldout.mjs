/**
 * The held-out conversations a trained demo model is judged on, shared by the benchmarks that judge it: the
 * world and split its training.json records, rendered at the model's image size, and the exact-match rule.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { world } from 'sparsevila-ts/testing';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The command line every demo-model benchmark takes — --quick, --model DIR (default the shipped demo model),
 * --count N, --out DIR (default bench-results/), --threads N — plus `extra` options; model and out resolved.
 */
export function demoBenchArgs(extra = {}) {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      model: { type: 'string' },
      count: { type: 'string' },
      out: { type: 'string' },
      threads: { type: 'string' },
      ...extra,
    },
    strict: true,
  });
  return {
    args: values,
    model: path.resolve(values.model ?? path.join(REPO, 'src/models/sparsevila-demo')),
    out: path.resolve(values.out ?? path.join(REPO, 'bench-results')),
    threads: values.threads ? Number(values.threads) : undefined,
  };
}

/** `count` held-out conversations of the world the model in `modelDir` was trained on (its training.json). */
export function heldOutConversations(modelDir, count) {
  const file = path.join(modelDir, 'training.json');
  const training = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null;
  const seed = training?.dataset?.seed ?? 1234;
  const train = training?.dataset?.train ?? 0;
  const options = training?.dataset?.options ?? { videoFraction: 0.25 };
  return { seed, conversations: world.makeSplits(seed, { train, heldOut: count }, options).heldOut };
}

/** Each conversation's frames (one for an image) as PNG bytes at `imageSize`. */
export function renderMedia(conversations, imageSize) {
  return Promise.all(
    conversations.map(async (c) => {
      const frames = c.media.kind === 'image' ? [world.renderScene(c.media.scene, imageSize)] : world.renderVideo(c.media.video, imageSize);
      return Promise.all(frames.map((rgb) => world.toPng(rgb, imageSize, imageSize)));
    }),
  );
}

/** Whether a generated answer is the reference: exact match after trimming, lower-casing and a final stop. */
export const isCorrect = (text, reference) =>
  text
    .trim()
    .toLowerCase()
    .replace(/[.!]+$/, '') === reference;

/**
 * How many of an image's 9 grid cells a caption describes right. The demo model's trainer teaches captions
 * of the form "top left: nothing; top middle: green large square; ..." (tools/train-demo-vlm, "Describe the
 * image."); a cell the caption leaves out, or names twice with different contents, counts as wrong.
 */
export function captionCellsRight(text, scene) {
  const said = new Map();
  for (const part of text.split(';')) {
    const [cell, what] = part.split(':').map((x) => x?.trim().toLowerCase());
    if (!cell || what === undefined) continue;
    said.set(cell, said.has(cell) && said.get(cell) !== what ? null : what);
  }
  let right = 0;
  for (const cell of world.CELLS) {
    const o = scene.objects.find((x) => x.cell === cell);
    right += Number(said.get(world.CELL_PHRASE[cell]) === (o ? `${o.color} ${o.size} ${o.shape}` : 'nothing'));
  }
  return right;
}

export const CAPTION_PROMPT = 'Describe the image.';
