/**
 * AWQ's calibration set: conversations turned into prompt ids and pixels exactly as a chat turn builds
 * them (chat template, image tokens expanded, the image processor's pixels). By default they come from the
 * synthetic world (src/world): seeded scenes of shapes with questions and answers, so a plan is
 * reproducible without any download. Its identity is a hash of the ids and pixels themselves, so anything
 * that changes them (template, tokenizer, preprocessing, samples) changes the plan's cache key.
 */
import crypto from 'node:crypto';
import type { LlavaSpec } from '../checkpoint/spec.js';
import { InputError } from '../errors.js';
import { buildPrompt, type ChatMessage, type ContentPart, type TextProcessor } from '../text/index.js';
import { makeConversations, renderScene, toPng } from '../world/index.js';

/** One calibration conversation: a user turn (images, text) and optionally the assistant's answer. */
export interface CalibrationSample {
  /** Image files or encoded bytes, shown before the text. */
  images?: readonly (string | Uint8Array)[];
  text: string;
  answer?: string;
}

export interface CalibrationPrompt {
  ids: number[];
  /** [images, 3, H, W], when the sample has images. */
  pixels?: { data: Float32Array; dims: number[] };
}

export interface CalibrationSet {
  /** sha256 (hex, 24) over every prompt's ids and pixels. */
  id: string;
  prompts: CalibrationPrompt[];
  tokens: number;
}

/** Default number of calibration samples. */
export const DEFAULT_CALIBRATION_SAMPLES = 16;
/** Seed of the world conversations used for calibration (any fixed value: it names the set). */
const WORLD_SEED = 0xa3c;

/** `count` single-image world conversations: a rendered scene, its first question and answer. */
export async function worldCalibrationSamples(count: number, imageSize: number): Promise<CalibrationSample[]> {
  const conversations = makeConversations(WORLD_SEED, count, { split: 'calibration', minTurns: 1, maxTurns: 1 });
  return Promise.all(
    conversations.map(async (c) => {
      if (c.media.kind !== 'image') throw new Error('calibration conversations are images only');
      const png = await toPng(renderScene(c.media.scene, imageSize), imageSize, imageSize);
      const turn = c.turns[0]!;
      return { images: [new Uint8Array(png)], text: turn.question, answer: turn.answer };
    }),
  );
}

/** Prompt ids and pixels of each sample; `pixels` is the model's image preprocessing. */
export async function buildCalibrationSet(
  samples: readonly CalibrationSample[],
  text: TextProcessor,
  spec: LlavaSpec,
  pixels: (images: readonly (string | Uint8Array)[]) => Promise<{ data: Float32Array; dims: number[] }>,
): Promise<CalibrationSet> {
  if (samples.length === 0) throw new InputError('OPTION_INVALID', 'the AWQ calibration set is empty: give at least one sample', { subject: 'calibration' });
  const hash = crypto.createHash('sha256');
  const prompts: CalibrationPrompt[] = [];
  for (const sample of samples) {
    const images = sample.images ?? [];
    const content: ContentPart[] = [...images.map(() => ({ type: 'image' as const })), { type: 'text', text: sample.text }];
    const messages: ChatMessage[] = [{ role: 'user', content }];
    if (sample.answer !== undefined) messages.push({ role: 'assistant', content: sample.answer });
    const { ids } = buildPrompt(text, messages, {
      imageCount: images.length,
      imageTokenCount: spec.imageTokenCount,
      addGenerationPrompt: sample.answer === undefined,
    });
    const prompt: CalibrationPrompt = { ids, pixels: images.length ? await pixels(images) : undefined };
    hash.update(`${ids.length} ids, pixels [${prompt.pixels?.dims.join(', ') ?? ''}];`);
    hash.update(new Uint8Array(Int32Array.from(ids).buffer));
    if (prompt.pixels) hash.update(new Uint8Array(prompt.pixels.data.buffer, prompt.pixels.data.byteOffset, prompt.pixels.data.byteLength));
    prompts.push(prompt);
  }
  return { id: hash.digest('hex').slice(0, 24), prompts, tokens: prompts.reduce((n, p) => n + p.ids.length, 0) };
}
