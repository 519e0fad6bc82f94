/**
 * A checkpoint's LLM as a GGUF v3 file that llama.cpp loads: the benches' peer engine (scripts/bench-llama-peer.mjs)
 * runs the same model — the same random weights, in F32 exactly or quantized to Q4_0 — as ours.
 *
 * Format: ggml's docs/gguf.md (v3): header (magic, version, tensor count, metadata count), metadata key/values,
 * tensor infos (name, dims innermost first — numpy's shape reversed —, ggml type, offset into the data), then the
 * data, every tensor aligned to `general.alignment` (32). Names and metadata keys are llama.cpp's for the `qwen2`
 * and `llama` architectures (src/llama-arch.cpp; what convert_hf_to_gguf.py writes for Qwen2ForCausalLM and
 * LlamaForCausalLM): token_embd, blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down}, output_norm, output.
 * The vocabulary is the checkpoint's tokenizer.json as a gpt2-style BPE (tokens, token types, merges), padded to
 * the embedding's rows with `[PADn]` as convert_hf_to_gguf.py pads: the benches feed token ids, so it only has to load.
 *
 * Q4_0 is ggml-quants.c's quantize_row_q4_0_ref, bit for bit: blocks of 32 along a row, d = (the signed value of
 * largest magnitude) / −8 stored as f16, q = min(15, trunc(x / d + 8.5)), two per byte (element j in the low
 * nibble of byte j, element j + 16 in its high nibble); llama.cpp reads x ≈ (q − 8) · d.
 *
 * Usage: node scripts/gguf.mjs CHECKPOINT_DIR OUT.gguf [--type F32|Q4_0]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { TEXT_PREFIX } from '../dist/src/checkpoint/checkpoint.js';
import { ConfigError, InputError } from '../dist/src/errors.js';

const ALIGNMENT = 32;
/** gguf.md `gguf_metadata_value_type`. */
const META = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };
/** ggml.h `ggml_type` (and llama.h `llama_ftype`, the file's `general.file_type`). */
export const GGML_TYPES = {
  F32: { id: 0, fileType: 0, blockSize: 1, blockBytes: 4 },
  Q4_0: { id: 2, fileType: 2, blockSize: 32, blockBytes: 18 },
};
/** llama-vocab.h `llama_token_type`, as gguf stores it in tokenizer.ggml.token_type. */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 };

// ----------------------------------------------------------------------------------------------- Q4_0

