/**
 * The typed model spec: everything downstream (graph builder, runtime, session) needs to know about a
 * checkpoint, validated once from `config.json` by its family's reader (src/families/<family>/config.ts).
 * Field names follow transformers' config attributes, in camelCase. Every family's spec extends
 * `ModelSpecBase`: the LLM (a LLaMA / Qwen2 decoder) is shared, the vision side is the family's own.
 */

export type VisionActivation = 'quick_gelu' | 'gelu' | 'gelu_pytorch_tanh' | 'gelu_new';
export type ProjectorActivation = 'gelu' | 'gelu_pytorch_tanh' | 'quick_gelu' | 'relu' | 'silu';

export interface VisionSpec {
  /** CLIP: CLS token, pre-layernorm, learned position ids over (1 + patches). SigLIP: no CLS, no pre-layernorm. */
  kind: 'clip' | 'siglip';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  act: VisionActivation;
  layerNormEps: number;
  /** Patches per side: imageSize / patchSize. */
  gridSize: number;
  /** Tokens the tower emits per image: patches (+1 for CLIP's CLS). */
  numPositions: number;
}

export interface TextSpec {
  kind: 'llama' | 'qwen2';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  /** q/k/v projections carry a bias (Qwen2 always; LLaMA when `attention_bias`). */
  attentionBias: boolean;
  /** o_proj bias (LLaMA `attention_bias` also covers o_proj; Qwen2 never). */
  outputBias: boolean;
  /** gate/up/down biases (LLaMA `mlp_bias`). */
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  act: 'silu';
  /**
   * Multimodal rotary (Qwen2-VL's M-RoPE): the rotary half-dimensions each of the temporal, height and width
   * position rows drives (`mrope_section`, summing to headDim / 2). Absent: one position row.
   */
  mropeSection?: readonly [number, number, number];
}

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ProjectorSpec {
  act: ProjectorActivation;
  bias: boolean;
  /** Input width: vision hidden size times the number of feature layers concatenated. */
  inputSize: number;
  outputSize: number;
}

/** What every family's spec has: its name, the architecture it was read as, the LLM and the image token. */
export interface ModelSpecBase {
  /** The family (src/families/registry.ts) that reads, builds and runs this checkpoint. */
  family: string;
  /** config.json `architectures[0]`. */
  architecture: string;
  text: TextSpec;
  /** The token id the prompt holds once per visual token. */
  imageTokenId: number;
  /** A video's token id, where the family takes videos as such (families/family.ts `videoToken`). */
  videoTokenId?: number;
}

export interface LlavaSpec extends ModelSpecBase {
  family: 'llava';
  architecture: 'LlavaForConditionalGeneration';
  vision: VisionSpec;
  text: TextSpec;
  projector: ProjectorSpec;
  /**
   * Indices into the vision tower's `hidden_states` tuple (0 = embeddings, i = output of layer i), already
   * resolved from negative config values. Several layers are concatenated on the hidden axis.
   */
  featureLayers: number[];
  /**
   * `default` drops token 0 of the selected hidden states before the projector (CLIP's CLS; on a SigLIP tower,
   * which has no CLS, transformers still drops the first patch: modeling_llava `selected_image_feature[:, 1:]`);
   * `full` keeps every token.
   */
  selectStrategy: 'default' | 'full';
  imageTokenId: number;
  /** LLM tokens one image becomes: `vision.numPositions`, minus 1 when the strategy is `default`. */
  imageTokenCount: number;
}
