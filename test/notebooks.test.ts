/**
 * The notebooks run headless, as a user's Jupyter would run them: the tslab kernelspec is installed into a
 * temporary Jupyter prefix by the project's installer, each notebook is executed with nbconvert (one at a
 * time; each gets a fresh kernel), and the executed notebook's outputs are checked for content — no errors,
 * the retention maps with as many kept patches as the printed budgets, differing retrieval sets across turns,
 * the demo model's example questions asked with their reference answers beside the answers, the tuner's
 * candidates on the demo model with the Pareto front marked and its choice held out, a Qwen2.5-VL's images each on its own grid with their M-RoPE positions.
 *
 * Needs Debian's jupyter-nbconvert, python3-nbclient and python3-ipykernel (scripts/system-deps.sh, run by
 * `npm test`) and the compiled package (`npm run build`: notebooks import dist/).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { demoImageExample } from '../dist/kernel/index.js';
import { installKernelspec } from '../dist/kernel/install.js';
import { tempDir } from './helpers/engine.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const NOTEBOOKS = path.join(ROOT, 'notebooks');
const PYTHON = '/usr/bin/python3';
const NOTEBOOK_TIMEOUT_S = 120;

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  execution_count?: number | null;
  outputs?: Output[];
}
interface Executed {
  cells: Cell[];
  stdout: string;
  svgs: string[];
  htmls: string[];
  seconds: number;
}

const join = (x: string | string[] | undefined) => (Array.isArray(x) ? x.join('') : (x ?? ''));
const count = (markup: string, needle: string) => markup.split(needle).length - 1;

const prefix = tempDir('jupyter');
const outDir = tempDir('notebooks-out');
const graphCache = tempDir('notebook-graphs');
const runtimes: Record<string, number> = {};

async function execute(name: string): Promise<Executed> {
  const out = path.join(outDir, name);
  const t0 = performance.now();
  try {
    await run(
      PYTHON,
      [
        '-m',
        'jupyter',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--allow-errors',
        `--ExecutePreprocessor.timeout=${NOTEBOOK_TIMEOUT_S}`,
        '--output',
        out,
        path.join(NOTEBOOKS, name),
      ],
      {
        cwd: NOTEBOOKS,
        env: { ...process.env, JUPYTER_PATH: path.join(prefix, 'share', 'jupyter'), SPARSEVILA_CACHE: graphCache, SPARSEVILA_PROFILER_URL: '' },
        timeout: (NOTEBOOK_TIMEOUT_S + 60) * 1000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`nbconvert failed on ${name}: ${e.message}\n${e.stderr ?? ''}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  runtimes[name] = seconds;
  const nb = JSON.parse(fs.readFileSync(out, 'utf8')) as { cells: Cell[] };
  const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
  const errors = nb.cells.flatMap((c) =>
    (c.outputs ?? []).filter((o) => o.output_type === 'error').map((o) => `cell:\n${join(c.source)}\n→ ${o.ename}: ${o.evalue}`),
  );
  expect(errors, `errors in ${name}`).toEqual([]);
  // tslab reports TypeScript diagnostics and uncaught errors on stderr.
  const stderr = outputs.filter((o) => o.output_type === 'stream' && o.name === 'stderr').map((o) => join(o.text));
  expect(stderr, `stderr in ${name}`).toEqual([]);
  return {
    cells: nb.cells,
    seconds,
    stdout: outputs
      .filter((o) => o.output_type === 'stream' && o.name === 'stdout')
      .map((o) => join(o.text))
      .join(''),
    svgs: outputs.flatMap((o) => (o.data?.['image/svg+xml'] ? [join(o.data['image/svg+xml'])] : [])),
    htmls: outputs.flatMap((o) => (o.data?.['text/html'] ? [join(o.data['text/html'])] : [])),
  };
}

/** The number after `label` on a printed line (e.g. "kept: 8/16" → [8, 16]). */
function fraction(stdout: string, label: string): [number, number] {
  const m = stdout.match(new RegExp(`${label}\\s*(\\d+)/(\\d+)`));
  if (!m) throw new Error(`no "${label} n/m" in:\n${stdout}`);
  return [Number(m[1]), Number(m[2])];
}

