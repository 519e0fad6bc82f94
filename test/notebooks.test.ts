/**
 * The notebooks run headless, as a user's Jupyter would run them: the tslab kernelspec is installed into a
 * temporary Jupyter prefix by the project's installer, each notebook is executed with nbconvert (one at a
 * time; each gets a fresh kernel), and the executed notebook's outputs are checked for content — no errors,
 * the retention maps with as many kept patches as the printed budgets, differing retrieval sets across turns,
 * the demo model's example questions asked with their reference answers beside the answers, the tuner's
 * candidates on the demo model with the Pareto front marked and its choice held out, a Qwen2.5-VL's images each on
 * its own grid with their M-RoPE positions — and, exported to HTML as Debian's nbconvert 6.5 exports them, the
 * figures still show (as PNGs).
 *
 * Needs Debian's jupyter-nbconvert, python3-nbclient and python3-ipykernel (scripts/system-deps.sh, run by
 * `npm test`) and the compiled package (`npm run build`: notebooks import dist/).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
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
/** A figure a show function displayed: its PNG and the hover box of each token (or sweep point) drawn. */
interface Shown {
  kind: string;
  png: Buffer;
  width: number;
  height: number;
  alt: string;
  spots: { coords: number[]; title: string; data: Record<string, string> }[];
}
interface Executed {
  cells: Cell[];
  stdout: string;
  figures: Shown[];
  htmls: string[];
  seconds: number;
  /** The executed notebook's file. */
  file: string;
}

