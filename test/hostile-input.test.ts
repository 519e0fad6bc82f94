/**
 * Options and inputs that would exhaust the machine, refused up front with typed errors naming them:
 * thread counts past the machine's bound.
 */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseModelOptions } from '../dist/src/cli/options.js';
import { maxThreads } from '../dist/src/runtime/threads.js';
import { SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';
import { thrown } from './helpers/thrown.js';

describe('thread counts', () => {
  it('are bounded by the machine: a typed OPTION_INVALID naming --threads / threads past 2 × the cores', async () => {
    expect(maxThreads()).toBe(2 * os.availableParallelism());
    expect(parseModelOptions({ threads: String(maxThreads()) }).threads).toBe(maxThreads());
    for (const [flag, value] of [
      ['threads', '100000'],
      ['inter-op-threads', String(maxThreads() + 1)],
    ] as const) {
      expect(thrown(() => parseModelOptions({ [flag]: value }))).toMatchObject({
        code: 'OPTION_INVALID',
        subject: `--${flag}`,
        message: expect.stringContaining('cores'),
      });
    }
    await expect(engine.loadModel(SIGLIP_FIXTURE, { threads: 100000, cacheDir: tempDir('threads') })).rejects.toMatchObject({
      code: 'OPTION_INVALID',
      subject: 'threads',
    });
    await expect(engine.loadModel(SIGLIP_FIXTURE, { threads: 1.5, cacheDir: tempDir('threads') })).rejects.toMatchObject({
      code: 'OPTION_INVALID',
      subject: 'threads',
    });
  });
});
