/**
 * config.json `quantization_config` → how the checkpoint's linear weights are stored. Only AutoAWQ's GEMM
 * format is read (transformers/utils/quantization_config.py `AwqConfig`, whose defaults fill absent fields):
 * `<module>.qweight` int32 [in, out/8], `<module>.qzeros` int32 [in/group, out/8], `<module>.scales` f16
 * [in/group, out], w = (q − z) · s. Anything else is refused here, naming the field and its value.
 *
 * `modules_to_not_convert` names modules kept in float by substring, as both writers match it: AutoAWQ's
 * `exclude_layers_to_not_quantize` (awq/utils/module.py: `any(key in name for key in modules_to_not_convert)`)
 * and transformers' `replace_with_awq_linear` (integrations/awq.py: the same test on the dotted module path).
 * AutoAWQ only ever quantizes the linears of the LLM's decoder layers (awq/models/base.py
 * `_load_quantized_modules` walks `get_model_layers(model)`); its Qwen2-VL / Qwen2.5-VL classes add
 * `modules_to_not_convert = ["visual"]` for transformers' loader, which would otherwise convert the tower too.
 */
import { CheckpointError, ConfigError } from '../errors.js';
import { Fields } from './config-fields.js';

export interface AwqStorage {
  method: 'awq';
  bits: 4;
  /** Input features per scale / zero point: a MatMulNBits block size. */
  groupSize: 16 | 32 | 64 | 128;
  zeroPoint: true;
  version: 'gemm';
  /** Module name parts AutoAWQ left in float (`modules_to_not_convert`). */
  modulesNotConverted: string[];
}

export type WeightStorage = AwqStorage;

const GROUP_SIZES = [16, 32, 64, 128] as const;

/** The checkpoint's quantized storage, or undefined for a float checkpoint. */
export function parseQuantizationConfig(config: Record<string, unknown>, file: string): WeightStorage | undefined {
  const raw = config['quantization_config'];
  if (raw === undefined || raw === null) return undefined;
  const q = new Fields(config, '', file).sub('quantization_config', {});
  const method = q.obj['quant_method'];
  if (method !== 'awq') throw q.unsupported('quant_method', method, ['awq']);
  // AwqConfig lower-cases `version` and `backend` (AWQLinearVersion.from_str); older AutoAWQ wrote "GEMM".
  const version = lower(q.obj['version'] ?? 'gemm');
  if (version !== 'gemm') {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: quantization_config.version = ${JSON.stringify(q.obj['version'])} is not supported; supported: gemm ` +
        '(the gemv, gemv_fast, marlin, exllama and ipex versions pack their weights for other kernels)',
      { subject: 'quantization_config.version' },
    );
  }
  const backend = lower(q.obj['backend'] ?? 'autoawq');
  // llm-awq (the original repository) packs its GEMV format differently from AutoAWQ's GEMM.
  if (backend !== 'autoawq') throw q.unsupported('backend', q.obj['backend'], ['autoawq']);
  const bits = q.obj['bits'] ?? 4;
  if (bits !== 4) throw q.unsupported('bits', bits, ['4']);
  const zeroPoint = q.obj['zero_point'] ?? true;
  if (zeroPoint !== true) throw q.unsupported('zero_point', zeroPoint, ['true']);
  const groupSize = q.obj['group_size'] ?? 128;
  if (!GROUP_SIZES.includes(groupSize as (typeof GROUP_SIZES)[number])) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: quantization_config.group_size = ${JSON.stringify(groupSize)} is not supported; supported: ${GROUP_SIZES.join(', ')} ` +
        "(onnxruntime's MatMulNBits block sizes)",
      { subject: 'quantization_config.group_size' },
    );
  }
  const skip = q.obj['modules_to_not_convert'] ?? [];
  if (!Array.isArray(skip) || !skip.every((m) => typeof m === 'string')) {
    throw q.invalid('modules_to_not_convert', 'must be a list of module names or null');
  }
  return { method: 'awq', bits: 4, groupSize: groupSize as AwqStorage['groupSize'], zeroPoint: true, version: 'gemm', modulesNotConverted: skip };
}

/**
 * Refuses a checkpoint that stores a module quantized (`<module>.qweight`) which its own
 * `modules_to_not_convert` keeps in float: transformers would load that module as a float nn.Linear, find no
 * `<module>.weight`, and initialise it randomly. `tensors` are [on-disk name, canonical name] pairs.
 */
export function checkKeptInFloat(storage: WeightStorage, tensors: Iterable<readonly [string, string]>, dir: string): void {
  for (const [onDisk, canonical] of tensors) {
    if (!onDisk.endsWith('.qweight')) continue;
    const [diskModule, module] = [onDisk, canonical].map((n) => n.slice(0, -'.qweight'.length)) as [string, string];
    const key = storage.modulesNotConverted.find((k) => diskModule.includes(k) || module.includes(k));
    if (key === undefined) continue;
    throw new CheckpointError(
      'CHECKPOINT_CORRUPT',
      `${onDisk} in ${dir} is stored quantized, but config.json quantization_config.modules_to_not_convert keeps ${JSON.stringify(key)} ` +
        `in float (AutoAWQ and transformers leave those modules nn.Linear): store ${diskModule}.weight in float, or drop ${JSON.stringify(key)} from modules_to_not_convert`,
      { subject: onDisk },
    );
  }
}

function lower(v: unknown): unknown {
  return typeof v === 'string' ? v.toLowerCase() : v;
}
