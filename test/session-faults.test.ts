/**
 * A turn under faults: ids the tokenizer does not know, logits that are not finite, a prompt past the model's
 * rotary range, a decode its consumer stops reading. Each ends in a typed error or a defined answer, and the
 * conversation stays usable: a failed or abandoned turn leaves it as it was before the turn.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR as TEST_FIXTURES, writeTinyLlava } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';
import { pngHeader } from './helpers/images.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
/** The bundled tokenizer's ids are 0-259; a larger `vocab` pads the embedding and the head past it. */
const TOKENIZER_VOCAB = 260;

/** Overwrites a float32 tensor of a written checkpoint with `value` (the header's offsets, as safetensors lays them out). */
function fillTensor(file: string, name: string, value: number): void {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const entry = header[name];
  if (!entry || entry.dtype !== 'F32') throw new Error(`${name}: no F32 tensor in ${file} (${Object.keys(header).join(', ')})`);
  const [start, end] = entry.data_offsets;
  for (let at = 8 + headerLength + start; at < 8 + headerLength + end; at += 4) bytes.writeFloatLE(value, at);
  fs.writeFileSync(file, bytes);
}

describe('ids past the tokenizer', () => {
  let model: Model;
  beforeAll(async () => {
    const dir = tempDir('faults-padded');
    writeTinyLlava(dir, { vocab: 400, seed: 3 });
    model = await engine.loadModel(dir, { cacheDir: tempDir('faults-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('decode as nothing, as transformers decodes them, and the next turn continues the cache', async () => {
    const chat = model.chat({ maxNewTokens: 24 });
    const first = await chat.ask({ text: 'Tell me something.' });
    const unknown = first.tokenIds.filter((id) => id >= TOKENIZER_VOCAB);
    expect(unknown.length, 'a random head over 400 ids generates some past the tokenizer').toBeGreaterThan(0);
    expect(first.text).toBe(
      model.text.decode(
        first.tokenIds.filter((id) => id < TOKENIZER_VOCAB),
        { skipSpecial: true },
      ),
    );
    const second = await chat.ask({ text: 'And then?' });
    expect(second.timings.cachedTokens).toBeGreaterThan(first.promptTokenIds.length);
    expect(() => model.text.decode([-1])).toThrow(expect.objectContaining({ code: 'OPTION_INVALID', subject: 'ids[0]' }));
  });
});

describe('a turn that fails or is abandoned', () => {
  let model: Model;
  beforeAll(async () => {
    const dir = tempDir('faults-short');
    // A short rotary range: 96 positions.
    writeTinyLlava(dir, { seed: 5, configPatch: { text: { max_position_embeddings: 96 } } });
    model = await engine.loadModel(dir, { cacheDir: tempDir('faults-graphs'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('a prompt past max_position_embeddings is refused before the cache grows; an answer stops where the positions end', async () => {
    const chat = model.chat({ maxNewTokens: 200, minNewTokens: 200 });
    const long = 'word '.repeat(120);
    await expect(chat.ask({ text: long })).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW', subject: 'max_position_embeddings' });
    const answer = await chat.ask({ text: 'Hi' });
    expect(answer.timings.cachedTokens).toBe(0);
    expect(answer.stopReason).toBe('length');
    // The cache holds the prompt and every fed token: positions 0..95.
    expect(answer.promptTokenIds.length + answer.tokenIds.length - 1).toBe(96);
  });

  it('a decode its consumer stops reading rolls the turn back: the next turn starts from the cache before it', async () => {
    const chat = model.chat({ maxNewTokens: 8, minNewTokens: 8 });
    const first = await chat.ask({ text: 'Hi' });
    const cachedAfterFirst = first.promptTokenIds.length + first.tokenIds.length - 1;
    for await (const event of chat.stream({ text: 'Go on' })) {
      expect(event.id).toBeDefined();
      break;
    }
    const next = await chat.ask({ text: 'Go on' });
    expect(next.timings.cachedTokens).toBe(cachedAfterFirst);
    expect(chat.messages).toHaveLength(4);
  });
});

describe('non-finite logits', () => {
  it('stop the turn with a typed error naming where, and leave the conversation as it was', async () => {
    const dir = tempDir('faults-nan');
    writeTinyLlava(dir, { seed: 6 });
    const file = path.join(dir, 'model.safetensors');
    const header = JSON.parse(
      fs
        .readFileSync(file)
        .subarray(8, 8 + Number(fs.readFileSync(file).readBigUInt64LE(0)))
        .toString('utf8'),
    );
    fillTensor(
      file,
      Object.keys(header).find((k) => k.endsWith('lm_head.weight'))!,
      NaN,
    );
    const model = await engine.loadModel(dir, { cacheDir: tempDir('faults-graphs'), threads: 1 });
    try {
      const chat = model.chat({ maxNewTokens: 4 });
      const err = await chat.ask({ text: 'Hi' }).catch((e) => e);
      expect(err).toBeInstanceOf(engine.RuntimeError);
      expect(err).toMatchObject({ code: 'NON_FINITE', subject: 'logits' });
      expect(err.message).toContain("the prompt's last position");
      // Rolled back: the failed turn is not held, and the next one starts from an empty cache.
      await expect(chat.ask({ text: 'Hi' })).rejects.toMatchObject({ code: 'NON_FINITE' });
      expect(chat.messages).toHaveLength(0);
    } finally {
      await model.close();
    }
  });
});

describe('a policy the model cannot run', () => {
  it('in-LLM drops after a layer the model does not have are refused when the chat is made', async () => {
    const model = await engine.loadModel(path.join(TEST_FIXTURES, 'llava-clip-llama-tiny'), { cacheDir: tempDir('faults-graphs'), threads: 1 });
    try {
      const layers = model.spec.text.numLayers;
      expect(() => model.chat({ policy: { method: 'fastv', layer: layers, dropRatio: 0.5 } })).toThrow(
        expect.objectContaining({ code: 'OPTION_INVALID', subject: 'policy' }),
      );
      expect(() => model.chat({ policy: { method: 'pdrop', layers: [1, layers + 3], keepRatios: [0.5, 0.25] } })).toThrow(
        expect.objectContaining({ subject: 'policy' }),
      );
      expect(() => model.chat({ policy: { method: 'fastv', layer: layers - 1, dropRatio: 0.5 } })).not.toThrow();
      await expect(engine.loadModel(path.join(TEST_FIXTURES, 'llava-clip-llama-tiny'), { threads: 1_000_000 })).rejects.toMatchObject({ subject: 'threads' });
    } finally {
      await model.close();
    }
  });
});

describe('images too large to decode', () => {
  it("count toward the turn's memory before any is decoded, and maxImagePixels refuses one from its header", async () => {
    const dir = tempDir('faults-images');
    // Headers of 8000×8000 PNGs (under the default pixel limit) with no image data: decoding one would fail.
    const big = [1, 2, 3].map((i) => path.join(dir, `big-${i}.png`));
    for (const file of big) fs.writeFileSync(file, pngHeader(8000, 8000));
    const fixture = path.join(TEST_FIXTURES, 'llava-clip-llama-tiny');
    const model = await engine.loadModel(fixture, { cacheDir: tempDir('faults-graphs'), threads: 1 });
    const strict = await engine.loadModel(fixture, { cacheDir: tempDir('faults-graphs'), threads: 1, maxImagePixels: 100 });
    try {
      const chat = model.chat({ maxNewTokens: 2, memoryLimit: 256 * 2 ** 20 });
      await expect(chat.ask({ images: big, text: 'Hi' })).rejects.toMatchObject({ code: 'MEMORY_LIMIT', message: expect.stringContaining('decoded images') });
      const image = path.join(fixture, 'image.png');
      await expect(strict.chat().ask({ images: [image], text: 'Hi' })).rejects.toMatchObject({ code: 'MEMORY_LIMIT', subject: image });
      expect((await chat.ask({ images: [image], text: 'Hi' })).timings.cachedTokens).toBe(0);
      await expect(engine.loadModel(fixture, { maxImagePixels: 0 })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'maxPixels' });
      await expect(engine.loadModel(fixture, { kvCache: 'int8' as 'fp16' })).rejects.toMatchObject({ code: 'OPTION_INVALID', subject: 'kvCache' });
    } finally {
      await Promise.all([model.close(), strict.close()]);
    }
  });
});
