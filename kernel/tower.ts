/**
 * What the vision tower saw: an image preprocessed as the model takes it (resized, cropped, normalised),
 * de-normalised back into a small JPEG — the background a retention map's patch grid lines up with exactly.
 * The same picture the engine puts in its `image` trace events.
 */
import type { ImageInput, Model } from '../src/index.js';
import { thumbnail } from '../src/media/thumbnail.js';
import { jpegBackground } from './data.js';
import type { RetentionBackground } from './render/retention.js';

export async function towerImage(model: Pick<Model, 'pixels' | 'preprocessor'>, image: ImageInput): Promise<RetentionBackground> {
  const { data, dims } = await model.pixels([image]);
  const [, , h, w] = dims as [number, number, number, number];
  return jpegBackground(await thumbnail(data, h, w, model.preprocessor));
}
