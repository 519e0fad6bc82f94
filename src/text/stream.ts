/**
 * Incremental detokenizer: feed generated ids one at a time, get back only text that can no longer change.
 *
 * Why not decode each id on its own: byte-level BPE (GPT-2/Qwen) and SentencePiece byte fallback (LLaMA) can
 * split one UTF-8 character over several tokens, so a lone token decodes to U+FFFD; and SentencePiece decoders
 * strip the leading space of the *first* token of whatever they decode. The scheme below is the one of
 * text-generation-inference / vLLM (`decode_token` with `prefix_offset` / `read_offset`): decode a small window
 * that starts at already-emitted tokens, emit the part past the previously decoded window, and hold back while
 * the window still ends in U+FFFD (an incomplete character).
 */

export type DecodeFn = (ids: readonly number[]) => string;

const REPLACEMENT = '\uFFFD';

export class TokenStream {
  private readonly ids: number[];
  /** Start of the decode window (tokens whose text was emitted in the previous step). */
  private prefixOffset: number;
  /** Everything before this index has been emitted. */
  private readOffset: number;
  private emitted = '';

  /**
   * @param decode decodes a list of ids (no clean-up of tokenization spaces: that is not local to a window).
   * @param contextIds ids already in the sequence before the first pushed one (e.g. the prompt's last few
   *   tokens). They are never emitted; they only give the first generated token its correct leading space.
   */
  constructor(
    private readonly decode: DecodeFn,
    contextIds: readonly number[] = [],
  ) {
    this.ids = [...contextIds];
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Feeds one id; returns the text that became stable with it ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith(REPLACEMENT)) {
      // Decoders here are prefix-preserving (the window's first token is the same in both decodes), so the
      // new text extends the old; TGI slices by length the same way.
      const delta = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      this.emitted += delta;
      return delta;
    }
    return '';
  }

  /**
   * Emits whatever is still held back, as `decode` renders it (a truncated character becomes U+FFFD, exactly
   * as a one-shot decode of the same ids would). Call once generation has ended.
   */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    const delta = newText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.emitted += delta;
    return delta;
  }

  /** All text emitted so far. */
  get text(): string {
    return this.emitted;
  }
}
