/**
 * `npm start` as a user runs it: the shipped demo model, its example image and video conversations dense and
 * with SparseVILA, the speedups, a long video side by side, and a profiler that answers HTTP and keeps serving until Ctrl-C.
 *
 * The test runs what the start script runs after its `npm install` (which `npm test` has just done; running it
 * again here would rebuild dist/ under the other test files' feet).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/checkpoint-writer.js';
import { tempDir } from '../helpers/engine.js';

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const DEMO_DIR = path.join(REPO_ROOT, 'src/models/sparsevila-demo');
const examples = JSON.parse(fs.readFileSync(path.join(DEMO_DIR, 'examples/conversations.json'), 'utf8')) as {
  title: string;
  media: string[];
  turns: { question: string; answer: string }[];
}[];

/** Resolves with everything printed once `until` matches stdout; rejects on exit or after `ms`. */
function waitFor(child: ReturnType<typeof spawn>, until: RegExp, ms: number): Promise<string> {
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${until} after ${ms} ms; stdout:\n${out}\nstderr:\n${err}`)), ms);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (until.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${until}; stdout:\n${out}\nstderr:\n${err}`));
    });
  });
}

describe('npm start', () => {
  it('runs after npm install: the start script is install, then the demo', () => {
    expect(pkg.scripts.start).toMatch(/^npm install\b.*&& node dist\/src\/cli\/main\.js demo$/);
  });

  it('prints answers for the shipped image and video conversations, the speedups and a profiler URL that answers, then serves until SIGINT', async () => {
    const command = pkg.scripts.start.split('&&').at(-1)!.trim().split(/\s+/);
    const child = spawn(command[0]!, [...command.slice(1), '--port', '0', '--threads', '1'], {
      cwd: REPO_ROOT,
      // Its own data dir: the runs the demo saves are the ones this test counts, not those of earlier demos.
      env: { ...process.env, SPARSEVILA_CACHE: tempDir('npm-start-graphs'), SPARSEVILA_TRACES: tempDir('npm-start-traces') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const out = await waitFor(child, /serving the profiler until Ctrl-C/, 150_000);
      expect(out).toContain(`model: ${DEMO_DIR}`);
      for (const policy of ['dense', 'sparsevila']) expect(out).toContain(`== ${policy}`);
      for (const c of examples) expect(out.includes(`: ${c.title} (${c.media.length} `), c.title).toBe(true);
      const turns = examples.reduce((n, c) => n + c.turns.length, 0);
      const answered = [...out.matchAll(/turn \d+ assistant: "(.*)"   \(reference: (.*)\)/g)];
      expect(answered).toHaveLength(2 * turns);
      // The dense run of the shipped examples answers them as trained (the examples are held-out conversations).
      const dense = answered.slice(0, turns);
      expect(dense.filter(([, said, ref]) => said === ref).length).toBe(turns);
      expect(out).toContain(`dense: ${turns}/${turns} answers match the reference`);
      expect(out).toMatch(new RegExp(`sparsevila \\(keep 50%, retrieve 25%\\): \\d+/${turns} answers match the reference`));
      expect(out).toMatch(/turn 1 speedup vs dense: prefill [\d.]+x, decode [\d.]+x per token, end to end [\d.]+x/);
      // The long video, rendered at run time: both policies per turn, side by side, with the speed-ups.
      const long = out.slice(out.indexOf('== long video'));
      expect(long).toMatch(/^== long video, \d+ frames .*: \d+ visual tokens, dense vs sparsevila/);
      expect([...long.matchAll(/^ {2}speed-up: prefill [\d.]+x, decode [\d.]+x per token, end to end [\d.]+x$/gm)]).toHaveLength(5);

      const url = [...out.matchAll(/profiler: (http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)/g)].at(-1)?.[1];
      expect(url).toBeDefined();
      const page = await fetch(url!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<html');
      const token = new URL(url!).searchParams.get('token')!;
      const runs = (await (await fetch(new URL('/api/runs', url), { headers: { authorization: `Bearer ${token}` } })).json()) as unknown[];
      // Each shipped conversation under both policies, and the long video under both.
      expect(runs.length).toBe(2 * examples.length + 2);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  }, 180_000);
});
