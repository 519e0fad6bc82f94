/**
 * Runs a person can tell apart, in the profiler page (headless Chromium against the real server): the same
 * policy on an image and on an 8-frame video reads as two different runs, named by media, file, question and
 * policy; the sweep draws one Pareto front per workload with its dense reference labelled; the run list
 * filters by text and media kind; a rename survives a reload; a URL reproduces a view and back returns to
 * the previous one; at 1024×768 nothing in the top bar or the view's toolbar overlaps.
 */
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import type { TraceEvent } from '../dist/src/trace/index.js';
import { factsOfModel, runIdentity } from '../profiler-ui/web/data/run-identity.js';
import { foldEvents } from '../profiler-ui/web/data/run-model.js';
import { sweepWorkloads } from '../profiler-ui/web/data/sweep-data.js';
import { launchBrowser, saveScreenshot, type TestBrowser } from './helpers/browser.js';
import { tempDir } from './helpers/engine.js';

interface Workload {
  /** Frames of a video (their image events carry times), or still images. */
  frames?: number;
  images?: number;
  file: string;
  question: string;
}

interface Measured {
  keep: number | null; // null: dense
  decodeMs: number;
  kl: number;
}

const IMAGE: Workload = { images: 1, file: 'street.jpg', question: 'What colour is the car parked by the door?' };
const VIDEO: Workload = { frames: 8, file: 'clip.mp4', question: 'What happens in this video?' };

/** One turn of a run with the engine's event shapes: its media, kept sets, decode steps, and fidelity unless dense. */
function workloadRun(run: string, w: Workload, m: Measured, jpeg: string): TraceEvent[] {
  const count = w.frames ?? w.images ?? 0;
  const policy = m.keep == null ? { method: 'dense' } : { method: 'sparsevila', keep: { budget: { ratio: m.keep } }, retrieve: { budget: { ratio: 0.25 } } };
  const label = m.keep == null ? 'dense' : `SparseVILA keep ${m.keep * 100}% · retrieve 25%`;
  const ev: TraceEvent[] = [
    {
      run,
      t: 0,
      type: 'run.start',
      version: 1,
      model: { dir: '/models/sparsevila-demo', vision: 'siglip', text: 'qwen2', layers: 2, heads: 2, kvHeads: 1, imageTokens: 16 },
      policy,
      label,
      options: {},
    },
    { run, t: 1, type: 'turn.start', turn: 0, text: w.question, images: count },
  ];
  for (let i = 0; i < count; i++) {
    ev.push({ run, t: 2, type: 'image', turn: 0, image: i, width: 16, height: 16, jpeg, file: w.file, ...(w.frames ? { timestamps: [i / 2] } : {}) });
    const kept = Array.from({ length: Math.round(16 * (m.keep ?? 1)) }, (_, k) => k);
    ev.push({ run, t: 3, type: 'kept', turn: 0, image: i, total: 16, kept });
  }
  for (let step = 1; step <= 3; step++) ev.push({ run, t: 4 + step, type: 'decode.step', turn: 0, step, ms: m.decodeMs, attended: 40, visualAttended: 8 });
  ev.push({ run, t: 9, type: 'turn.end', turn: 0, answer: 'Red.', stopReason: 'eos', metrics: { firstTokenSeconds: 0.1, totalSeconds: 0.2 } });
  if (m.keep != null) ev.push({ run, t: 10, type: 'fidelity', turn: 0, metrics: { steps: 3, tokenAgreement: 1 - m.kl, meanKl: m.kl } });
  return ev;
}

/** Image and video runs of the same policies: keep 50% on both (one run each), keep 25%, and dense. */
const RUNS: [string, Workload, Measured][] = [
  ['img-dense', IMAGE, { keep: null, decodeMs: 30, kl: 0 }],
  ['img-keep50', IMAGE, { keep: 0.5, decodeMs: 20, kl: 0.02 }],
  ['img-keep25', IMAGE, { keep: 0.25, decodeMs: 15, kl: 0.05 }],
  ['vid-dense', VIDEO, { keep: null, decodeMs: 90, kl: 0 }],
  ['vid-keep50', VIDEO, { keep: 0.5, decodeMs: 60, kl: 0.01 }],
  ['vid-keep25', VIDEO, { keep: 0.25, decodeMs: 45, kl: 0.03 }],
];

