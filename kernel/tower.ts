/**
 * What the vision tower saw: an image resized and cropped as the model's processor does it, as a small JPEG — the background a retention map's patch grid lines up with exactly.
 * The same picture the engine puts in its `image` trace events.
 */
import type { ImageInput, Model } from '../src/index.js';
import { thumbnailOf } from '../src/media/thumbnail.js';
import { jpegBackground } from './data.js';
import type { RetentionBackground } from './render/retention.js';

export async function towerImage(model: Pick<Model, 'towerView'>, image: ImageInput): Promise<RetentionBackground> {
  return jpegBackground(await thumbnailOf(await model.towerView(image)));
}