describe('notebooks', () => {
  beforeAll(() => {
    try {
      execFileSync(PYTHON, ['-c', 'import nbconvert, nbclient, ipykernel, jupyter_core'], { stdio: 'pipe' });
    } catch {
      throw new Error(`${PYTHON} lacks jupyter nbconvert / nbclient / ipykernel: run scripts/system-deps.sh (npm test does)`);
    }
    if (!fs.existsSync(path.join(ROOT, 'dist/kernel/index.js'))) throw new Error('dist/kernel/index.js is missing: run `npm run build`');
    installKernelspec({ prefix });
  });

  it('are stored without outputs', () => {
    const files = fs.readdirSync(NOTEBOOKS).filter((f) => f.endsWith('.ipynb'));
    expect(files.sort()).toEqual(['01-quickstart.ipynb', '02-step-by-step.ipynb', '03-multi-turn.ipynb', '04-budget-sweep.ipynb', '05-qwen2-vl.ipynb']);
    for (const f of files) {
      const nb = JSON.parse(fs.readFileSync(path.join(NOTEBOOKS, f), 'utf8')) as { cells: Cell[]; metadata: { kernelspec: { name: string } } };
      expect(nb.metadata.kernelspec.name, f).toBe('tslab');
      for (const c of nb.cells.filter((c) => c.cell_type === 'code')) {
        expect(c.outputs, f).toEqual([]);
        expect(c.execution_count, f).toBeNull();
      }
      // Every notebook explains itself.
      expect(nb.cells.filter((c) => c.cell_type === 'markdown').length, f).toBeGreaterThanOrEqual(2);
    }
  });

  it("01-quickstart: asks the demo model its example's question, shows the retention map with the kept budget, streams to an in-kernel profiler", async () => {
    const nb = await execute('01-quickstart.ipynb');
    // The question and its reference come from the model's examples/conversations.json, read at run time.
    const [first, second] = demoImageExample().turns;
    expect(nb.stdout).toContain(`question: ${first!.question}\nanswer: "`);
    expect(nb.stdout).toMatch(/\nanswer: ".*" \(reference: [^;]+; \d+ tokens/);
    expect(nb.stdout).toContain(`(reference: ${first!.answer}; `);
    expect(nb.stdout).toContain(`question: ${(second ?? first)!.question}\nanswer: "`);
    const [kept, total] = fraction(nb.stdout, 'kept:');
    expect([kept, total]).toEqual([32, 64]);
    expect(nb.stdout).toMatch(/retrieved per layer: 16, 16, 16, 16\n/);
    expect(nb.svgs).toHaveLength(1);
    const map = nb.svgs[0]!;
    expect(count(map, 'class="patch kept"')).toBe(kept);
    expect(count(map, 'class="patch pruned"')).toBe(total - kept);
    expect(map).toContain('href="data:image/jpeg;base64,');
    // Each of the 4 layers retrieved 16 of the 32 kept tokens: 16..32 distinct outlines.
    const outlines = count(map, 'class="retrieved"');
    expect(outlines).toBeGreaterThanOrEqual(16);
    expect(outlines).toBeLessThanOrEqual(32);
    const table = nb.htmls.find((h) => h.includes('class="retrieval"'))!;
    expect(count(table, 'data-retrieved="16"')).toBe(4);
    expect(nb.htmls.some((h) => h.includes('class="latency"') && h.includes('TTFT'))).toBe(true);
    // attachProfiler() hosted a profiler in the kernel, linked it, and it received every event of the live chat.
    expect(nb.stdout).toMatch(/profiler: http:\/\/127\.0\.0\.1:\d+\/\?token=\S+ \(running in this kernel\)/);
    expect(nb.htmls.some((h) => h.includes('Live profiler: <a href="http://127.0.0.1:'))).toBe(true);
    const [, streamed, recorded] = nb.stdout.match(/profiler runs: 1; events streamed: (\d+) \(recorded here: (\d+)\)/)!;
    expect(Number(streamed)).toBeGreaterThan(10);
    expect(streamed).toBe(recorded);
  });

  it('02-step-by-step: each step prints and shows what it decided', async () => {
    const nb = await execute('02-step-by-step.ipynb');
    expect(nb.stdout).toMatch(/encoded: 1 image, 16 tokens on a 4×4 grid, salience source: received/);
    expect(fraction(nb.stdout, 'kept:')).toEqual([6, 16]);
    expect(nb.stdout).toContain('kept = top-6 by salience: true');
    expect(nb.stdout).toMatch(/prompt tokens: \d+ \(6 visual of 16\)/);
    expect(nb.stdout).toMatch(/layer 0: retrieved 3 of 6/);
    expect(nb.stdout).toMatch(/layer 1: retrieved 3 of 6/);
    expect(nb.stdout).toMatch(/decoded: 8 tokens/);
    expect(nb.stdout).toContain('attended visual tokens per layer: 3, 3');
    // Salience before pruning, after pruning, then with layer 0's retrieval.
    expect(nb.svgs).toHaveLength(3);
    const [salience, pruned, retrieved] = nb.svgs as [string, string, string];
    expect(count(salience, 'class="patch candidate"')).toBe(16);
    for (const svg of nb.svgs) expect(svg).toContain('href="data:image/jpeg;base64,');
    expect(count(pruned, 'class="patch kept"')).toBe(6);
    expect(count(retrieved, 'class="patch kept"')).toBe(6);
    expect(count(retrieved, 'class="retrieved"')).toBe(3);
    // The printed kept tokens are the ones drawn kept.
    const keptTokens = nb.stdout
      .match(/kept: 6\/16 tokens: ([\d, ]+)/)![1]!
      .split(', ')
      .map(Number);
    const drawn = [...pruned.matchAll(/class="patch kept" data-token="(\d+)"/g)].map((m) => Number(m[1]));
    expect(drawn).toEqual(keptTokens);
    const table = nb.htmls.find((h) => h.includes('class="retrieval"'))!;
    expect(count(table, 'data-retrieved="3"')).toBe(2);
  });

  it("03-multi-turn: the example's turns retrieve different tokens from the same retained cache, answers beside references", async () => {
    const nb = await execute('03-multi-turn.ipynb');
    const turns = demoImageExample({ minTurns: 2 }).turns.slice(0, 3);
    const n = turns.length;
    expect(nb.stdout).toMatch(/turn 1: \d+ new prompt tokens, 0 cached; 48 visual tokens retained; attended per layer 16, 16, 16, 16\n/);
    // Turns printed as the CLI counts them, from 1.
    for (let t = 1; t < n; t++) {
      expect(nb.stdout).toMatch(new RegExp(`turn ${t + 1}: \\d+ new prompt tokens, [1-9]\\d* cached; 48 visual tokens retained`));
    }
    // Each turn's question is the example's, printed once with its answer and its reference.
    for (const turn of turns) {
      const lines = nb.stdout.split('\n').filter((line) => line.includes(`question: ${turn.question}  answer: "`));
      expect(lines).toHaveLength(1);
      expect(lines[0]!.endsWith(`" (reference: ${turn.answer})`)).toBe(true);
    }
    const sets = new Map<string, string>();
    for (const m of nb.stdout.matchAll(/turn (\d), layer (\d): retrieved 16 of 48: ([\d: ]+)/g)) sets.set(`${Number(m[1]) - 1}/${m[2]}`, m[3]!.trim());
    expect([...sets.keys()].sort()).toEqual(Array.from({ length: n }, (_, t) => [0, 1, 2, 3].map((l) => `${t}/${l}`)).flat());
    const changed = [0, 1, 2, 3].filter((l) => sets.get(`0/${l}`) !== sets.get(`1/${l}`)).length;
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(nb.stdout).toContain(`layers whose retrieval set changed from turn 1 to turn 2: ${changed} of 4`);
    // One retention map per turn: same pruning, different outlines.
    expect(nb.svgs).toHaveLength(n);
    for (const svg of nb.svgs) expect(count(svg, 'class="patch kept"')).toBe(48);
    const outlined = nb.svgs.map((svg) => [...svg.matchAll(/class="retrieved" data-token="(\d+)"/g)].map((m) => m[1]).join(','));
    expect(outlined[0]).not.toBe(outlined[1]);
    expect(nb.htmls.filter((h) => h.includes('class="retrieval"'))).toHaveLength(n);
  });

  it('04-budget-sweep: the tuner on the demo model — one point per candidate, the front marked, a choice that meets its floor held out', async () => {
    const nb = await execute('04-budget-sweep.ipynb');
    const candidates = [
      ...nb.stdout.matchAll(/^#(\d+) (.+): (\d+) conversations, token agreement ([\d.]+)% \(95% lower ([\d.]+)%\), kv-bytes ×([\d.]+); (pass|fail|open)/gm),
    ];
    expect(candidates).toHaveLength(8);
    expect(nb.stdout).toContain('candidates: 8');
    expect(nb.svgs).toHaveLength(1);
    const plot = nb.svgs[0]!;
    expect(count(plot, 'class="sweep-point')).toBe(8);
    // The printed front is the marked one.
    const front = [...plot.matchAll(/class="sweep-point pareto" data-label="([^"]+)"/g)].map((m) => m[1]);
    expect(front.length).toBeGreaterThanOrEqual(1);
    const printed = nb.stdout.match(/Pareto front: (.+)/)![1]!.split(', ');
    expect([...printed].sort()).toEqual([...front].sort());
    // The choice is a candidate that met the floor (90%) on the tuning conversations: by its bound when confirmed.
    const [, index, label, confirmed] = nb.stdout.match(/choice: #(\d+) (.+) \((confirmed|not confirmed) on the tuning conversations\)/)!;
    const chosen = candidates.find((m) => m[1] === index)!;
    expect(chosen[2]).toBe(label);
    expect(Number(chosen[4])).toBeGreaterThanOrEqual(90);
    expect(chosen[7]).toBe(confirmed === 'confirmed' ? 'pass' : 'open');
    const held = nb.stdout.match(/held out: token agreement ([\d.]+)%.*kv-bytes ×([\d.]+); floor agreement=0\.9 (met|not met)/)!;
    expect(held[3]).toBe('met');
    expect(Number(held[1])).toBeGreaterThanOrEqual(90);
    expect(Number(held[2])).toBeLessThan(1);
    // model.chat takes the written policy as is.
    expect(nb.stdout).toMatch(/policy\.json: \{ "method": "sparsevila"/);
    expect(nb.stdout).toMatch(/question: .+ {2}answer: ".*" {2}\(reference: .+\)/);
  });

  it('05-qwen2-vl: a 2×4 and a 3×2 image each drawn on its own grid, pruned per image, kept tokens at their 3-D M-RoPE positions, retrieval and decode', async () => {
    const nb = await execute('05-qwen2-vl.ipynb');
    expect(nb.stdout).toMatch(/model: Qwen2_5_VLForConditionalGeneration; 14 px patches merged 2×2 → one token per 28×28 px/);
    expect(nb.stdout).toContain('image 1: 112×56 px → 2×4 grid = 8 tokens');
    expect(nb.stdout).toContain('image 2: 56×84 px → 3×2 grid = 6 tokens');
    const kept = [0, 1].map((i) => {
      const m = nb.stdout.match(new RegExp(`image ${i + 1} kept: (\\d+)/(\\d+) tokens: ([\\d, ]+)`))!;
      return { n: Number(m[1]), of: Number(m[2]), tokens: m[3]!.trim().split(', ').map(Number) };
    });
    expect(kept.map((k) => [k.n, k.of])).toEqual([
      [4, 8],
      [3, 6],
    ]);
    expect(nb.stdout).toMatch(/prompt tokens: \d+ \(7 visual of 14\)/);
    // Each printed kept token at its image's start position, plus its row in h and its column in w.
    const positions = [...nb.stdout.matchAll(/image (\d) token (\d+) \(row (\d+), col (\d+)\): t=(\d+) h=(\d+) w=(\d+)/g)].map((m) => [
      Number(m[1]) - 1,
      ...m.slice(2).map(Number),
    ]);
    expect(positions.map(([image, token]) => `${image}:${token}`)).toEqual(kept.flatMap((k, i) => k.tokens.map((t) => `${i}:${t}`)));
    for (const [image, token, row, col, t, h, w] of positions) {
      expect([row, col], `image ${image} token ${token}`).toEqual(image === 0 ? [Math.floor(token! / 4), token! % 4] : [Math.floor(token! / 2), token! % 2]);
      expect([h! - t!, w! - t!]).toEqual([row, col]);
    }
    // Text tokens have t = h = w: the <|vision_start|> just before image 0's tokens, and the text after the images,
    // past the tall image's largest position (its start + 3 rows).
    const text = [...nb.stdout.matchAll(/prompt row \d+\): t=(\d+) h=\1 w=\1/g)].map((m) => Number(m[1]));
    expect(text).toEqual([positions[0]![4]! - 1, positions.at(-1)![4]! + 3 + 1]);
    expect(nb.stdout).toMatch(/layer 0: retrieved 3 of 7/);
    expect(nb.stdout).toMatch(/layer 1: retrieved 3 of 7/);
    expect(nb.stdout).toMatch(/decoded: 8 tokens/);
    expect(nb.stdout).toContain('attended visual tokens per layer: 3, 3');
    // Salience, after pruning, with layer 0's retrieval: each map draws both images on their own grids over their pictures.
    expect(nb.svgs).toHaveLength(3);
    for (const svg of nb.svgs) {
      expect([...svg.matchAll(/class="retention-image" data-image="(\d)" data-rows="(\d+)" data-cols="(\d+)"/g)].map((m) => m.slice(1).join())).toEqual([
        '0,2,4',
        '1,3,2',
      ]);
      expect(count(svg, 'class="tower-input"')).toBe(2);
      expect(count(svg, 'class="patch ')).toBe(14);
    }
    const [salience, pruned, retrieved] = nb.svgs as [string, string, string];
    expect(count(salience, 'class="patch candidate"')).toBe(14);
    const drawn = pruned
      .split('class="retention-image"')
      .slice(1)
      .map((g) => [...g.matchAll(/class="patch kept" data-token="(\d+)"/g)].map((m) => Number(m[1])));
    expect(drawn).toEqual(kept.map((k) => k.tokens));
    expect(count(retrieved, 'class="retrieved"')).toBe(3);
    const table = nb.htmls.find((h) => h.includes('class="retrieval"'))!;
    expect(count(table, 'data-retrieved="3"')).toBe(2);
    expect(nb.seconds).toBeLessThan(60);
    console.log(
      `notebook runtimes (s): ${Object.entries(runtimes)
        .map(([n, s]) => `${n} ${s.toFixed(1)}`)
        .join(', ')}`,
    );
  });
});