/** One row's Q4_0 blocks (quantize_row_q4_0_ref), `x.length` a multiple of 32; float32 arithmetic as in C. */
export function quantizeQ4_0(x, out = new Uint8Array((x.length / 32) * 18), at = 0) {
  const f = Math.fround;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0; b < x.length / 32; b++) {
    const base = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[base + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    const o = at + b * 18;
    setFloat16(view, o, d, true);
    for (let j = 0; j < 16; j++) {
      // (int8_t)(x0 + 8.5f) truncates toward zero; x0 + 8.5 is in [0.5, 16.5], so it is the floor.
      const q0 = Math.min(15, Math.trunc(f(f(x[base + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(f(f(x[base + 16 + j] * id) + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** Q4_0 blocks back to floats as llama.cpp reads them (dequantize_row_q4_0): x = (q − 8) · d. */
export function dequantizeQ4_0(bytes, n) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / 32; b++) {
    const d = getFloat16(view, b * 18, true);
    for (let j = 0; j < 16; j++) {
      const q = bytes[b * 18 + 2 + j];
      out[b * 32 + j] = ((q & 15) - 8) * d;
      out[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------------- the model

/** What the writer supports, checked before anything is written; a typed error names the field otherwise. */
function checkSupported(text, dir) {
  const file = path.join(dir, 'config.json');
  const refuse = (field, value, why) =>
    new ConfigError('CONFIG_UNSUPPORTED', `${file}: ${field} = ${JSON.stringify(value)}: the GGUF writer ${why}`, { subject: field });
  if (text.kind !== 'qwen2' && text.kind !== 'llama') throw refuse('text model', text.kind, 'writes Qwen2 and LLaMA text models only');
  if (text.mropeSection) throw refuse('mrope_section', text.mropeSection, "writes one-row rotary models only (M-RoPE is llama.cpp's qwen2vl architecture)");
  if (text.ropeScaling.type !== 'default') throw refuse('rope_scaling', text.ropeScaling, 'writes unscaled rotary only');
  if (text.outputBias || text.mlpBias) throw refuse('attention_bias / mlp_bias', true, 'writes no o_proj or MLP biases');
  if (text.kind === 'qwen2' && !text.attentionBias) throw refuse('q/k/v bias', false, "expects Qwen2's q/k/v biases");
}

/**
 * LLaMA's q/k rows reordered from rotate-half (transformers) to llama.cpp's adjacent-pair rotary: within each head,
 * row i of the first half and row i of the second half become rows 2i and 2i+1 (convert_hf_to_gguf.py
 * `LlamaModel.permute`). Qwen2 uses llama.cpp's NEOX rotary, which is rotate-half: no reordering.
 */
function permuteRotary(w, heads, cols) {
  const rows = w.length / cols;
  const d = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let j = 0; j < 2; j++) out.set(w.subarray((h * d + j * (d / 2) + i) * cols, (h * d + j * (d / 2) + i + 1) * cols), (h * d + 2 * i + j) * cols);
    }
  }
  return out;
}

/** The GGUF tensors of a checkpoint's LLM: name, ggml dims (innermost first), type and a reader of its float32 data. */
function tensorsOf(ck, type) {
  const t = ck.spec.text;
  const quant = (shape) => (shape.length === 2 ? type : 'F32'); // norms and biases stay F32, as llama.cpp's quantizer leaves them
  const tensors = [];
  const add = (name, source, shape, transform = (x) => x) =>
    tensors.push({ name, dims: [...shape].reverse(), type: quant(shape), read: () => transform(ck.read(source, shape)) });
  const H = t.hiddenSize;
  add('token_embd.weight', `${TEXT_PREFIX}.embed_tokens.weight`, [t.vocabSize, H]);
  for (let i = 0; i < t.numLayers; i++) {
    const m = `${TEXT_PREFIX}.layers.${i}`;
    const rotary = (heads, cols) => (t.kind === 'llama' ? (x) => permuteRotary(x, heads, cols) : undefined);
    add(`blk.${i}.attn_norm.weight`, `${m}.input_layernorm.weight`, [H]);
    for (const [k, heads] of [
      ['q', t.numHeads],
      ['k', t.numKvHeads],
      ['v', t.numKvHeads],
    ]) {
      const perm = k === 'v' ? undefined : rotary(heads, H);
      add(`blk.${i}.attn_${k}.weight`, `${m}.self_attn.${k}_proj.weight`, [heads * t.headDim, H], perm);
      if (t.attentionBias) add(`blk.${i}.attn_${k}.bias`, `${m}.self_attn.${k}_proj.bias`, [heads * t.headDim], k === 'v' ? undefined : rotary(heads, 1));
    }
    add(`blk.${i}.attn_output.weight`, `${m}.self_attn.o_proj.weight`, [H, t.numHeads * t.headDim]);
    add(`blk.${i}.ffn_norm.weight`, `${m}.post_attention_layernorm.weight`, [H]);
    add(`blk.${i}.ffn_gate.weight`, `${m}.mlp.gate_proj.weight`, [t.intermediateSize, H]);
    add(`blk.${i}.ffn_up.weight`, `${m}.mlp.up_proj.weight`, [t.intermediateSize, H]);
    add(`blk.${i}.ffn_down.weight`, `${m}.mlp.down_proj.weight`, [H, t.intermediateSize]);
  }
  add('output_norm.weight', `${TEXT_PREFIX}.norm.weight`, [H]);
  // Tied embeddings: no output tensor, llama.cpp reads token_embd as the head (as transformers ties them).
  if (!t.tieWordEmbeddings && ck.has('lm_head.weight')) add('output.weight', 'lm_head.weight', [t.vocabSize, H]);
  for (const x of tensors) {
    if (x.dims[0] % GGML_TYPES[x.type].blockSize) {
      throw new ConfigError(
        'CONFIG_UNSUPPORTED',
        `${x.name}: rows of ${x.dims[0]} are not whole ${x.type} blocks of ${GGML_TYPES[x.type].blockSize}; write F32`,
        {
          subject: x.name,
        },
      );
    }
  }
  return tensors;
}

/** tokenizer.json as llama.cpp's gpt2 vocabulary, `vocabSize` entries (padded as convert_hf_to_gguf.py pads). */
function vocabularyOf(dir, vocabSize) {
  const file = path.join(dir, 'tokenizer.json');
  let tok;
  try {
    tok = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new ConfigError('TOKENIZER_INVALID', `${file}: not readable as JSON (${cause.message})`, { subject: file, cause });
  }
  if (tok.model?.type !== 'BPE')
    throw new ConfigError('TOKENIZER_INVALID', `${file}: model.type ${JSON.stringify(tok.model?.type)}: the GGUF writer needs a BPE tokenizer`, {
      subject: file,
    });
  const tokens = new Array(vocabSize);
  const types = new Array(vocabSize);
  const put = (id, text, type) => {
    if (id >= vocabSize)
      throw new ConfigError('TOKENIZER_INVALID', `${file}: token ${JSON.stringify(text)} has id ${id}, past the model's ${vocabSize} embeddings`, {
        subject: file,
      });
    tokens[id] = text;
    types[id] = type;
  };
  for (const [text, id] of Object.entries(tok.model.vocab)) put(id, text, TOKEN_TYPE.normal);
  for (const a of tok.added_tokens ?? []) put(a.id, a.content, a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined);
  for (let id = 0; id < vocabSize; id++) if (tokens[id] === undefined) [tokens[id], types[id]] = [`[PAD${id}]`, TOKEN_TYPE.unused];
  const merges = (tok.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const special = (text) => tok.added_tokens?.find((a) => a.content === text)?.id;
  return { tokens, types, merges, eos: special('<|im_end|>') ?? special('<|endoftext|>'), pad: special('<|endoftext|>') };
}

/** The metadata llama.cpp reads for the `qwen2` / `llama` architectures, in gguf.md's key names. */
function metadataOf(ck, type, vocab) {
  const t = ck.spec.text;
  const a = t.kind;
  const u32 = (value) => ({ type: META.UINT32, value });
  const f32 = (value) => ({ type: META.FLOAT32, value });
  const str = (value) => ({ type: META.STRING, value });
  const m = {
    'general.architecture': str(a),
    'general.name': str(path.basename(ck.dir)),
    'general.alignment': u32(ALIGNMENT),
    'general.file_type': u32(GGML_TYPES[type].fileType),
    [`${a}.context_length`]: u32(t.maxPositionEmbeddings),
    [`${a}.embedding_length`]: u32(t.hiddenSize),
    [`${a}.block_count`]: u32(t.numLayers),
    [`${a}.feed_forward_length`]: u32(t.intermediateSize),
    [`${a}.attention.head_count`]: u32(t.numHeads),
    [`${a}.attention.head_count_kv`]: u32(t.numKvHeads),
    [`${a}.attention.key_length`]: u32(t.headDim),
    [`${a}.attention.value_length`]: u32(t.headDim),
    [`${a}.rope.dimension_count`]: u32(t.headDim),
    [`${a}.rope.freq_base`]: f32(t.ropeTheta),
    [`${a}.attention.layer_norm_rms_epsilon`]: f32(t.rmsNormEps),
    [`${a}.vocab_size`]: u32(t.vocabSize),
    'tokenizer.ggml.model': str('gpt2'),
    'tokenizer.ggml.pre': str('qwen2'),
    'tokenizer.ggml.tokens': { type: META.ARRAY, itemType: META.STRING, value: vocab.tokens },
    'tokenizer.ggml.token_type': { type: META.ARRAY, itemType: META.INT32, value: vocab.types },
    'tokenizer.ggml.merges': { type: META.ARRAY, itemType: META.STRING, value: vocab.merges },
    'tokenizer.ggml.add_bos_token': { type: META.BOOL, value: false },
  };
  if (vocab.eos !== undefined) m['tokenizer.ggml.eos_token_id'] = u32(vocab.eos);
  if (vocab.pad !== undefined) m['tokenizer.ggml.padding_token_id'] = u32(vocab.pad);
  return m;
}

// ---------------------------------------------------------------------------------------------- the file

/** Little-endian bytes of the header, metadata and tensor infos, grown as written. */
class Bytes {
  parts = [];
  length = 0;
  push(buf) {
    this.parts.push(buf);
    this.length += buf.length;
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(type, v) {
    if (type === META.UINT32) this.u32(v);
    else if (type === META.INT32) this.i32(v);
    else if (type === META.FLOAT32) this.f32(v);
    else if (type === META.BOOL) this.push(Buffer.from([v ? 1 : 0]));
    else if (type === META.STRING) this.str(v);
    else throw new Error(`gguf metadata type ${type} not written`);
  }
}

const align = (n) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

function tensorBytes({ dims, type }) {
  const g = GGML_TYPES[type];
  return (dims.reduce((a, b) => a * b, 1) / g.blockSize) * g.blockBytes;
}

function encode(values, type) {
  if (type === 'F32') return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return Buffer.from(quantizeQ4_0(values).buffer);
}

/** Writes `tensors` and `metadata` as GGUF v3 to `file`, one tensor in memory at a time. Returns the file's size. */
export function writeGguf(file, metadata, tensors) {
  const head = new Bytes();
  head.push(Buffer.from('GGUF', 'latin1'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(Object.keys(metadata).length);
  for (const [key, { type, itemType, value }] of Object.entries(metadata)) {
    head.str(key);
    head.u32(type);
    if (type === META.ARRAY) {
      head.u32(itemType);
      head.u64(value.length);
      for (const v of value) head.value(itemType, v);
    } else head.value(type, value);
  }
  let offset = 0;
  for (const x of tensors) {
    head.str(x.name);
    head.u32(x.dims.length);
    for (const d of x.dims) head.u64(d);
    head.u32(GGML_TYPES[x.type].id);
    head.u64(offset);
    offset = align(offset + tensorBytes(x));
  }
  const dataStart = align(head.length);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, Buffer.concat([...head.parts, Buffer.alloc(dataStart - head.length)]));
    let at = 0;
    for (const x of tensors) {
      const bytes = encode(x.read(), x.type);
      if (bytes.length !== tensorBytes(x)) throw new Error(`${x.name}: ${bytes.length} bytes, expected ${tensorBytes(x)}`);
      fs.writeSync(fd, bytes);
      at += bytes.length;
      const pad = align(at) - at;
      if (pad) fs.writeSync(fd, Buffer.alloc(pad));
      at += pad;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return dataStart + offset;
}

/**
 * The LLM of the checkpoint at `dir` as GGUF `file`, its 2-D weights in `type` (F32: the checkpoint's values
 * exactly; Q4_0: llama.cpp's 4-bit blocks of 32), norms and biases in F32. Returns { file, bytes, type, arch, tensors }.
 */
export function checkpointToGguf(dir, file, { type = 'F32' } = {}) {
  if (!GGML_TYPES[type]) throw new InputError('OPTION_INVALID', `GGUF type ${JSON.stringify(type)}: F32 or Q4_0`, { subject: 'type' });
  const ck = openCheckpoint(dir);
  try {
    checkSupported(ck.spec.text, dir);
    const tensors = tensorsOf(ck, type);
    const metadata = metadataOf(ck, type, vocabularyOf(dir, ck.spec.text.vocabSize));
    const bytes = writeGguf(file, metadata, tensors);
    return { file, bytes, type, arch: ck.spec.text.kind, tensors: tensors.length };
  } finally {
    ck.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, out] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const type = process.argv.includes('--type') ? process.argv[process.argv.indexOf('--type') + 1] : 'F32';
  if (!dir || !out) {
    console.error('usage: node scripts/gguf.mjs CHECKPOINT_DIR OUT.gguf [--type F32|Q4_0]');
    process.exit(2);
  }
  const r = checkpointToGguf(dir, out, { type });
  console.log(`${r.file}: ${r.arch}, ${r.tensors} tensors, ${r.type}, ${(r.bytes / 2 ** 20).toFixed(1)} MiB`);
}
