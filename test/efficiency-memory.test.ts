/**
 * The memory estimate (src/runtime/memory.ts) held against what a long prefill really takes: a fresh process
 * runs the engine's chunked prefill with a question weighted for retrieval (both decoder graphs, as a
 * SparseVILA turn) and reports its peak RSS growth (VmHWM, worker included). Scores dominate: 8 heads × a
 * 512-token chunk × 6k tokens is 96 MiB a copy, the model itself is tiny.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../src/families/index.js';
import { estimateTurnMemory } from '../src/runtime/memory.js';
import { REPO_ROOT, writeTinyLlava } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/engine.js';

const TOKENS = 6144;
const CHUNK = 512;
const QUESTION = 16;

/** Runs the prefill in a child process; returns its RSS growth over the prefill in bytes. */
function measuredGrowth(dir: string): number {
  const code = `
    import fs from 'node:fs';
    const { Runtime } = await import(${JSON.stringify(`${REPO_ROOT}/dist/src/runtime/runtime.js`)});
    const { prefill } = await import(${JSON.stringify(`${REPO_ROOT}/dist/src/session/prefill.js`)});
    const { fixedChunks } = await import(${JSON.stringify(`${REPO_ROOT}/dist/src/runtime/memory.js`)});
    const kb = (key) => Number(new RegExp(key + ':\\\\s+(\\\\d+) kB').exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const rt = await Runtime.start(${JSON.stringify(dir)}, { precision: 'fp32', blockSize: 32, cacheDir: ${JSON.stringify(tempDir('eff-mem-graphs'))} }, { executionProvider: 'cpu', intraOpThreads: 1 });
    await rt.ensureGraphs(['decoder', 'decoder-mass']);
    const cache = await rt.createCache();
    await rt.reserveCache(cache, ${TOKENS});
    const ids = Array.from({ length: ${TOKENS} }, (_, i) => (i * 37) % 256);
    const massWeights = Float32Array.from(ids, (_, i) => (i >= ${TOKENS - QUESTION} ? 1 / ${QUESTION} : 0));
    const before = kb('VmRSS');
    fs.writeFileSync('/proc/self/clear_refs', '5');
    await prefill(rt, { cache, ids, positions: ids.map((_, i) => i), imageTokenId: -1, hidden: 64, chunks: fixedChunks(${CHUNK}), logits: 'last', massWeights });
    console.log(JSON.stringify({ growth: kb('VmHWM') - before }));
    await rt.close();
  `;
  // A file, not --eval: the inference worker inherits the parent's execArgv.
  const script = path.join(tempDir('eff-mem-script'), 'prefill.mjs');
  fs.writeFileSync(script, code);
  const child = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!).growth;
}

describe('the memory estimate against a measured long prefill', () => {
  it('a 6k-token prefill in 512-token chunks grows RSS by less than the estimate, and by more than half its scores part', () => {
    const dir = tempDir('eff-mem');
    writeTinyLlava(dir, { vision: 'siglip', text: 'qwen2', textHidden: 64, textIntermediate: 128, textHeads: 8, textKvHeads: 2, vocab: 300, seed: 9 });
    const spec = openCheckpoint(dir).spec;
    const estimate = estimateTurnMemory(spec, {
      cachedRows: 0,
      promptTokens: TOKENS,
      maxNewTokens: 0,
      chunk: CHUNK,
      frames: 0,
      visionBatch: 1,
      viewRows: 0,
      twinRows: 0,
    });
    const growth = measuredGrowth(dir);
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    console.log(`prefill ${TOKENS} tokens: RSS +${mib(growth)}, estimated ${mib(estimate.total)} (scores ${mib(estimate.parts.prefillScores)})`);
    expect(growth).toBeLessThan(estimate.total);
    // The estimate is not padded out of use: most of it is what the scores really take.
    expect(growth).toBeGreaterThan(estimate.parts.prefillScores / 2);
  });
});