/** The figures among HTML outputs: `<figure class=KIND><img src="data:image/png;base64,…"><map><area …>…`. */
function figuresOf(htmls: string[]): Shown[] {
  return htmls.flatMap((h) => {
    const m = h.match(/^<figure class="([\w-]+)"[^>]*><img src="data:image\/png;base64,([^"]+)" width="(\d+)" height="(\d+)" alt="([^"]*)"/);
    if (!m) return [];
    const spots = [...h.matchAll(/<area ([^>]+)>/g)].map((a) => {
      const attr = Object.fromEntries([...a[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
      const data = Object.fromEntries(Object.entries(attr).flatMap(([k, v]) => (k.startsWith('data-') ? [[k.slice(5), v]] : [])));
      return { coords: attr.coords!.split(',').map(Number), title: attr.title!, data };
    });
    return [{ kind: m[1]!, png: Buffer.from(m[2]!, 'base64'), width: Number(m[3]), height: Number(m[4]), alt: m[5]!, spots }];
  });
}

/** Tokens of a retention figure in a state (kept, pruned, candidate, or retrieved), in drawing order. */
const tokensIn = (f: Shown, state: string, image?: number) =>
  f.spots.filter((s) => s.data.state!.split(' ').includes(state) && (image === undefined || Number(s.data.image) === image)).map((s) => Number(s.data.token));

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
    figures: figuresOf(outputs.flatMap((o) => (o.data?.['text/html'] ? [join(o.data['text/html'])] : []))),
    htmls: outputs.flatMap((o) => (o.data?.['text/html'] ? [join(o.data['text/html'])] : [])),
    file: out,
  };
}

/**
 * The executed notebook exported to HTML as a reader gets it (`jupyter nbconvert --to html`: Debian's
 * nbconvert 6.5 runs every SVG and HTML output through lxml's clean_html), and the PNGs of its <img> data URLs.
 */
async function exportHtml(executed: string): Promise<{ html: string; pngs: Buffer[] }> {
  const out = executed.replace(/\.ipynb$/, '.html');
  await run(PYTHON, ['-m', 'jupyter', 'nbconvert', '--to', 'html', '--output', out, executed], {
    env: { ...process.env, JUPYTER_PATH: path.join(prefix, 'share', 'jupyter') },
    timeout: 120_000,
  });
  const html = fs.readFileSync(out, 'utf8');
  return { html, pngs: [...html.matchAll(/<img src="data:image\/png;base64,([^"]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64')) };
}

/** The exported page shows each figure as a decodable PNG, and no SVG the sanitiser emptied (a blank box and its patches' text). */
async function expectFiguresExported(nb: Executed): Promise<void> {
  const { html, pngs } = await exportHtml(nb.file);
  expect(pngs).toHaveLength(nb.figures.length);
  for (const [i, png] of pngs.entries()) {
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThanOrEqual(nb.figures[i]!.width);
    expect(png.length).toBeGreaterThan(2000);
    expect(png.equals(nb.figures[i]!.png)).toBe(true);
  }
  expect(html.includes('data-mime-type="image/svg+xml"'), `an SVG output in ${nb.file}'s export`).toBe(false);
  // Hover text lives in <area title="…"> attributes; as page text it would be what clean_html left of an SVG.
  const text = html.replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/g, '').replace(/<[^>]*>/g, ' ');
  expect(text.match(/token \d+ \(row \d+, col \d+\)[^\n]*/)?.[0], `patch text in ${nb.file}'s export`).toBeUndefined();
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
    expect(nb.figures.map((f) => f.kind)).toEqual(['retention-map']);
    const map = nb.figures[0]!;
    expect(tokensIn(map, 'kept')).toHaveLength(kept);
    expect(tokensIn(map, 'pruned')).toHaveLength(total - kept);
    // Layer 0's retrieval set (16 of the 32 kept), outlined alone: not the union of the 4 layers.
    expect(map.alt).toContain('Turn 1 · layer 0');
    const outlined = tokensIn(map, 'retrieved');
    expect(outlined).toHaveLength(16);
    for (const t of outlined) expect(tokensIn(map, 'kept')).toContain(t);
    expect((await sharp(map.png).metadata()).width).toBe(map.width * 2);
    await expectFiguresExported(nb);
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

  it("02-step-by-step: each step on the demo model's held-out image prints and shows what it decided, the answer beside its reference", async () => {
    const nb = await execute('02-step-by-step.ipynb');
    // The question and its reference come from the model's examples/conversations.json, read at run time.
    const question = demoImageExample().turns[0]!;
    expect(nb.stdout).toContain(`question: ${question.question} (reference answer: ${question.answer})`);
    // Encode: the CLIP tower's 64 tokens on its 8×8 grid, scored by CLS attention.
    expect(nb.stdout).toMatch(/encoded: 1 image, 64 tokens on a 8×8 grid, salience source: cls\n/);
    // Prune: the override (16), not the chat's policy (32), and exactly the 16 most salient.
    expect(fraction(nb.stdout, 'kept:')).toEqual([16, 64]);
    expect(nb.stdout).toContain('kept = top-16 by salience: true');
    const keptTokens = nb.stdout
      .match(/kept: 16\/64 tokens: ([\d, ]+)\n/)![1]!
      .split(', ')
      .map(Number);
    expect(new Set(keptTokens).size).toBe(16);
    // Prefill: the 16 kept visual tokens and the text, nothing of the 48 pruned.
    const [, prompt, text] = nb.stdout.match(/prompt tokens: (\d+) \(16 visual of 64, (\d+) text\)/)!;
    expect(Number(text)).toBeGreaterThan(0);
    expect(Number(prompt)).toBe(16 + Number(text));
    expect(nb.stdout).toMatch(/attention mass for 4 layers/);
    // Retrieve: the override (8 per layer, not the policy's 16), one set per LLaMA layer, drawn from the kept tokens.
    const sets = [...nb.stdout.matchAll(/layer (\d): retrieved 8 of 16: ([\d, ]+)\n/g)].map((m) => [Number(m[1]), m[2]!.split(', ').map(Number)] as const);
    expect(sets.map(([layer]) => layer)).toEqual([0, 1, 2, 3]);
    for (const [layer, ids] of sets) {
      expect(new Set(ids).size, `layer ${layer}`).toBe(8);
      for (const t of ids) expect(keptTokens, `layer ${layer}`).toContain(t);
    }
    expect(nb.stdout).toContain('every retrieved token was kept: true');
    // Decode: the demo model's one-word answer ends its turn (garbage would run to maxNewTokens), printed beside
    // the reference; each layer attended its 8 retrieved tokens.
    expect(nb.stdout).toMatch(/decoded: \d+ tokens? \[[\d, ]+\] "[^"]+", stop: eos\n/);
    const answered = nb.stdout.split('\n').filter((line) => line.startsWith(`question: ${question.question}  answer: "`));
    expect(answered).toHaveLength(1);
    expect(answered[0]).toMatch(/ {2}answer: "[a-z0-9-]+" \(reference: [^)]+\)$/);
    expect(answered[0]!.endsWith(` (reference: ${question.answer})`)).toBe(true);
    expect(nb.stdout).toContain('attended visual tokens per layer: 8, 8, 8, 8\n');
    // Salience before pruning, after pruning, then with layer 0's retrieval.
    expect(nb.figures.map((f) => f.kind)).toEqual(['retention-map', 'retention-map', 'retention-map']);
    const [salience, pruned, retrieved] = nb.figures as [Shown, Shown, Shown];
    expect(tokensIn(salience, 'candidate')).toHaveLength(64);
    // The printed kept tokens are the ones drawn kept; layer 0's printed set is the one outlined.
    expect(tokensIn(pruned, 'kept')).toEqual([...keptTokens].sort((a, b) => a - b));
    expect(tokensIn(pruned, 'pruned')).toHaveLength(48);
    expect(tokensIn(retrieved, 'kept')).toHaveLength(16);
    expect(tokensIn(retrieved, 'retrieved')).toEqual([...sets[0]![1]].sort((a, b) => a - b));
    await expectFiguresExported(nb);
    const table = nb.htmls.find((h) => h.includes('class="retrieval"'))!;
    expect(count(table, 'data-retrieved="8"')).toBe(4);
    expect(nb.htmls.some((h) => h.includes('class="latency"') && h.includes('TTFT'))).toBe(true);
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
    // One retention map per turn: same pruning, each outlining its turn's layer-0 set — the one printed.
    expect(nb.figures).toHaveLength(n);
    for (const f of nb.figures) expect(tokensIn(f, 'kept')).toHaveLength(48);
    nb.figures.forEach((f, t) =>
      expect(
        tokensIn(f, 'retrieved')
          .map((token) => `0:${token}`)
          .join(' '),
        `turn ${t + 1}`,
      ).toBe(sets.get(`${t}/0`)),
    );
    await expectFiguresExported(nb);
    expect(nb.htmls.filter((h) => h.includes('class="retrieval"'))).toHaveLength(n);
  });

  it('04-budget-sweep: the tuner on the demo model — one point per candidate, the front marked, a choice that meets its floor held out', async () => {
    const nb = await execute('04-budget-sweep.ipynb');
    const candidates = [
      ...nb.stdout.matchAll(/^#(\d+) (.+): (\d+) conversations, token agreement ([\d.]+)% \(95% lower ([\d.]+)%\), kv-bytes ×([\d.]+); (pass|fail|open)/gm),
    ];
    expect(candidates).toHaveLength(8);
    expect(nb.stdout).toContain('candidates: 8');
    expect(nb.figures.map((f) => f.kind)).toEqual(['budget-sweep']);
    const plot = nb.figures[0]!;
    expect(plot.spots).toHaveLength(8);
    // The printed front is the marked one.
    const front = plot.spots.filter((s) => s.data.pareto === 'true').map((s) => s.data.label);
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
    expect(nb.figures).toHaveLength(3);
    for (const f of nb.figures) {
      // Per image, its tokens' boxes tile a rows × cols grid of its own.
      const grids = [0, 1].map((image) => {
        const boxes = f.spots.filter((s) => Number(s.data.image) === image).map((s) => s.coords);
        return `${boxes.length}:${new Set(boxes.map((c) => c[1])).size}x${new Set(boxes.map((c) => c[0])).size}`;
      });
      expect(grids).toEqual(['8:2x4', '6:3x2']);
    }
    const [salience, pruned, retrieved] = nb.figures as [Shown, Shown, Shown];
    expect(tokensIn(salience, 'candidate')).toHaveLength(14);
    expect([0, 1].map((image) => tokensIn(pruned, 'kept', image))).toEqual(kept.map((k) => k.tokens));
    expect(tokensIn(retrieved, 'retrieved')).toHaveLength(3);
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
