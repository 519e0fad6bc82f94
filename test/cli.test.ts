/** The `sparsevila` command line, run as a user runs it: a child process of bin/sparsevila.js. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/engine.js';

const cacheDir = tempDir('cli-graphs');

// The demo saves its runs in the profiler's data dir: a temporary one, not the user's.
const cli = (args: string[]) => runCli(args, { SPARSEVILA_CACHE: cacheDir, SPARSEVILA_TRACES: tempDir('cli-traces') });

const expected = JSON.parse(fs.readFileSync(path.join(SIGLIP_FIXTURE, 'expected.json'), 'utf8'));
const image = path.join(SIGLIP_FIXTURE, 'image.png');

describe('sparsevila ask', () => {
  it('--json --logits prints one object with the fixture greedy ids, prompt ids and last-prompt logits', async () => {
    const r = await cli([
      'ask',
      '--model',
      SIGLIP_FIXTURE,
      '--image',
      image,
      '--prompt',
      expected.question,
      '--max-new-tokens',
      '8',
      '--greedy',
      '--json',
      '--logits',
      '--threads',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out).sort()).toEqual(['lastPromptLogits', 'promptTokenIds', 'sparsity', 'stopReason', 'text', 'timings', 'tokenIds']);
    expect(out.tokenIds).toEqual(expected.greedy_ids);
    expect(out.promptTokenIds).toEqual(expected.input_ids);
    expect(out.lastPromptLogits).toHaveLength(expected.last_logits.length);
    expect(Math.max(...out.lastPromptLogits.map((v: number, i: number) => Math.abs(v - expected.last_logits[i])))).toBeLessThan(1e-3);
    expect(out.timings.promptTokens).toBe(expected.input_ids.length);
  });

  it('without --json streams the answer to stdout and timings to stderr', async () => {
    const r = await cli(['ask', '--model', SIGLIP_FIXTURE, '--image', image, '--prompt', 'hello', '--max-new-tokens', '4', '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/prompt tokens, 4 generated \(length\); prefill [\d.]+ ms/);
  });

  it('--policy sparsevila with --keep and --retrieve prunes and retrieves to the budgets', async () => {
    const r = await cli([
      'ask',
      '--model',
      SIGLIP_FIXTURE,
      '--image',
      image,
      '--prompt',
      'What is shown?',
      '--max-new-tokens',
      '3',
      '--policy',
      'sparsevila',
      '--keep',
      '50%',
      '--retrieve',
      '3',
      '--json',
      '--threads',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.sparsity).toMatchObject({ policy: 'sparsevila', turnImageTokens: 16, turnKeptTokens: 8, visualTokens: 8, attendedVisualPerLayer: [3, 3] });
    expect(out.promptTokenIds).toHaveLength(expected.input_ids.length - 8);
    const bad = await cli(['ask', '--model', SIGLIP_FIXTURE, '--prompt', 'hi', '--policy', 'sparsevila', '--retrieve', 'NaN']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--retrieve');
  });

  it("--trace and --chrome-trace record every decision; --ort-profile merges onnxruntime's own profile", async () => {
    const dir = tempDir('cli-trace');
    const r = await cli([
      'ask',
      '--model',
      SIGLIP_FIXTURE,
      '--image',
      image,
      '--prompt',
      'What is shown?',
      '--max-new-tokens',
      '3',
      '--policy',
      'sparsevila',
      '--trace',
      path.join(dir, 'run.jsonl'),
      '--chrome-trace',
      path.join(dir, 'run.json'),
      '--ort-profile',
      path.join(dir, 'ort'),
      '--threads',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const { readTrace } = await import('../dist/src/trace/index.js');
    const events = await readTrace(path.join(dir, 'run.jsonl'));
    const types = new Set(events.map((e) => e.type));
    for (const t of ['run.start', 'image', 'salience', 'kept', 'span', 'retrieval', 'token', 'decode.step', 'turn.end']) expect(types, t).toContain(t);
    const runStart = events.find((e) => e.type === 'run.start')!;
    expect(runStart).toMatchObject({ policy: { method: 'sparsevila', keep: { budget: { ratio: 0.5 } } } });
    const chrome = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    const spans = chrome.traceEvents.filter((e: { ph: string; name: string }) => e.ph === 'X' && ['prefill', 'decode'].includes(e.name));
    expect(spans.length).toBeGreaterThanOrEqual(2);
    expect(chrome.metadata.ortProfiles.length).toBeGreaterThan(0);
    expect(chrome.traceEvents.some((e: { pid: number }) => e.pid >= 1001)).toBe(true);
  });

  it('--help documents every flag', async () => {
    const r = await cli(['ask', '--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--model',
      '--image',
      '--prompt',
      '--max-new-tokens',
      '--greedy',
      '--json',
      '--logits',
      '--temperature',
      '--top-p',
      '--seed',
      '--precision',
      '--provider',
      '--threads',
      '--policy',
      '--keep',
      '--retrieve',
      '--fastv-layer',
      '--pdrop-layers',
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('an unreadable image exits 2 with the error code and the path', async () => {
    const r = await cli(['ask', '--model', SIGLIP_FIXTURE, '--image', '/nonexistent/dog.jpg', '--prompt', 'hi']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('IMAGE_UNREADABLE');
    expect(r.stderr).toContain('/nonexistent/dog.jpg');
  });

  it('an unreadable video and a turn over the memory limit exit 2 with their codes', async () => {
    const notVideo = path.join(cacheDir, 'not-a-video.mp4');
    fs.writeFileSync(notVideo, 'plain text, not a container');
    const video = await cli(['ask', '--model', SIGLIP_FIXTURE, '--video', notVideo, '--prompt', 'hi', '--threads', '1']);
    expect(video.code, video.stderr).toBe(2);
    expect(video.stderr).toContain('VIDEO_UNREADABLE');
    expect(video.stderr).toContain(notVideo);
    const memory = await cli(['ask', '--model', SIGLIP_FIXTURE, '--image', image, '--prompt', 'hi', '--memory-limit', '1', '--threads', '1']);
    expect(memory.code, memory.stderr).toBe(2);
    expect(memory.stderr).toContain('MEMORY_LIMIT');
  });

  it('a missing checkpoint exits 1 naming the folder, and a bad flag value exits 2 naming the flag', async () => {
    const missing = await cli(['ask', '--model', '/nonexistent/model', '--prompt', 'hi']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/CHECKPOINT_NOT_FOUND.*\/nonexistent\/model/);
    const bad = await cli(['ask', '--model', SIGLIP_FIXTURE, '--prompt', 'hi', '--precision', 'int3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--precision');
    const kv = await cli(['ask', '--model', SIGLIP_FIXTURE, '--prompt', 'hi', '--kv-cache', 'int8']);
    expect(kv.code).toBe(2);
    expect(kv.stderr).toMatch(/--kv-cache must be one of fp32, fp16; got 'int8'/);
    const spin = await cli(['ask', '--model', SIGLIP_FIXTURE, '--prompt', 'hi', '--spinning', 'yes']);
    expect(spin.code).toBe(2);
    expect(spin.stderr).toMatch(/--spinning must be one of on, off; got 'yes'/);
    const unknown = await cli(['ask', '--model', SIGLIP_FIXTURE, '--prompt', 'hi', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--frobnicate');
  });
});

describe('sparsevila ask: flags checked before the model loads', () => {
  // A checkpoint that does not exist: a flag checked up front fails with exit 2 naming it, before loading
  // would fail with exit 1.
  const ask = (...args: string[]) => cli(['ask', '--model', '/nonexistent/model', '--prompt', 'hi', ...args]);

  it("chat options, by the session's own rules, name their flag", async () => {
    for (const [args, flag] of [
      [['--max-new-tokens', '0'], '--max-new-tokens'],
      [['--temperature', '0.7', '--top-p', '2'], '--top-p'],
      [['--temperature=-1'], '--temperature'],
      [['--min-new-tokens', '9', '--max-new-tokens', '4'], '--min-new-tokens'],
      [['--prefill-chunk', '0'], '--prefill-chunk'],
      [['--prefill-scores', 'lots'], '--prefill-scores'],
      [['--prefill-scores', '0'], '--prefill-scores'],
    ] as const) {
      const r = await ask(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`OPTION_INVALID.*${flag}`));
    }
  });

  it('a sparsity flag the chosen policy does not read names the flag and the methods that read it', async () => {
    const dense = await ask('--fastv-layer', '3');
    expect(dense.code, dense.stderr).toBe(2);
    expect(dense.stderr).toMatch(/OPTION_INVALID.*--fastv-layer is read by --policy fastv, not by --policy dense/);
    const other = await ask('--policy', 'sparsevila', '--pdrop-layers', '1');
    expect(other.code, other.stderr).toBe(2);
    expect(other.stderr).toContain('--pdrop-layers');
  });

  it('an unwritable --trace or --chrome-trace fails up front naming the flag', async () => {
    for (const flag of ['--trace', '--chrome-trace']) {
      const r = await ask(flag, '/nonexistent/folder/run.json');
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`OPTION_INVALID.*${flag} /nonexistent/folder/run.json cannot be written`));
    }
  });

  it("--fastv-layer at or past the model's layer count is refused naming the flag", async () => {
    const r = await cli(['ask', '--model', SIGLIP_FIXTURE, '--image', image, '--prompt', 'hi', '--threads', '1', '--policy', 'fastv', '--fastv-layer', '2']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/OPTION_INVALID.*--fastv-layer.*2 layers/);
  });

  it('--chrome-trace and --trace are written even when the turn fails', async () => {
    const out = tempDir('cli-failed-turn');
    const chrome = path.join(out, 'failed.json');
    const jsonl = path.join(out, 'failed.jsonl');
    const r = await cli([
      'ask',
      '--model',
      SIGLIP_FIXTURE,
      '--image',
      image,
      '--prompt',
      'hi',
      '--threads',
      '1',
      '--memory-limit',
      '1',
      '--chrome-trace',
      chrome,
      '--trace',
      jsonl,
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('MEMORY_LIMIT');
    expect(JSON.parse(fs.readFileSync(chrome, 'utf8')).traceEvents.length).toBeGreaterThan(0);
    expect(fs.readFileSync(jsonl, 'utf8')).toContain('run.start');
  });
});

describe('sparsevila demo', () => {
  it('runs two turns on the bundled model and reports the reused cache', async () => {
    const r = await cli(['demo', '--threads', '1', '--exit', '--port', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/turn 1 assistant: /);
    expect(r.stdout).toMatch(/turn 2 assistant: /);
    expect(r.stdout).toMatch(/new prompt tokens \([1-9]\d* reused from the cache\)/);
    expect(r.stdout).toMatch(/profiler: http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+$/m);
    expect(r.stdout).toMatch(/turn 1 speedup vs dense: prefill [\d.]+x, decode [\d.]+x per token, end to end [\d.]+x/);
  });
});
