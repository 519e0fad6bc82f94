/**
 * The text side of a checkpoint: `tokenizer.json` (run by @huggingface/tokenizers, no hand-written BPE),
 * the special tokens of `tokenizer_config.json`, the chat template, the EOS ids and the image token.
 *
 * Files read from the checkpoint folder (names as transformers saves them):
 * - `tokenizer.json`, `tokenizer_config.json`: required;
 * - `chat_template.jinja`, then `chat_template.json`, then `tokenizer_config.json#chat_template`: the first
 *   one present is the chat template (transformers' ProcessorMixin prefers the processor-level files, which is
 *   where llava-hf keeps the template that knows about images);
 * - `processor_config.json`: `image_token` (LlavaProcessor's default is "<image>");
 * - `generation_config.json`: extra `eos_token_id`s.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError, InputError } from '../errors.js';
import { TokenStream } from './stream.js';

export interface ChatTemplateSource {
  text: string;
  /** The file the template came from (for error messages). */
  file: string;
}

/** transformers' `special_tokens_map`: what chat templates see as `bos_token`, `eos_token`, ... */
export interface SpecialTokensMap {
  bos_token?: string;
  eos_token?: string;
  unk_token?: string;
  sep_token?: string;
  pad_token?: string;
  cls_token?: string;
  mask_token?: string;
  additional_special_tokens?: string[];
}

export interface DecodeOptions {
  /** Drop special tokens (`<|im_end|>`, `<image>`, ...) from the text. Default false, as in transformers. */
  skipSpecial?: boolean;
  /**
   * transformers' clean_up_tokenization_spaces (" ." → "." etc.). Default: tokenizer_config's value, else
   * false (transformers' default since 4.45).
   */
  cleanUpSpaces?: boolean;
}

export interface StreamOptions {
  skipSpecial?: boolean;
  /** Prompt ids preceding the generated ones (the last few suffice); see TokenStream. */
  contextIds?: readonly number[];
}

/** The parsed contents of a checkpoint's text files; `loadTextProcessor` reads them from disk. */
export interface TextProcessorFiles {
  dir: string;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  chatTemplate: ChatTemplateSource | null;
  processorConfig: Record<string, unknown> | null;
  generationConfig: Record<string, unknown> | null;
  /** The image placeholder when processor_config.json names none: the model family's (`<image>` by default). */
  defaultImageToken?: string;
  /** The video placeholder when processor_config.json names none: the model family's, if it takes videos as such. */
  defaultVideoToken?: string;
}

const TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

export class TextProcessor {
  readonly dir: string;
  readonly chatTemplate: ChatTemplateSource | null;
  readonly specialTokens: Readonly<SpecialTokensMap>;
  /** Generation stops on any of these: tokenizer_config `eos_token` plus generation_config `eos_token_id`. */
  readonly eosTokenIds: readonly number[];
  /** The processor's image placeholder string (processor_config `image_token`, default "<image>"). */
  readonly imageToken: string;
  /** Its id, or null when the vocabulary has no such token (a text-only tokenizer). */
  readonly imageTokenId: number | null;
  /** A video's placeholder (processor_config `video_token`, or the model family's; null where the family has none). */
  readonly videoToken: string | null;
  readonly videoTokenId: number | null;
  /** One past the largest id the tokenizer knows (base vocabulary plus added tokens). */
  readonly vocabSize: number;
  private readonly tokenizer: Tokenizer;
  private readonly specialIds: ReadonlySet<number>;
  private readonly cleanUpSpaces: boolean;

  constructor(files: TextProcessorFiles) {
    const tokenizerFile = path.join(files.dir, 'tokenizer.json');
    this.dir = files.dir;
    try {
      // Tokenizer validates that model/normalizer/pre_tokenizer/post_processor/decoder keys exist.
      this.tokenizer = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
    } catch (cause) {
      throw new ConfigError('TOKENIZER_INVALID', `${tokenizerFile} is not a usable tokenizer: ${errText(cause)}`, {
        subject: tokenizerFile,
        cause,
      });
    }
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const added = [...this.tokenizer.get_added_tokens_decoder().entries()];
    this.specialIds = new Set(added.filter(([, t]) => t.special).map(([id]) => id));

    const configFile = path.join(files.dir, 'tokenizer_config.json');
    const special: SpecialTokensMap = {};
    for (const key of TOKEN_KEYS) {
      const value = tokenContent(files.tokenizerConfig[key], `${configFile}#${key}`);
      if (value !== null) special[key] = value;
    }
    const extra = files.tokenizerConfig.additional_special_tokens;
    if (Array.isArray(extra)) {
      special.additional_special_tokens = extra.map((t, i) => tokenContent(t, `${configFile}#additional_special_tokens[${i}]`) ?? '');
    }
    this.specialTokens = special;
    // transformers >= 4.45 defaults clean_up_tokenization_spaces to False; tokenizers.js defaults to true.
    this.cleanUpSpaces = files.tokenizerConfig.clean_up_tokenization_spaces === true;
    this.chatTemplate = files.chatTemplate;

    const eos: number[] = [];
    if (special.eos_token !== undefined) eos.push(this.requireId(special.eos_token, `${configFile}#eos_token`));
    const genFile = path.join(files.dir, 'generation_config.json');
    const genEos = files.generationConfig?.eos_token_id;
    for (const [i, id] of (Array.isArray(genEos) ? genEos : genEos == null ? [] : [genEos]).entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ConfigError('TOKENIZER_INVALID', `${genFile}: eos_token_id[${i}] = ${JSON.stringify(id)} is not a token id below ${this.vocabSize}`, {
          subject: `${genFile}#eos_token_id`,
        });
      }
      if (!eos.includes(id)) eos.push(id);
    }
    this.eosTokenIds = eos;