async function until(page: Page, what: string, fn: string, timeout = 20_000): Promise<void> {
  try {
    await page.waitForFunction(fn, undefined, { timeout, polling: 50 });
  } catch (err) {
    const shot = await saveScreenshot(page, `failed-${what.replace(/[^a-z0-9]+/gi, '-')}`, { fullPage: true }).catch(() => 'no screenshot');
    throw new Error(`timed out waiting for ${what} (page: ${shot}): ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Pairs of visible elements among `selector` whose boxes overlap (by more than half a pixel each way). */
async function overlaps(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(selector, (els) => {
    const boxes = els
      .map((el) => ({ el, r: el.getBoundingClientRect() }))
      .filter(({ r }) => r.width > 0 && r.height > 0)
      .map(({ el, r }) => ({ name: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className}`, r }));
    const out: string[] = [];
    for (let i = 0; i < boxes.length; i++)
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i]!.r;
        const b = boxes[j]!.r;
        if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5)
          out.push(`${boxes[i]!.name} × ${boxes[j]!.name}`);
      }
    return out;
  });
}

const optionText = (page: Page, run: string) => page.textContent(`#run-select option[value="${run}"]`);

describe('run identity (pure)', () => {
  it('the same policy on an image and on 8 frames reads as two runs of two workloads, named by media, file and question', async () => {
    const jpeg = '';
    const ids = RUNS.map(([run, w, m]) => {
      const model = foldEvents(workloadRun(run, w, m, jpeg)).get(run)!;
      return runIdentity(run, model.start, model.start?.model.dir, factsOfModel(model));
    });
    const [img, vid] = [ids[1]!, ids[4]!];
    expect(img.policy).toBe(vid.policy);
    expect(img.label).not.toBe(vid.label);
    expect(img.label).toBe('SparseVILA keep 50% · retrieve 25% · image · street.jpg · “What colour is the car parked by the door?” · sparsevila-demo · img-ke');
    expect(vid.label).toMatch(/^SparseVILA keep 50% · retrieve 25% · 8 frames · clip\.mp4 · “What happens in this video\?” · sparsevila-demo/);
    expect(new Set(ids.map((i) => i.workload)).size).toBe(2);
    const fronts = sweepWorkloads(
      RUNS.map(([run, w, m]) => foldEvents(workloadRun(run, w, m, jpeg)).get(run)!),
      'decode',
      'kl',
    );
    // Within the video workload, keep 25% is cheaper and keep 50% closer to dense: both on its front. The
    // image runs are cheaper than either, but they are another workload's front, not this one's.
    expect(fronts.map((g) => [g.label, g.front.map((p) => p.s.run), g.dense.map((d) => d.s.run)])).toEqual([
      ['image · street.jpg · sparsevila-demo', ['img-keep25', 'img-keep50'], ['img-dense']],
      ['8 frames · clip.mp4 · sparsevila-demo', ['vid-keep25', 'vid-keep50'], ['vid-dense']],
    ]);
  });
});

