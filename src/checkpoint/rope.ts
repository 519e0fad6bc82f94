/**
 * Rotary-embedding parameters, as transformers' modeling_rope_utils.py reads them: the dict lives under
 * `rope_scaling` (older configs) or `rope_parameters` (newer ones, which also carry `rope_theta`); its type is
 * `rope_type`, or the legacy key `type`. We run 'default', 'linear' and 'llama3'; anything else is refused
 * rather than silently computed as default.
 */
import type { RopeScaling } from './spec.js';
import type { Fields } from './config-fields.js';

const SUPPORTED = ['default', 'linear', 'llama3', 'mrope'] as const;

export interface RopeConfig {
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /**
   * Qwen2-VL's multimodal rotary: `mrope_section`, under `type: "mrope"` (the published configs) or beside
   * `type: "default"` (transformers >= 4.52 saves it so); the frequencies themselves are the default ones.
   */
  mropeSection?: [number, number, number];
}

export function readRopeScaling(text: Fields, defaultTheta: number): RopeConfig {
  const key = text.obj['rope_parameters'] != null ? 'rope_parameters' : 'rope_scaling';
  const raw = text.obj[key];
  // `rope_theta` at the text-config level wins; newer configs keep it inside rope_parameters.
  let ropeTheta = defaultTheta;
  if ('rope_theta' in text.obj) ropeTheta = text.posNum('rope_theta');
  if (raw == null) return { ropeTheta, ropeScaling: { type: 'default' } };
  const rope = text.sub(key, {});
  if (!('rope_theta' in text.obj) && 'rope_theta' in rope.obj) ropeTheta = rope.posNum('rope_theta');
  const typeKey = 'rope_type' in rope.obj ? 'rope_type' : 'type';
  const type = rope.obj[typeKey] ?? 'default';
  const section = rope.obj['mrope_section'];
  if (section !== undefined && type !== 'default' && type !== 'mrope') throw rope.unsupported('rope_type', type, ['default', 'mrope']);
  switch (type) {
    case 'mrope':
    case 'default':
      return { ropeTheta, ropeScaling: { type: 'default' }, ...(section !== undefined && { mropeSection: mropeSection(rope) }) };
    case 'linear':
      return { ropeTheta, ropeScaling: { type: 'linear', factor: rope.posNum('factor') } };
    case 'llama3': {
      // _validate_llama3_parameters requires all four fields, and low_freq_factor < high_freq_factor.
      const lowFreqFactor = rope.posNum('low_freq_factor');
      const highFreqFactor = rope.posNum('high_freq_factor');
      if (highFreqFactor <= lowFreqFactor) throw rope.invalid('high_freq_factor', `must exceed low_freq_factor ${lowFreqFactor}`);
      return {
        ropeTheta,
        ropeScaling: {
          type: 'llama3',
          factor: rope.posNum('factor'),
          lowFreqFactor,
          highFreqFactor,
          originalMaxPositionEmbeddings: rope.posInt('original_max_position_embeddings'),
        },
      };
    }
    default:
      // Name the canonical field even when the config used the legacy `type` key.
      throw rope.unsupported('rope_type', type, SUPPORTED);
  }
}

/** `mrope_section`: three positive integers (temporal, height, width rotary half-dimensions). */
function mropeSection(rope: Fields): [number, number, number] {
  const v = rope.obj['mrope_section'];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isSafeInteger(x) && x > 0)) {
    throw rope.invalid('mrope_section', 'must be three positive integers (temporal, height, width)');
  }
  return v as [number, number, number];
}
