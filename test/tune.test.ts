/**
 * `sparsevila tune` on the trained demo model, as a user runs it (a child process): a quick tune (8 candidates,
 * 16 image-question conversations, the deterministic kv-bytes objective) cut short by --max-trials and resumed
 * from its log; its choice checked on the held-out conversations; its policy.json replayed through `ask
 * --policy-file`; and a malformed workload file refused naming the line and the field.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { world } from 'sparsevila-ts/testing';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';
import { BIN, runCli } from './helpers/cli.js';
import { engine, tempDir } from './helpers/engine.js';
import { thrown } from './helpers/thrown.js';

const DEMO = path.join(REPO_ROOT, 'src/models/sparsevila-demo');
const env = { SPARSEVILA_CACHE: tempDir('tune-graphs') };
const out = tempDir('tune');
const FLOOR = 0.9;
const TUNE = [
  'tune',
  '--model',
  DEMO,
  '--workload',
  'demo:image-questions',
  '--conversations',
  '16',
  '--candidates',
  '8',
  '--objective',
  'kv-bytes',
  '--floor',
  `agreement=${FLOOR}`,
  '--seed',
  '3',
  '--out',
  out,
  '--threads',
  '1',
];
const LOG = path.join(out, 'trials.jsonl');
const logIds = (text: string) =>
  text
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => JSON.parse(l).trial as string);

describe('sparsevila tune', () => {
  let firstLog = '';
  let resumed: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    const first = await runCli([...TUNE, '--max-trials', '4'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/stopped after 4 new trials/);
    firstLog = fs.readFileSync(LOG, 'utf8');
    // The interruption cut the next trial's line mid-write.
    fs.appendFileSync(LOG, '{"trial":"c3-r0","n":5,"policy":{"meth');
    resumed = await runCli(TUNE, env);
    expect(resumed.code, resumed.stderr).toBe(0);
  }, 300_000);

  it('resumes from its log: the logged trials are read, not run again, and the cut line runs again', () => {
    expect(logIds(firstLog)).toHaveLength(4);
    const after = fs.readFileSync(LOG, 'utf8');
    expect(after.startsWith(firstLog)).toBe(true);
    const ids = logIds(after);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.slice(0, 4)).toEqual(logIds(firstLog));
    expect(ids).toContain('c3-r0');
    expect(resumed.stderr.match(/\(from the log\)/g)).toHaveLength(4);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.trials).toEqual({ run: ids.length - 4, resumed: 4 });
  });

  it('a tune killed mid-run goes on from its log without running a logged trial again', async () => {
    const dir = tempDir('tune-killed');
    const args = TUNE.map((a) => (a === out ? dir : a));
    const log = path.join(dir, 'trials.jsonl');
    const lines = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').length - 1 : 0);
    const child = spawn('node', [BIN, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const exited = once(child, 'exit');
    for (const t0 = Date.now(); lines() < 4 && Date.now() - t0 < 180_000;) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await exited;
    // Whole lines only: the kill may have cut the last one.
    const text = fs.readFileSync(log, 'utf8');
    const before = logIds(text.slice(0, text.lastIndexOf('\n') + 1));
    expect(before.length).toBeGreaterThanOrEqual(3);
    const again = await runCli(args, env);
    expect(again.code, again.stderr).toBe(0);
    const ids = logIds(fs.readFileSync(log, 'utf8'));
    expect(ids.slice(0, before.length)).toEqual(before);
    expect(new Set(ids).size).toBe(ids.length);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).trials).toEqual({ run: ids.length - before.length, resumed: before.length });
  }, 300_000);

  it('chooses a policy cheaper than dense that meets its floor on held-out conversations it never tuned on', () => {
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    const policy = JSON.parse(fs.readFileSync(path.join(out, 'policy.json'), 'utf8'));
    expect(policy).toEqual(report.policy);
    expect(engine.validatePolicy(policy)).toEqual(policy);
    expect(policy.method).toBe('sparsevila');
    expect(report.split.heldOut.filter((id: string) => report.split.tuning.includes(id))).toEqual([]);
    expect(report.heldOut.choice.conversations).toBe(report.split.heldOut.length);
    expect(report.heldOut.choice.agreement).toBeGreaterThanOrEqual(FLOOR);
    expect(report.heldOut.meetsFloor).toBe(true);
    expect(report.heldOut.costRatio).toBeLessThan(1);
    // The choice ran every tuning conversation and met the floor there: by its lower bound when the report says
    // confirmed, by its estimate otherwise.
    const chosen = report.candidates.find((c: { policy: unknown }) => JSON.stringify(c.policy) === JSON.stringify(policy));
    expect(chosen.measures.conversations).toBe(report.split.tuning.length);
    expect(chosen.measures.agreement).toBeGreaterThanOrEqual(FLOOR);
    expect(chosen.state).toBe(report.confirmed ? 'pass' : 'open');
    const svg = fs.readFileSync(path.join(out, 'pareto.svg'), 'utf8');
    expect(svg.split('class="tune-point').length - 1).toBe(report.candidates.length);
    expect(svg.match(/class="tune-point[^"]*choice/g)).toHaveLength(1);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toContain(`**Choice: ${report.label}**`);
  });

  it("policy.json reproduces the tune's held-out turn through ask --policy-file", async () => {
    const record = fs
      .readFileSync(LOG, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((r) => /^heldout-c\d+$/.test(r.trial));
    const measured = record.conversations[0];
    const conversation = world.heldOutConversations(DEMO, 32).conversations.find((c) => c.id === measured.id)!;
    const image = path.join(out, 'heldout.png');
    fs.writeFileSync(image, (await world.renderConversationMedia(conversation, 64))[0]!);
    const ask = (policy: string[]) =>
      runCli(
        ['ask', '--model', DEMO, '--image', image, '--prompt', conversation.turns[0]!.question, '--max-new-tokens', '8', '--json', '--threads', '1', ...policy],
        env,
      );
    const sparse = await ask(['--policy-file', path.join(out, 'policy.json')]);
    expect(sparse.code, sparse.stderr).toBe(0);
    const dense = await ask([]);
    const a = JSON.parse(sparse.stdout);
    expect(a.text).toBe(measured.turns[0].text);
    // KV bytes a decode step reads (2 KV heads × 48 dims, fp32, per layer): the tune's measure of this turn.
    const kv = (x: { timings: { cachedTokens: number; promptTokens: number }; sparsity: { visualTokens: number; attendedVisualPerLayer: number[] } }) =>
      x.sparsity.attendedVisualPerLayer.reduce(
        (s, v) => s + (x.timings.cachedTokens + x.timings.promptTokens - x.sparsity.visualTokens + v) * 2 * 2 * 48 * 4,
        0,
      );
    expect(kv(a)).toBe(measured.turns[0].kvBytes);
    expect(kv(JSON.parse(dense.stdout))).toBeGreaterThan(kv(a));
  });

  it('--help documents the tune flags, and --policy-file on ask and demo', async () => {
    const tune = await runCli(['tune', '--help']);
    expect(tune.code).toBe(0);
    for (const flag of [
      '--workload',
      '--out',
      '--objective',
      '--floor',
      '--method',
      '--candidates',
      '--heldout-share',
      '--seed',
      '--max-trials',
      '--profile',
      '--threads',
    ])
      expect(tune.stdout).toContain(flag);
    for (const command of ['ask', 'demo']) expect((await runCli([command, '--help'])).stdout).toContain('--policy-file FILE');
    expect((await runCli(['--help'])).stdout).toMatch(/\n {2}tune {4}/);
  });

  it('ask and demo refuse a policy file that is not a valid policy, naming the file and the field, before loading the model', async () => {
    const file = path.join(tempDir('policy-file'), 'policy.json');
    fs.writeFileSync(file, JSON.stringify({ method: 'sparsevila', keep: { budget: { ratio: 1.5 } }, retrieve: { budget: { ratio: 0.25 } } }));
    for (const command of [
      ['ask', '--image', 'none.png', '--prompt', 'hi'],
      ['demo', '--exit'],
    ]) {
      const r = await runCli([command[0]!, '--model', DEMO, '--policy-file', file, ...command.slice(1)], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`error [OPTION_INVALID]: --policy-file ${file}: policy.keep.budget.ratio: must be in (0, 1], got 1.5`);
    }
    const both = await runCli(['ask', '--model', DEMO, '--image', 'none.png', '--prompt', 'hi', '--policy-file', file, '--keep', '0.5'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--keep and --policy-file both set the policy');
  });

  it('refuses a workload file with a bad line, naming the file, the line and the field', () => {
    const dir = tempDir('workload');
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(
      file,
      [
        '{"images": ["a.png"], "turns": [{"question": "What is in the top left?", "answer": "nothing"}]}',
        '{"images": ["b.png"], "turns": [{"answer": "red"}]}',
      ].join('\n'),
    );
    const err = thrown(() => engine.readWorkload(file));
    expect(err).toBeInstanceOf(engine.InputError);
    expect(err).toMatchObject({ code: 'WORKLOAD_INVALID', subject: `${file}:2 turns[0].question` });
    expect((err as Error).message).toContain(`${file}:2: turns[0].question: must be a non-empty string`);
    fs.writeFileSync(file, '{"video": "clip.mp4", "turns": [{"question": "How many frames show a red circle?"}]}\n{"images": ["a.png"], "turns": [}\n');
    expect(thrown(() => engine.readWorkload(file))).toMatchObject({ code: 'WORKLOAD_INVALID', subject: `${file}:2` });
    // The file is read before the model loads: the CLI refuses it at once, exit 2.
    return runCli(['tune', '--model', DEMO, '--workload', file, '--out', dir], env).then((r) => {
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`error [WORKLOAD_INVALID]: ${file}:2`);
    });
  });
});

describe('tuning spaces', () => {
  it("searches a plug-in method's own knobs, each distinct policy once, sampled by the seed", () => {
    engine.registerSparsityMethod({
      name: 'tune-probe',
      summary: 'a method registered from outside the package, to search',
      validate: (v) => ({ method: 'tune-probe', stride: v.stride as number, offset: v.stride === 1 ? 0 : (v.offset as number) }),
      label: (p) => `probe stride ${p.stride} offset ${p.offset}`,
      tune: { knobs: { stride: [1, 2, 4], offset: [0, 1] }, policy: (c) => ({ method: 'tune-probe', stride: c.stride, offset: c.offset }) },
    });
    // stride 1 ignores its offset: 3 × 2 choices, 5 distinct policies.
    expect(engine.policyGrid('tune-probe')).toHaveLength(5);
    const a = engine.sampleCandidates('tune-probe', 4, 7);
    expect(a.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(new Set(a.map((c) => c.key)).size).toBe(4);
    expect(engine.sampleCandidates('tune-probe', 4, 7)).toEqual(a);
    expect(engine.sampleCandidates('tune-probe', 9, 7)).toHaveLength(5);
    expect(thrown(() => engine.sampleCandidates('dense', 4, 0))).toMatchObject({ code: 'OPTION_INVALID', subject: '--method' });
  });

  it("SparseVILA's grid runs no behaviour twice: a scope or floor that cannot matter is reset", () => {
    const grid = engine.policyGrid('sparsevila') as {
      keep: { budget: { ratio: number }; scope: string; minPerImage: number };
      retrieve: { budget: { ratio: number }; minPerImage: number; perKvHead: boolean };
    }[];
    expect(new Set(grid.map((p) => engine.canonicalJson(p))).size).toBe(grid.length);
    expect(grid.filter((p) => p.keep.budget.ratio === 1 && p.keep.scope !== 'per-image')).toEqual([]);
    expect(grid.filter((p) => p.keep.scope === 'per-image' && p.keep.minPerImage !== 0)).toEqual([]);
    expect(grid.filter((p) => p.retrieve.budget.ratio === 1 && (p.retrieve.perKvHead || p.retrieve.minPerImage !== 0))).toEqual([]);
    // Two candidates with equal budgets read differently when another knob differs.
    const labels = engine.sampleCandidates('sparsevila', grid.length, 0).map((c) => c.label);
    expect(new Set(labels).size).toBe(grid.length);
  });
});