    const imageToken = files.processorConfig?.image_token;
    this.imageToken = typeof imageToken === 'string' && imageToken.length > 0 ? imageToken : (files.defaultImageToken ?? '<image>');
    this.imageTokenId = this.tokenizer.token_to_id(this.imageToken) ?? null;
    const videoToken = files.processorConfig?.video_token;
    this.videoToken = typeof videoToken === 'string' && videoToken.length > 0 ? videoToken : (files.defaultVideoToken ?? null);
    this.videoTokenId = this.videoToken === null ? null : (this.tokenizer.token_to_id(this.videoToken) ?? null);
  }

  /**
   * Text → ids, with no special tokens added (no BOS from the post-processor): a rendered chat template already
   * contains them, and transformers' apply_chat_template tokenizes with add_special_tokens=False for that
   * reason. Special-token strings in the text (`<|im_start|>`, `<image>`) become their ids.
   */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.decodeWith(ids, options.skipSpecial ?? false, options.cleanUpSpaces ?? this.cleanUpSpaces);
  }

  /** A streaming detokenizer; the concatenation of its output equals `decode` of the same ids. */
  createStream(options: StreamOptions = {}): TokenStream {
    const skip = options.skipSpecial ?? false;
    // No space clean-up while streaming: it rewrites text across token boundaries.
    return new TokenStream((ids) => this.decodeWith(ids, skip, false), options.contextIds ?? []);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  private decodeWith(ids: readonly number[], skipSpecial: boolean, cleanUp: boolean): string {
    if (ids.length === 0) return '';
    for (const [i, id] of ids.entries()) {
      if (!Number.isInteger(id) || id < 0) {
        throw new InputError('OPTION_INVALID', `token id ids[${i}] = ${id} is not a token id (an integer ≥ 0)`, { subject: `ids[${i}]` });
      }
    }
    // Ids past the tokenizer's vocabulary decode as nothing, as transformers' (Rust tokenizers') decode skips
    // ids it has no token for: real checkpoints pad the embedding past the tokenizer (llava-1.5: 32064 rows,
    // 32002 tokens), and a model can generate those ids.
    const known = ids.filter((id) => id < this.vocabSize);
    return this.tokenizer.decode(known, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: cleanUp });
  }

  private requireId(token: string, subject: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) {
      throw new ConfigError('TOKENIZER_INVALID', `${subject} = ${JSON.stringify(token)} is not in the vocabulary of tokenizer.json`, { subject });
    }
    return id;
  }
}

/** Reads a checkpoint folder's tokenizer files (see the file comment for which ones) into a TextProcessor. */
export async function loadTextProcessor(dir: string, options: { imageToken?: string; videoToken?: string } = {}): Promise<TextProcessor> {
  const tokenizerJson = await readJson(path.join(dir, 'tokenizer.json'), true);
  const tokenizerConfig = await readJson(path.join(dir, 'tokenizer_config.json'), true);
  return new TextProcessor({
    dir,
    tokenizerJson: tokenizerJson!,
    tokenizerConfig: tokenizerConfig!,
    chatTemplate: await findChatTemplate(dir, tokenizerConfig!),
    processorConfig: await readJson(path.join(dir, 'processor_config.json'), false),
    defaultImageToken: options.imageToken,
    defaultVideoToken: options.videoToken,
    generationConfig: await readJson(path.join(dir, 'generation_config.json'), false),
  });
}

async function findChatTemplate(dir: string, tokenizerConfig: Record<string, unknown>): Promise<ChatTemplateSource | null> {
  const jinjaFile = path.join(dir, 'chat_template.jinja');
  const jinja = await readText(jinjaFile);
  if (jinja !== null) return { text: jinja, file: jinjaFile };
  const jsonFile = path.join(dir, 'chat_template.json');
  const json = await readJson(jsonFile, false);
  if (json !== null) return { text: templateString(json.chat_template, `${jsonFile}#chat_template`), file: jsonFile };
  if (tokenizerConfig.chat_template == null) return null;
  const configFile = path.join(dir, 'tokenizer_config.json');
  return { text: templateString(tokenizerConfig.chat_template, `${configFile}#chat_template`), file: configFile };
}

/** A template is a string, or (tokenizer_config) a list of {name, template}: transformers uses "default". */
function templateString(value: unknown, subject: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const entry = value.find((t) => isRecord(t) && t.name === 'default');
    if (entry && typeof entry.template === 'string') return entry.template;
  }
  throw new ConfigError('TOKENIZER_INVALID', `${subject} must be a template string or a list with a "default" entry`, { subject });
}

/** tokenizer_config tokens are strings or serialized AddedTokens ({"__type": "AddedToken", "content": ...}). */
function tokenContent(value: unknown, subject: string): string | null {
  if (value == null) return null;
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value.content === 'string') return value.content;
  throw new ConfigError('TOKENIZER_INVALID', `${subject} must be a string or an AddedToken object`, { subject });
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError('TOKENIZER_INVALID', `cannot read ${file}: ${errText(cause)}`, { subject: file, cause });
  }
}

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | null> {
  const text = await readText(file);
  if (text === null) {
    if (!required) return null;
    throw new ConfigError('TOKENIZER_INVALID', `${file} is missing; the checkpoint needs it to tokenize text`, { subject: file });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('TOKENIZER_INVALID', `${file} is not valid JSON: ${errText(cause)}`, { subject: file, cause });
  }
  if (!isRecord(value)) throw new ConfigError('TOKENIZER_INVALID', `${file} must hold a JSON object`, { subject: file });
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
