/**
 * LoadOptions.session reaches onnxruntime: the per-operator profile of a model loaded with graph optimisations
 * disabled runs the graph's own operators, the default ('all') runs fused ones, and both answer the same.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';

const expected = JSON.parse(fs.readFileSync(path.join(SIGLIP_FIXTURE, 'expected.json'), 'utf8'));

/** The operator types ORT ran for one turn, from its own profile, and the turn's answer. */
async function profiledTurn(session: engine.SessionSettings | undefined) {
  const prefix = path.join(tempDir('ort-profile'), 'p');
  const model = await engine.loadModel(SIGLIP_FIXTURE, { cacheDir: tempDir('graphs'), threads: 1, session, ortProfilePrefix: prefix });
  try {
    const answer = await model.chat({ maxNewTokens: 4 }).ask({ images: [path.join(SIGLIP_FIXTURE, 'image.png')], text: expected.question });
    const ops = new Set<string>();
    for (const file of await model.runtime.endProfiling()) {
      for (const e of JSON.parse(fs.readFileSync(file, 'utf8')) as { cat: string; args?: { op_name?: string } }[]) {
        if (e.cat === 'Node' && e.args?.op_name) ops.add(e.args.op_name);
      }
    }
    return { answer, ops };
  } finally {
    await model.close();
  }
}

describe('LoadOptions.session', () => {
  it('graphOptimizationLevel reaches onnxruntime (fused operators only when optimising), answers unchanged', async () => {
    const plain = await profiledTurn({
      graphOptimizationLevel: 'disabled',
      executionMode: 'parallel',
      interOpThreads: 1,
      spinning: true,
      memArena: false,
      memPattern: false,
    });
    const optimised = await profiledTurn(undefined);
    expect(plain.ops.size).toBeGreaterThan(0);
    const fusedOnly = [...optimised.ops].filter((op) => !plain.ops.has(op));
    expect(fusedOnly.length, `ops: disabled ${[...plain.ops]}, all ${[...optimised.ops]}`).toBeGreaterThan(0);
    expect(plain.answer.tokenIds).toEqual(optimised.answer.tokenIds);
    expect(maxAbsDiff(plain.answer.lastPromptLogits, optimised.answer.lastPromptLogits)).toBeLessThan(1e-4);
  });
});