describe('run identity in Chromium', () => {
  let server: ProfilerServer;
  let browser: TestBrowser;
  const dataDir = tempDir('ui-identity-data');

  beforeAll(async () => {
    [server, browser] = await Promise.all([startProfiler({ dataDir, log: () => undefined }), launchBrowser()]);
    const jpeg = (
      await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c0392b' } })
        .jpeg()
        .toBuffer()
    ).toString('base64');
    for (const [run, w, m] of RUNS) for (const e of workloadRun(run, w, m, jpeg)) server.ingest(e);
    server.endInProcess();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('labels the image and the video run of one policy apart, groups the list by workload, filters it, and keeps a rename across a reload', async () => {
    const { page, errors } = await browser.page({ width: 1440, height: 900 });
    await page.goto(`${server.url}`);
    await until(page, 'every run listed', `document.querySelectorAll('#run-select option').length === ${RUNS.length}`);
    const img = await optionText(page, 'img-keep50');
    const vid = await optionText(page, 'vid-keep50');
    expect(img).not.toBe(vid);
    expect(img).toContain('SparseVILA keep 50% · retrieve 25% · image · street.jpg · “What colour is the car parked by the door?”');
    expect(vid).toContain('SparseVILA keep 50% · retrieve 25% · 8 frames · clip.mp4 · “What happens in this video?”');
    expect(await page.$$eval('#run-select optgroup', (gs) => gs.map((g) => (g as HTMLOptGroupElement).label).sort())).toEqual([
      '8 frames · clip.mp4 · sparsevila-demo',
      'image · street.jpg · sparsevila-demo',
    ]);

    await page.fill('#run-filter', 'clip keep');
    await until(page, 'the filtered list', `document.querySelector('#run-pick').dataset.shown !== '${RUNS.length}'`);
    const shown = await page.$$eval('#run-select option', (os) => os.map((o) => (o as HTMLOptionElement).value));
    // The video runs with a keep budget, and the current run (listed whatever the filter says).
    const current = await page.evaluate(() => window.profiler.state.run);
    expect(shown.sort()).toEqual([...new Set(['vid-keep25', 'vid-keep50', current])].sort());
    await page.fill('#run-filter', '');
    await page.click('.kind-chip[data-kind="image"]');
    await until(
      page,
      'the image chip',
      `document.querySelector('#run-pick').dataset.shown === '3' || document.querySelector('#run-pick').dataset.shown === '4'`,
    );
    const images = await page.$$eval('#run-select option', (os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(images.filter((r) => r !== current).every((r) => r.startsWith('img-'))).toBe(true);
    await page.click('.kind-chip[data-kind="image"]');

    await page.evaluate(() => window.profiler.setState({ route: 'run', run: 'vid-keep50' }));
    page.once('dialog', (d) => void d.accept('baseline video, keep 50%'));
    await page.click('#rename');
    await until(
      page,
      'the renamed run',
      `document.querySelector('#run-select option[value="vid-keep50"]')?.textContent.startsWith('baseline video, keep 50%')`,
    );
    await page.reload();
    await until(
      page,
      'the name after a reload',
      `document.querySelector('#run-select option[value="vid-keep50"]')?.textContent.startsWith('baseline video, keep 50% · 8 frames')`,
    );
    expect(errors).toEqual([]);
    await page.close();
  });

  it('draws one Pareto front per workload in the sweep, each through its own runs, with its dense reference labelled', async () => {
    const { page, errors } = await browser.page({ width: 1440, height: 900 });
    await page.goto(`${server.url}#/sweep`);
    await until(
      page,
      'the sweep',
      `document.querySelector('.sweep-view')?.dataset.points === '4' && document.querySelector('.sweep-view')?.dataset.workloads === '2'`,
    );
    const plot = await page.$eval('.sweep-plot', (gd) => {
      const el = gd as HTMLElement & { data: any[]; layout: any };
      return {
        fronts: el.data.filter((t) => t.meta?.kind === 'front').map((t) => ({ x: t.x, colour: t.line.color, workload: t.meta.workload })),
        points: el.data.filter((t) => t.meta?.kind === 'points').map((t) => ({ runs: t.customdata, colour: t.marker.color, name: t.name })),
        dense: el.layout.annotations.map((a: any) => a.text),
      };
    });
    expect(plot.fronts).toHaveLength(2);
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(plot.points.map((p) => [p.name, [...p.runs].sort()]).sort()).toEqual([
      ['8 frames · clip.mp4 · sparsevila-demo', ['vid-keep25', 'vid-keep50']],
      ['image · street.jpg · sparsevila-demo', ['img-keep25', 'img-keep50']],
    ]);
    // Each front runs through its own workload's points (decode ms: image 15 and 20, video 45 and 60), in its colour.
    const named = plot.fronts.map((f, i) => ({ ...f, name: plot.points[i]!.name })).sort(byName);
    expect(named.map((f) => f.x)).toEqual([
      [45, 60],
      [15, 20],
    ]);
    expect(plot.fronts.map((f) => f.colour)).toEqual(plot.points.map((p) => p.colour));
    expect(plot.dense.sort()).toEqual(['dense · 8 frames', 'dense · image']);
    await saveScreenshot(page, 'sweep-workloads', { fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('reproduces a view from its URL (run, turn, layer, heat, frame size, heatmap mode), and back returns to the run before', async () => {
    const { page, errors } = await browser.page({ width: 1440, height: 900 });
    await page.goto(`${server.url}#/run/img-keep50`);
    await until(page, 'the first run', `document.querySelector('.run-view')?.dataset.run === 'img-keep50'`);
    await page.selectOption('#run-select', 'vid-keep25');
    await until(page, 'the picked run', `document.querySelector('.run-view')?.dataset.run === 'vid-keep25'`);
    await page.evaluate(() => window.profiler.setState({ turn: 0, layer: 1, heat: false, size: 's', hmMode: 'frames' }));
    const hash = await page.evaluate(() => location.hash);
    expect(hash).toBe('#/run/vid-keep25?turn=0&layer=1&heat=0&size=s&mode=frames');

    const { page: other } = await browser.page({ width: 1440, height: 900 });
    await other.goto(`${server.url}${hash}`);
    await until(
      other,
      'the linked view',
      `document.querySelector('.run-view')?.dataset.run === 'vid-keep25' && document.querySelector('.run-view')?.dataset.layer === '1'`,
    );
    const pick = (s: any) => ({
      route: s.route,
      run: s.run,
      turn: s.turn,
      turnPinned: s.turnPinned,
      layer: s.layer,
      heat: s.heat,
      size: s.size,
      hmMode: s.hmMode,
    });
    expect(pick(await other.evaluate(() => window.profiler.state))).toEqual({
      route: 'run',
      run: 'vid-keep25',
      turn: 0,
      turnPinned: true,
      layer: 1,
      heat: false,
      size: 's',
      hmMode: 'frames',
    });
    await other.close();

    await page.goBack();
    await until(page, 'back to the first run', `document.querySelector('.run-view')?.dataset.run === 'img-keep50'`);
    await page.goForward();
    await until(page, 'forward again', `document.querySelector('.run-view')?.dataset.run === 'vid-keep25'`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('titles a PNG export with the run, its policy, workload, question and turn, above the chart', async () => {
    const { page, errors } = await browser.page({ width: 1440, height: 900 });
    await page.goto(`${server.url}#/run/img-keep50?turn=0`);
    await until(page, 'the decode steps', `!!document.querySelector('#p-steps .main-svg')`);
    const caption = await page.evaluate(() => window.profiler.exportCaption());
    expect(caption).toEqual([
      'SparseVILA keep 50% · retrieve 25% · image · street.jpg · sparsevila-demo · run img-keep · turn 1',
      '“What colour is the car parked by the door?”',
    ]);
    const plotHeight = await page.$eval('#p-steps .js-plotly-plot', (el) => el.clientHeight);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#p-steps button[data-export]')]);
    const meta = await sharp(await download.path()).metadata();
    // Plotly draws at 2×; the title block (12 px + 18 px a line) sits on top at the same density.
    expect(meta.height! / 2 - plotHeight).toBeCloseTo(12 + 18 * caption.length, 0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('follows a dark system theme: the page, the Plotly charts and the D3 legend', async () => {
    const { page, errors } = await browser.page({ width: 1440, height: 900 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${server.url}#/run/vid-keep50`);
    await until(page, 'the run drawn', `!!document.querySelector('#p-steps .main-svg') && !!document.querySelector('.rm-legend svg')`);
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(11, 17, 32)');
    expect(await page.$eval('#p-steps .js-plotly-plot', (gd) => (gd as HTMLElement & { layout: { paper_bgcolor: string } }).layout.paper_bgcolor)).toBe(
      '#111827',
    );
    expect(await page.$eval('.rm-legend svg text', (t) => t.getAttribute('fill'))).toBe('#cbd5e1');
    await saveScreenshot(page, 'dark-run');
    // Switching back to light while the page is open redraws the charts in light colours.
    await page.emulateMedia({ colorScheme: 'light' });
    await until(page, 'the light charts', `document.querySelector('#p-steps .js-plotly-plot')?.layout?.paper_bgcolor === '#ffffff'`);
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${server.url}#/sweep`);
    await until(page, 'the sweep', `document.querySelector('.sweep-view')?.dataset.workloads === '2'`);
    await saveScreenshot(page, 'dark-sweep');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('at 1024×768, no two elements of the top bar or of a view’s toolbar overlap', async () => {
    const { page, errors } = await browser.page({ width: 1024, height: 768 });
    for (const hash of ['#/run/vid-keep50', '#/compare/vid-dense/vid-keep50', '#/sweep']) {
      await page.goto(`${server.url}${hash}`);
      await until(page, `${hash} drawn`, `!!document.querySelector('.toolbar') && document.querySelectorAll('#run-select option').length === ${RUNS.length}`);
      await page.waitForTimeout(200);
      expect(await overlaps(page, '.topbar > *'), hash).toEqual([]);
      expect(await overlaps(page, '.run-pick > *'), hash).toEqual([]);
      expect(await overlaps(page, '.toolbar > *'), hash).toEqual([]);
      // Nothing sticks out of the window either.
      const right = await page.$$eval('.topbar > *, .toolbar > *', (els) => Math.max(...els.map((e) => e.getBoundingClientRect().right)));
      expect(right, hash).toBeLessThanOrEqual(1024);
      await saveScreenshot(page, `narrow-1024${hash.replace(/[^a-z]+/g, '-')}`);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
});
