/**
 * Llava's encode step: images → the preprocessor (resize, crop, normalize) → the tower a batch at a time →
 * the projector, and each image's salience inputs aligned with the LLM's image tokens. The tower's
 * activations (heads × N² attention per image) are bounded by the batch, not by a video's length, and a
 * batch's pixels are dropped once it is encoded.
 *
 * The `default` feature strategy drops tower token 0 (modeling_llava `selected_image_feature[:, 1:]`: CLIP's
 * CLS, or SigLIP's first patch), so every per-token output skips it too; under `full` CLIP's CLS is a
 * leading LLM token that is not a patch.
 */
import { concatFloat32 } from '../../arrays.js';
import type { LlavaSpec } from '../../checkpoint/spec.js';
import { ConfigError } from '../../errors.js';
import { pixelTensor, prepareImage, type PreprocessorConfig } from '../../media/index.js';
import {
  batchesOf,
  TOWER_SCORE_COPIES,
  type MediaFootprint,
  type EncodedMedia,
  type EncodeRequest,
  type GraphRunner,
  type GraphTensor,
  type MediaLayout,
  type SalienceInputs,
} from '../family.js';
import { leadingRows } from './vision-graph.js';

export async function encodeLlava(spec: LlavaSpec, runner: GraphRunner, request: EncodeRequest): Promise<EncodedMedia> {
  const config = request.processor as PreprocessorConfig;
  const size = spec.vision.imageSize;
  const plane = 3 * size * size;
  const waited = { ms: 0 };
  let visionMs = 0;
  const batches: Record<string, GraphTensor>[] = [];
  let images = 0;
  for await (const frames of batchesOf(request.frames, request.batch, waited)) {
    const t0 = performance.now();
    const data = new Float32Array(frames.length * plane);
    for (const [i, frame] of frames.entries()) {
      const shown = prepareImage(frame, config);
      if (shown.width !== size || shown.height !== size) {
        throw new ConfigError(
          'CONFIG_INVALID',
          `${request.dir}/preprocessor_config.json produces ${shown.width}×${shown.height} pixels but the vision tower takes ${size}×${size} (vision_config.image_size)`,
          { subject: 'preprocessor_config.json' },
        );
      }
      await request.onImage?.(images + i, shown);
      data.set(pixelTensor(shown, config).data, i * plane);
    }
    const t1 = performance.now();
    waited.ms += t1 - t0;
    const out = await runner.runGraph('vision', { pixel_values: { type: 'float32', data, dims: [frames.length, 3, size, size] } });
    const features = out.image_features!;
    const [n, tokens, width] = features.dims as [number, number, number];
    const projected = await runner.runGraph('projector', {
      image_features: { type: 'float32', data: features.data as Float32Array, dims: [n * tokens, width] },
    });
    batches.push({ ...out, image_embeds: projected.image_embeds! });
    visionMs += performance.now() - t1;
    images += frames.length;
  }
  return { ...perImage(spec, batches, images), seconds: { images: waited.ms / 1000, vision: visionMs / 1000 } };
}

/**
 * One image through the tower: its attention-shaped tensors (scores, probabilities, their head mean), the
 * activations of a layer, and its pixels (runtime/memory.ts's header has the measurements); every image is
 * the tower's size whatever its native size.
 */
export function llavaFootprint(spec: LlavaSpec): MediaFootprint {
  const v = spec.vision;
  const n = v.numPositions;
  const F32 = 4;
  return {
    tokens: spec.imageTokenCount,
    towerBytes: (v.numHeads * n * n * TOWER_SCORE_COPIES + n * (v.hiddenSize * 6 + v.intermediateSize * 2) + 3 * v.imageSize * v.imageSize) * F32,
    embedBytes: spec.imageTokenCount * (spec.text.hiddenSize + spec.projector.inputSize) * F32,
  };
}

/** The batches' outputs as one result per image. */
function perImage(spec: LlavaSpec, batches: Record<string, GraphTensor>[], images: number): Omit<EncodedMedia, 'seconds'> {
  const cat = (name: string) => (batches.every((b) => b[name]) ? concatFloat32(batches.map((b) => b[name]!.data as Float32Array)) : undefined);
  const towerTokens = spec.vision.numPositions;
  const n = spec.imageTokenCount;
  const skip = towerTokens - n;
  const grid = spec.vision.gridSize;
  const cls = spec.vision.kind === 'clip' ? cat('cls_attention') : undefined;
  const mean = cat('mean_attention');
  const leading = cat('leading_rows');
  const keys = cat('key_metric');
  const R = leadingRows(spec);
  const layouts: MediaLayout[] = Array.from({ length: images }, () => ({ tokens: n, leading: n - grid * grid, grid: { t: 1, rows: grid, cols: grid } }));
  const salience = layouts.map((_, i): SalienceInputs => {
    const tokenRows = (x: Float32Array | undefined) => x?.slice(i * towerTokens + skip, (i + 1) * towerTokens);
    return {
      received: tokenRows(mean),
      cls: tokenRows(cls),
      summary: leading
        ? (rows) => {
            // Mean of the chosen leading tokens' head-mean attention rows, [R, towerTokens] per image.
            const out = new Float32Array(n);
            for (const r of rows) {
              const row = leading.subarray((i * R + r) * towerTokens + skip, (i * R + r + 1) * towerTokens);
              for (let j = 0; j < n; j++) out[j]! += row[j]! / rows.length;
            }
            return out;
          }
        : undefined,
      summaryRows: leading ? R : 0,
    };
  });
  return {
    embeds: concatFloat32(batches.map((b) => b.image_embeds!.data as Float32Array)),
    features: cat('image_features')!,
    keyMetric: keys && alignRows(keys, images, towerTokens, skip),
    layouts,
    salience,
  };
}

/** Per-image rows of a tower-token tensor [images · towerTokens, width], without the `skip` leading tokens the LLM does not see. */
function alignRows(x: Float32Array, images: number, towerTokens: number, skip: number): Float32Array {
  const width = x.length / (images * towerTokens);
  const n = towerTokens - skip;
  const out = new Float32Array(images * n * width);
  for (let i = 0; i < images; i++) out.set(x.subarray((i * towerTokens + skip) * width, (i + 1) * towerTokens * width), i * n * width);
  return out;
}
