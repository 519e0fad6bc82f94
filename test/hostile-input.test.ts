/**
 * Options and inputs that would exhaust the machine, refused up front with typed errors naming them:
 * thread counts past the machine's bound; the temporary folders interrupted graph builds leave behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureModelGraph, openCheckpoint } from '../dist/src/families/registry.js';
import { parseModelOptions } from '../dist/src/cli/options.js';
import { publish, STALE_BUILD_MS } from '../dist/src/graph/build.js';
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

describe('interrupted graph builds', () => {
  it("leave no temporary folder past the next build: a dead process's and an old one go, a live build's stays", () => {
    const cacheDir = tempDir('stale-builds');
    const key = path.join(cacheDir, 'abcdef0123456789abcdef01');
    // pid_max is at most 2^22 on Linux: this pid belongs to no process.
    const dead = path.join(key, '.decoder.4194305.deadbeef');
    const live = path.join(key, `.vision.${process.pid}.0badcafe`);
    const old = path.join(key, `.embed.${process.pid}.12345678`);
    for (const tmp of [dead, live, old]) {
      fs.mkdirSync(tmp, { recursive: true });
      fs.writeFileSync(path.join(tmp, 'weights.bin'), Buffer.alloc(1024));
    }
    const aged = new Date(Date.now() - STALE_BUILD_MS - 60_000);
    fs.utimesSync(old, aged, aged);
    const checkpoint = openCheckpoint(SIGLIP_FIXTURE);
    try {
      ensureModelGraph(checkpoint, 'projector', { precision: 'fp32', blockSize: 32, cacheDir });
    } finally {
      checkpoint.close();
    }
    expect([dead, live, old].map((d) => fs.existsSync(d))).toEqual([false, true, false]);
  });

  it('a build that finishes second leaves the first one in place (another worker may be loading it), and discards its own', () => {
    const key = tempDir('race-builds');
    const build = (name: string, text: string) => {
      const dir = path.join(key, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'vision.onnx'), text);
      return dir;
    };
    const target = path.join(key, 'vision');
    const modelPath = path.join(target, 'vision.onnx');
    publish(build('.vision.1.aaaaaaaa', 'first'), target, modelPath);
    expect(fs.readFileSync(modelPath, 'utf8')).toBe('first');
    const second = build('.vision.2.bbbbbbbb', 'second');
    publish(second, target, modelPath);
    expect(fs.readFileSync(modelPath, 'utf8')).toBe('first');
    expect(fs.existsSync(second)).toBe(false);
    // A folder without its model file is no one's finished graph: a build replaces it.
    fs.rmSync(modelPath);
    publish(build('.vision.3.cccccccc', 'third'), target, modelPath);
    expect(fs.readFileSync(modelPath, 'utf8')).toBe('third');
  });
});
