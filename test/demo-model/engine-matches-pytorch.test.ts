/**
 * The trained demo model (src/models/sparsevila-demo, trained by tools/train-demo-vlm/train.py in PyTorch)
 * run by the engine: its expected.json holds, for held-out conversations of the synthetic world (images and a
 * video, several turns each), what PyTorch computes when it runs them greedily turn by turn after its own
 * answers, the way Chat does. Tolerance in float32: last-prompt-position logits within 1e-3 absolute (measured
 * agreement is far tighter), greedy answer ids identical, and the turn stops on <|im_end|> exactly when
 * PyTorch's did.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engine, maxAbsDiff, tempDir } from '../helpers/engine.js';
import type { LlavaSpec } from '../../dist/src/checkpoint/spec.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/models/sparsevila-demo');
const LOGIT_TOLERANCE = 1e-3;

interface ExpectedTurn {
  question: string;
  kind: string;
  reference_answer: string;
  prompt_ids: number[];
  last_logits: number[];
  greedy_ids: number[];
  answer: string;
  stopped_on_eos: boolean;
}
interface Expected {
  image_token_count: number;
  samples: { id: string; media_kind: 'image' | 'video'; media: string[]; turns: ExpectedTurn[] }[];
}

type Model = Awaited<ReturnType<typeof engine.loadModel>>;

const expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as Expected;

describe('sparsevila-demo: the engine reproduces the PyTorch model', () => {
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(DIR, { cacheDir: tempDir('demo'), threads: 1 });
  });
  afterAll(() => model?.close());

  it('is a CLIP + LLaMA Llava with 64 image tokens per image', () => {
    expect(model.spec.vision.kind).toBe('clip');
    expect(model.spec.text.kind).toBe('llama');
    expect((model.spec as LlavaSpec).imageTokenCount).toBe(expected.image_token_count);
    expect(model.spec.selectStrategy).toBe('default');
  });

  it.each(expected.samples.map((s) => [`${s.id} (${s.media_kind}, ${s.turns.length} turns)`, s] as const))(
    '%s: prompt ids, last-position logits within 1e-3 and greedy answers, turn by turn',
    async (_name, sample) => {
      const chat = model.chat({ maxNewTokens: 16 });
      const media = sample.media.map((m) => path.join(DIR, m));
      for (const [i, turn] of sample.turns.entries()) {
        const answer = await chat.ask({ images: i === 0 ? media : [], text: turn.question });
        const where = `${sample.id} turn ${i + 1} (${turn.question})`;
        expect(answer.promptTokenIds, where).toEqual(turn.prompt_ids);
        expect(maxAbsDiff(answer.lastPromptLogits, turn.last_logits), where).toBeLessThan(LOGIT_TOLERANCE);
        expect(answer.tokenIds, where).toEqual(turn.greedy_ids);
        expect(answer.stopReason, where).toBe(turn.stopped_on_eos ? 'eos' : 'length');
        expect(answer.text, where).toBe(turn.answer);
      }
    },
  );
});
