/**
 * The profiler page (profiler-ui/web/) in headless Chromium against the real server: the token gate, a
 * live chat run appearing while it streams, retention-map counts equal to the trace's kept and retrieval
 * sets, the layer slider, the dense-vs-sparse comparison, PNG export and trace download, drop notices, and
 * responsiveness on a 64-frame video trace. Also the page's pure data layer (run model, summaries, Pareto).
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import NodeWebSocket from 'ws';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import type { SparsityPolicy } from '../dist/src/index.js';
import { MemorySink, Tracer, WebSocketSink, type TraceEvent } from '../dist/src/trace/index.js';
import { serializeEvent } from '../dist/src/trace/jsonl-sink.js';
// The page's data layer is plain browser-free ES modules: the tests import it as the page does.
import { foldEvents } from '../profiler-ui/web/data/run-model.js';
import { countsAt, gridOf, imagesAtTurn, retrievalAt, retrievalStatus, tokenStates } from '../profiler-ui/web/data/run-queries.js';
import { isDense, paretoFront, pointLabels, policyLabel, runSummary } from '../profiler-ui/web/data/summary.js';
import { ARTIFACTS_DIR, launchBrowser, gotoRun, saveScreenshot, until, type TestBrowser } from './helpers/browser.js';
import { CLIP_FIXTURE, REPO_ROOT } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';
import { QWEN_IMAGES, QWEN_SPARSE, qwenTraces } from './helpers/qwen-trace.js';
import { videoTrace } from './helpers/video-trace.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
type Retrieval = Extract<TraceEvent, { type: 'retrieval' }>;
type Kept = Extract<TraceEvent, { type: 'kept' }>;

const IMAGE = path.join(CLIP_FIXTURE, 'image.png');
const SPARSE = engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.25 } } });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// Browser helpers.

async function setLayer(page: Page, layer: number): Promise<void> {
  await page.evaluate((l) => {
    const slider = document.querySelector<HTMLInputElement>('#layer')!;
    slider.value = String(l);
    slider.dispatchEvent(new Event('input', { bubbles: true }));
  }, layer);
  await until(page, `layer ${layer}`, `document.querySelector('.run-view')?.dataset.layer === '${layer}'`);
}

async function setTurn(page: Page, turn: number): Promise<void> {
  await page.selectOption('#turn', { value: String(turn) });
  await until(page, `turn ${turn}`, `document.querySelector('.run-view')?.dataset.turn === '${turn}'`);
}

/** Tokens of the highlighted patch elements in the retention map, by state. */
async function patchTokens(page: Page, state: 'kept' | 'pruned' | 'retrieved'): Promise<string[]> {
  return page.$$eval(`#p-retention [data-state="${state}"]`, (els) =>
    els.map((e) => `${e.closest('svg')!.getAttribute('data-image')}:${e.getAttribute('data-token')}`).sort(),
  );
}

type QwenRun = { run: string; events: TraceEvent[] };

/** Each retention frame SVG under `scope`: its image, grid (distinct cell columns and rows), viewBox, picture and cell sizes, and the picture's on-screen aspect. */
async function drawnGrids(page: Page, scope: string) {
  return page.$$eval(`${scope} svg.frame-svg`, (svgs) =>
    svgs.map((svg) => {
      const cells = [...svg.querySelectorAll('g.cells rect')];
      const at = (el: Element, name: string) => Number(el.getAttribute(name));
      const picture = svg.querySelector('image.picture')!;
      const shown = picture.getBoundingClientRect();
      const vb = (svg as SVGSVGElement).viewBox.baseVal;
      return {
        image: at(svg, 'data-image'),
        cells: cells.length,
        cols: new Set(cells.map((c) => at(c, 'x'))).size,
        rows: new Set(cells.map((c) => at(c, 'y'))).size,
        viewBox: [vb.width, vb.height],
        picture: [at(picture, 'width'), at(picture, 'height')],
        cellSizes: [...new Set(cells.map((c) => `${at(c, 'width')}x${at(c, 'height')}`))],
        shownAspect: shown.width / shown.height,
      };
    }),
  );
}

const retrievalOf = (events: TraceEvent[], turn: number, layer: number) =>
  events.find((e): e is Retrieval => e.type === 'retrieval' && e.turn === turn && e.layer === layer)!;

const retrievedIds = (r: Retrieval) => r.retrieved.map((i) => `${r.candidates[i]!.image}:${r.candidates[i]!.token}`).sort();

const isPng = (bytes: Buffer) => bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

// ---------------------------------------------------------------------------------------------------------

describe('profiler page data layer (pure)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('ui-model-graphs'), threads: 1 });
  });
  afterAll(async () => {
    await model?.close();
  });

  it('folds a real two-turn SparseVILA trace: per-image kept sets, per-turn per-layer retrieval sets, spans, steps, answers, fidelity', async () => {
    const memory = new MemorySink();
    const tracer = new Tracer([memory]);
    const chat = model.chat({ maxNewTokens: 6, policy: SPARSE, tracer, fidelity: true });
    const a1 = await chat.ask({ images: [IMAGE], text: 'What is shown?' });
    await chat.ask({ text: 'And the corner?' });
    await chat.close();
    const m = foldEvents(memory.events).get(tracer.run)!;
    const kept = memory.of('kept')[0]!;
    expect(imagesAtTurn(m, 0)).toEqual([0]);
    expect(imagesAtTurn(m, 1)).toEqual([0]);
    for (const turn of [0, 1]) {
      for (let layer = 0; layer < 2; layer++) {
        const r = retrievalOf(memory.events, turn, layer);
        const c = countsAt(m, turn, layer);
        expect(c).toMatchObject({
          images: 1,
          total: kept.total,
          kept: kept.kept.length,
          pruned: kept.total - kept.kept.length,
          retrieved: r.retrieved.length,
          candidates: r.candidates.length,
        });
        const st = tokenStates(m, 0, turn, layer);
        expect(Array.from(st.state).flatMap((s, i) => (s ? [i] : []))).toEqual(Array.from(kept.kept));
        expect(
          Array.from(st.retrieved)
            .flatMap((s, i) => (s ? [`0:${i}`] : []))
            .sort(),
        ).toEqual(retrievedIds(r));
        // Candidates are stored once per turn, not once per layer.
        expect(retrievalAt(m, turn, layer)!.candidates).toBe(m.turns.get(turn)!.candidates);
      }
    }
    const s = runSummary(m);
    // The label the engine wrote in run.start; the page's generic one for a trace without it.
    expect(s.label).toBe(memory.of('run.start')[0]!.label ?? 'sparsevila keep 50% · retrieve 25%');
    expect(s.turns).toBe(2);
    expect(s.keptTokens).toBe(kept.kept.length);
    expect(s.answers[0]).toBe(a1.text);
    const fid = memory.of('fidelity').map((e) => e.metrics as { steps: number; tokenAgreement: number });
    expect(s.hasFidelity).toBe(true);
    expect(s.tokenAgreement).toBeCloseTo(fid.reduce((a, f) => a + f.tokenAgreement * f.steps, 0) / fid.reduce((a, f) => a + f.steps, 0), 12);
    expect(m.turns.get(0)!.steps.length).toBe(memory.of('decode.step').filter((e) => e.turn === 0).length);
    expect(s.stages.prefill).toBeCloseTo(
      memory
        .of('span')
        .filter((e) => e.stage === 'prefill')
        .reduce((a, e) => a + e.duration, 0),
      9,
    );
  });

  it("folds a native-resolution (Qwen2.5-VL) trace: each image's grid and token count are its own, with or without its salience events", async () => {
    const { run, events } = (await qwenTraces()).runs[0]!;
    const kept = events.filter((e): e is Kept => e.type === 'kept');
    for (const trace of [events, events.filter((e) => e.type !== 'salience')]) {
      const m = foldEvents(trace).get(run)!;
      expect(m.start?.model?.imageTokens).toBe(0);
      QWEN_IMAGES.forEach(({ rows, cols }, image) => {
        expect(gridOf(m, image), `image ${image}`).toEqual({ rows, cols, leading: 0 });
        const st = tokenStates(m, image, 0, 0);
        expect(st.total).toBe(rows * cols);
        expect(Array.from(st.state).flatMap((s, i) => (s ? [i] : []))).toEqual(kept[image]!.kept);
      });
      expect(countsAt(m, 0, 0)).toMatchObject({ images: 2, total: 8 + 6, kept: kept[0]!.kept.length + kept[1]!.kept.length });
    }
  });

  it('labels a run by its run.start label, else from the policy value alone, the same way for any method', () => {
    expect(policyLabel({ policy: { method: 'fastv', layer: 2, dropRatio: 0.5 }, label: 'FastV K=2 R=50%' })).toBe('FastV K=2 R=50%');
    expect(policyLabel({ policy: { method: 'dense' } })).toBe('dense');
    expect(policyLabel({ policy: SPARSE })).toBe('sparsevila keep 50% · retrieve 25%');
    expect(policyLabel({ policy: { method: 'fastv', layer: 2, dropRatio: 0.5 } })).toBe('fastv layer 2 · dropRatio 0.5');
    expect(policyLabel({ policy: { method: 'pdrop', layers: [8, 16], keepRatios: [0.5, 0.25] } })).toBe('pdrop layers 8/16 · keepRatios 0.5/0.25');
    // A method the page has never heard of: its budgets and numbers, not its modes.
    expect(policyLabel({ policy: { method: 'newmethod', keep: { budget: { count: 64 } }, mode: 'fast' } })).toBe('newmethod keep 64');
    expect(policyLabel(null)).toBe('unknown policy');
    expect([isDense({ policy: { method: 'dense' } }), isDense({ policy: SPARSE }), isDense(null)]).toEqual([true, false, false]);
    // Sweep points drop the method's name that every label of their group starts with (the legend says it).
    expect(pointLabels(['SparseVILA keep 50% · retrieve 25%', 'SparseVILA keep 25% · retrieve 25%'])).toEqual([
      'keep 50% · retrieve 25%',
      'keep 25% · retrieve 25%',
    ]);
    expect(pointLabels(['FastV K=2 R=50%', 'fastv layer 2'])).toEqual(['FastV K=2 R=50%', 'fastv layer 2']);
    expect(pointLabels(['dense'])).toEqual(['dense']);
  });

  it('tells from the trace alone whether a turn without retrieval sets is waiting for them or its run never retrieves', () => {
    const start = (run: string): TraceEvent =>
      ({
        run,
        t: 0,
        type: 'run.start',
        version: 1,
        model: { dir: 'm', vision: 'clip', text: 'llama', layers: 2, heads: 2, kvHeads: 2, imageTokens: 4 },
        policy: { method: 'x' },
        options: {},
      }) as TraceEvent;
    const turn = (run: string, t: number, turn: number): TraceEvent => ({ run, t, type: 'turn.start', turn, text: 'q', images: 0 });
    const token = (run: string, t: number, turn: number): TraceEvent => ({ run, t, type: 'token', turn, step: 0, id: 1, text: 'a' });
    const retrieval = (run: string, t: number, turn: number): TraceEvent => ({
      run,
      t,
      type: 'retrieval',
      turn,
      layer: 0,
      candidates: [{ image: 0, token: 1 }],
      scores: [1],
      retrieved: [0],
    });
    const models = foldEvents([
      start('r'),
      turn('r', 1, 0),
      retrieval('r', 2, 0),
      token('r', 3, 0),
      turn('r', 4, 1),
      start('d'),
      turn('d', 1, 0),
      token('d', 2, 0),
      turn('d', 3, 1),
      start('n'),
      turn('n', 1, 0),
    ]);
    const status = (run: string, t: number) => retrievalStatus(models.get(run)!, t);
    expect([status('r', 0), status('r', 1)]).toEqual(['retrieved', 'pending']);
    expect([status('d', 0), status('d', 1)]).toEqual(['none', 'none']);
    expect(status('n', 0)).toBe('pending');
  });

  it('finds the Pareto front (no other point better on both axes)', () => {
    const pts = [
      { x: 1, y: 5 },
      { x: 2, y: 3 },
      { x: 3, y: 4 }, // beaten by (2, 3)
      { x: 4, y: 1 },
      { x: 4, y: 2 }, // beaten by (4, 1)
      { x: NaN, y: 0 },
    ];
    expect(paretoFront(pts)).toEqual([0, 1, 3]);
    expect(paretoFront(pts, { xBetter: 'min', yBetter: 'max' })).toEqual([0]);
  });
});

describe('profiler page in Chromium', () => {
  let model: Model;
  let server: ProfilerServer;
  let browser: TestBrowser;
  let page: Page;
  let errors: string[];
  const runs: { sparse?: { run: string; events: TraceEvent[] }; dense?: { run: string; events: TraceEvent[] } } = {};

  beforeAll(async () => {
    [model, server, browser] = await Promise.all([
      engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('ui-graphs'), threads: 1 }),
      startProfiler({ log: () => undefined }),
      launchBrowser(),
    ]);
    ({ page, errors } = await browser.page());
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await model?.close();
  });

  /** A chat streaming through WebSocketSink to the server; `duringFirstTurn` runs after its first token. */
  async function liveChat(policy: SparsityPolicy, duringFirstTurn?: (run: string) => Promise<void>) {
    const memory = new MemorySink();
    const sink = new WebSocketSink(server.ingestUrl);
    const tracer = new Tracer([sink, memory]);
    const chat = model.chat({ maxNewTokens: 8, policy, tracer, fidelity: policy.method !== 'dense' });
    const stream = chat.stream({ images: [IMAGE], text: 'What is shown?' });
    let first = true;
    for (let r = await stream.next(); !r.done; r = await stream.next()) {
      if (first && duringFirstTurn) await duringFirstTurn(tracer.run);
      first = false;
    }
    await chat.ask({ text: 'What colour is the top left corner?' });
    await chat.close();
    await tracer.close();
    expect(sink.dropped).toBe(0);
    return { run: tracer.run, events: memory.events };
  }

  it('refuses the page and its socket without the token (401, the socket closes) and serves it with the token', async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const bare = await page.goto(`${origin}/`);
    expect(bare!.status()).toBe(401);
    expect(await page.textContent('body')).toMatch(/token/);
    const socket = await page.evaluate(
      (url) =>
        new Promise<{ opened: boolean; code: number }>((resolve) => {
          const ws = new WebSocket(url);
          let opened = false;
          ws.onopen = () => (opened = true);
          ws.onclose = (ev) => resolve({ opened, code: ev.code });
        }),
      `ws://127.0.0.1:${server.port}/ws/live`,
    );
    expect(socket.opened).toBe(false);
    const nodeSocket = await new Promise<number>((resolve) => {
      const ws = new NodeWebSocket(`ws://127.0.0.1:${server.port}/ws/live`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(nodeSocket).toBe(401);

    const ok = await page.goto(server.url);
    expect(ok!.status()).toBe(200);
    await until(page, 'the live socket', `document.querySelector('#status')?.dataset.state === 'live'`);
    expect(await page.textContent('#main')).toMatch(/No runs yet/);
    await saveScreenshot(page, 'empty');
    errors.length = 0; // the refused requests above logged their 401s
  });

  it('shows a live run while it streams (before its first turn ends), then its later turns without a reload', async () => {
    let seenWhileRunning = false;
    runs.sparse = await liveChat(SPARSE, async (run) => {
      // The first turn is mid-decode: the page must already show this run and its question.
      await until(page, 'the live run in the run list', `[...document.querySelectorAll('#run-select option')].some((o) => o.value === ${JSON.stringify(run)})`);
      await until(page, 'the live run drawn', `document.querySelector('.run-view')?.dataset.run === ${JSON.stringify(run)}`);
      await until(page, 'the streaming turn', `!!document.querySelector('.conversation .turn[data-turn="0"] .chip.live')`);
      expect(await page.textContent('.conversation .turn[data-turn="0"]')).toMatch(/What is shown\?/);
      expect(await page.$eval('#run-select', (s: HTMLSelectElement) => s.selectedOptions[0]!.textContent)).toMatch(/● live/);
      await saveScreenshot(page, 'live-mid-turn');
      seenWhileRunning = true;
    });
    expect(seenWhileRunning).toBe(true);
    const { run } = runs.sparse;
    await until(page, 'turn 1 answered live', `!!document.querySelector('.conversation .turn[data-turn="1"] .metrics span')`);
    await until(page, 'the run no longer live', `!document.querySelector('#run-select').selectedOptions[0].textContent.includes('live')`);
    const answers = runs.sparse.events.filter((e) => e.type === 'turn.end') as Extract<TraceEvent, { type: 'turn.end' }>[];
    expect(answers).toHaveLength(2);
    expect(await page.$eval('.run-view', (v) => (v as HTMLElement).dataset.run)).toBe(run);
    expect(errors).toEqual([]);
  });

  it('highlights exactly the kept tokens and, per layer, exactly the retrieval set; the layer slider moves the overlay', async () => {
    const { run, events } = runs.sparse!;
    await gotoRun(page, run);
    const kept = events.filter((e): e is Kept => e.type === 'kept');
    const keptIds = kept.flatMap((k) => k.kept.map((t) => `${k.image}:${t}`)).sort();
    const total = kept.reduce((a, k) => a + k.total, 0);
    // A turn whose two layers retrieved different sets (the slider must visibly move the overlay).
    const pick = [0, 1].find((turn) => retrievedIds(retrievalOf(events, turn, 0)).join() !== retrievedIds(retrievalOf(events, turn, 1)).join());
    expect(pick, 'some turn retrieves different tokens at layers 0 and 1').toBeDefined();
    const turn = pick!;
    await setTurn(page, turn);
    for (const layer of [0, 1]) {
      await setLayer(page, layer);
      const r = retrievalOf(events, turn, layer);
      expect(await patchTokens(page, 'kept')).toEqual(keptIds);
      expect((await patchTokens(page, 'pruned')).length).toBe(total - keptIds.length);
      expect(await patchTokens(page, 'retrieved')).toEqual(retrievedIds(r));
      const counts = await page.$eval('#p-retention .rm-counts', (el) => ({ ...(el as HTMLElement).dataset, text: el.textContent }));
      expect(counts).toMatchObject({ kept: String(keptIds.length), retrieved: String(r.retrieved.length), total: String(total) });
      expect(counts.text).toContain(`${keptIds.length} / ${total} tokens kept`);
      expect(counts.text).toContain(`${r.retrieved.length} / ${r.candidates.length} retained retrieved at layer ${layer}`);
      // The heatmap boxes the same layer.
      expect(await page.$eval('#p-heatmap .retrieval-heatmap', (el) => (el as HTMLElement).dataset.layer)).toBe(String(layer));
      await saveScreenshot(page, `retention-turn${turn}-layer${layer}`, { selector: '#p-retention' });
    }
    expect(errors).toEqual([]);
  });

  it('compares a dense and a SparseVILA run side by side: answers, stage times and ratios, kept and attended counts, fidelity', async () => {
    runs.dense = await liveChat({ method: 'dense' });
    const dense = runs.dense.run;
    const sparse = runs.sparse!.run;
    await page.evaluate(([a, b]) => (location.hash = `#/compare/${a}/${b}`), [dense, sparse]);
    await until(page, 'the comparison', `document.querySelector('.compare-view')?.dataset.b === ${JSON.stringify(sparse)}`);
    expect(await page.$eval('.compare-view', (v) => (v as HTMLElement).dataset.a)).toBe(dense);
    expect(await page.textContent('.side[data-side="a"] h2')).toMatch(/dense/);
    // Each side is titled by the policy's label: the engine's from run.start, else the page's generic one.
    const label = (runs.sparse!.events.find((e) => e.type === 'run.start') as { label?: string }).label ?? 'sparsevila keep 50% · retrieve 25%';
    expect(await page.textContent('.side[data-side="b"] h2')).toContain(label);
    const row = async (metric: string) => page.$$eval(`table.cmp tr[data-metric="${metric}"] td`, (tds) => tds.map((td) => td.textContent));
    const kept = runs.sparse!.events.filter((e): e is Kept => e.type === 'kept');
    expect(await row('visual tokens kept')).toEqual([String(kept[0]!.total), String(kept[0]!.kept.length), '0.5×']);
    expect((await row('token agreement'))[1]).toMatch(/%$/);
    expect((await row('prefill'))[2]).toMatch(/×$/);
    expect(await page.$$eval('.side[data-side="b"] [data-state="retrieved"]', (e) => e.length)).toBeGreaterThan(0);
    expect(await page.$$eval('.side[data-side="a"] [data-state="pruned"]', (e) => e.length)).toBe(0);
    await until(page, 'the stage chart', `!!document.querySelector('#p-cmp-stages .main-svg')`);
    await saveScreenshot(page, 'compare', { fullPage: true });
    expect(errors).toEqual([]);
  });

  it('exports charts as PNG (Plotly and SVG views) and links the run’s trace download', async () => {
    const { run, events } = runs.sparse!;
    await gotoRun(page, run);
    for (const panel of ['#p-heatmap', '#p-retention', '#p-timeline', '#p-steps']) {
      await until(page, `${panel} drawn`, `!!document.querySelector('${panel} .panel-body svg')`);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`${panel} button[data-export]`)]);
      const file = path.join(ARTIFACTS_DIR, `export-${panel.slice(3)}.png`);
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await download.saveAs(file);
      const bytes = fs.readFileSync(file);
      expect(isPng(bytes), panel).toBe(true);
      const meta = await sharp(bytes).metadata();
      expect(meta.width!, panel).toBeGreaterThan(300);
    }
    const href = await page.getAttribute('#download', 'href');
    expect(href).toContain(`/api/runs/${run}/trace.jsonl`);
    const text = await (await fetch(new URL(href!, server.url))).text();
    expect(text.trim().split('\n')).toHaveLength(events.length);
    expect(errors).toEqual([]);
  });

  it('stays responsive on a 64-frame video trace opened from a file: frames drawn lazily, a layer switch re-renders in < 500 ms', async () => {
    const run = 'synthetic-video-64';
    const layers = 24;
    const events = await videoTrace(run, { frames: 64, grid: 14, layers, turns: 2, keep: 0.5, retrieve: 0.1, steps: 32 });
    const file = path.join(tempDir('ui-video'), 'video-64.jsonl');
    fs.writeFileSync(file, events.map((e) => serializeEvent(e) + '\n').join(''));
    await page.setInputFiles('#file', file);
    await until(
      page,
      'the video run drawn',
      `document.querySelector('.run-view')?.dataset.run === '${run}' && document.querySelectorAll('.frame[data-drawn="1"]').length > 0`,
      60_000,
    );
    expect(await page.$$eval('.frame', (f) => f.length)).toBe(64);
    const drawn = await page.$$eval('.frame[data-drawn="1"]', (f) => f.length);
    expect(drawn, 'only frames near the viewport are drawn').toBeLessThan(64);
    expect(await page.$eval('#p-heatmap .retrieval-heatmap', (el) => (el as HTMLElement).dataset.mode)).toBe('frames');
    // Frames and turns read as the prompt and the CLI count them, from 1, a frame with its time in the video;
    // the trace's indices stay in the data attributes.
    expect(await page.textContent('.frame[data-image="0"] figcaption b')).toBe('frame 1 · 0 s');
    expect(await page.textContent('.frame[data-image="63"] figcaption b')).toBe('frame 64 · 31.5 s');
    expect(await page.$$eval('#turn option', (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]))).toEqual([
      ['0', '1'],
      ['1', '2'],
    ]);
    expect(await page.textContent('.conversation .turn[data-turn="0"] header b')).toBe('Turn 1');
    expect((await page.$$eval('#p-heatmap .xtick text', (ts) => ts.map((t) => t.textContent)))[0]).toBe('1');
    expect((await page.$$eval('#p-retention .frame-bars .x-axis .tick text', (ts) => ts.map((t) => t.textContent)))[0]).toBe('1');

    await setTurn(page, 0);
    const timings = await page.evaluate(
      async (targets) => {
        const slider = document.querySelector<HTMLInputElement>('#layer')!;
        const out: number[] = [];
        for (const l of targets) {
          const t0 = performance.now();
          slider.value = String(l);
          slider.dispatchEvent(new Event('input', { bubbles: true }));
          // The redraw runs in the next animation frame; the one after starts once it has been painted.
          await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
          out.push(performance.now() - t0);
        }
        return out;
      },
      [5, 11, 17, 23, 3],
    );
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS_DIR, 'video-64-layer-switch-ms.json'), JSON.stringify(timings));
    expect(Math.max(...timings), `layer switch times ${timings.map((t) => t.toFixed(0)).join(', ')} ms`).toBeLessThan(500);
    // The overlay shows layer 3's retrieval set in every drawn frame.
    const r = retrievalOf(events, 0, 3);
    const expected = new Map<number, number>();
    for (const i of r.retrieved) expected.set(r.candidates[i]!.image, (expected.get(r.candidates[i]!.image) ?? 0) + 1);
    const shown = await page.$$eval('.frame[data-drawn="1"] svg', (svgs) =>
      svgs.map((s) => [Number(s.getAttribute('data-image')), s.querySelectorAll('[data-state="retrieved"]').length]),
    );
    for (const [image, n] of shown) expect(n, `frame ${image}`).toBe(expected.get(image!) ?? 0);
    const counts = await page.$eval('#p-retention .rm-counts', (el) => (el as HTMLElement).dataset);
    expect(counts.retrieved).toBe(String(r.retrieved.length));
    await saveScreenshot(page, 'video-64-frames');

    // The retention strip's PNG: every frame, titled, within the export's pixel budget (at 2× it would be
    // ~12 MP and ~10 MB; the budget is 3 MP).
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#p-retention button[data-export]')]);
    const png = fs.readFileSync((await download.path())!);
    const meta = await sharp(png).metadata();
    fs.writeFileSync(path.join(ARTIFACTS_DIR, 'video-64-export.json'), JSON.stringify({ bytes: png.length, width: meta.width, height: meta.height }));
    fs.writeFileSync(path.join(ARTIFACTS_DIR, 'video-64-export.png'), png);
    expect(meta.width! * meta.height!).toBeLessThanOrEqual(3_000_000 * 1.05); // the title block comes on top
    expect(png.length).toBeLessThan(4 * 1024 * 1024);

    // Scrolling down draws the frames that come into view.
    await page.$eval('.frame[data-image="63"]', (el) => el.scrollIntoView());
    await until(page, 'the last frame drawn', `document.querySelector('.frame[data-image="63"]')?.dataset.drawn === '1'`);
    expect(await page.$$eval('.frame[data-image="63"] [data-state="retrieved"]', (e) => e.length)).toBe(expected.get(63) ?? 0);
    expect(errors).toEqual([]);
  });

  it('draws each image of a native-resolution (Qwen2.5-VL) run on its own grid over its picture — a 2×4 and a 3×2 in one turn — in the run view and the comparison, with or without salience events', async () => {
    const [sparse, dense] = (await qwenTraces([QWEN_SPARSE, { method: 'dense' }])).runs as [QwenRun, QwenRun];
    for (const e of [...sparse.events, ...dense.events]) server.ingest(e);
    server.endInProcess();
    await page.goto(server.url);
    await until(page, 'the live socket', `document.querySelector('#status')?.dataset.state === 'live'`);
    const pictures = sparse.events.filter((e): e is Extract<TraceEvent, { type: 'image' }> => e.type === 'image');
    /** Every drawn frame under `scope` is its image's rows × cols cells tiling its picture, shown at the picture's aspect. */
    const expectOwnGrids = async (scope: string) => {
      const frames = await drawnGrids(page, scope);
      expect(frames.map((f) => f.image)).toEqual([0, 1]);
      frames.forEach((f, i) => {
        const { rows, cols } = QWEN_IMAGES[i]!;
        const { width, height } = pictures[i]!;
        expect([f.rows, f.cols, f.cells], `${scope} image ${i}`).toEqual([rows, cols, rows * cols]);
        expect(f.viewBox).toEqual([width, height]);
        expect(f.picture).toEqual([width, height]);
        expect(f.cellSizes).toEqual([`${width / cols}x${height / rows}`]);
        expect(f.shownAspect).toBeCloseTo(width / height, 1);
      });
    };

    await gotoRun(page, sparse.run);
    await until(page, 'both Qwen frames drawn', `document.querySelectorAll('#p-retention .frame[data-drawn="1"]').length === 2`);
    await expectOwnGrids('#p-retention');
    await saveScreenshot(page, 'qwen-native-grids', { selector: '#p-retention' });

    await page.evaluate(([a, b]) => (location.hash = `#/compare/${a}/${b}`), [dense.run, sparse.run]);
    await until(page, 'the Qwen comparison', `document.querySelector('.compare-view')?.dataset.b === ${JSON.stringify(sparse.run)}`);
    for (const side of ['a', 'b']) await expectOwnGrids(`.side[data-side="${side}"]`);
    expect(await page.textContent('.side[data-side="b"] .side-frame')).toMatch(/image 1 · 2×4 · kept \d+\/8.*image 2 · 3×2 · kept \d+\/6/);
    await saveScreenshot(page, 'qwen-compare', { fullPage: true });

    // A trace without its salience events (cut short, or a notebook's that dropped its oldest events).
    const run = `${sparse.run}-no-salience`;
    const file = path.join(tempDir('ui-qwen'), 'qwen-no-salience.jsonl');
    const stripped = sparse.events.filter((e) => e.type !== 'salience').map((e) => ({ ...e, run }));
    fs.writeFileSync(file, stripped.map((e) => serializeEvent(e) + '\n').join(''));
    await page.setInputFiles('#file', file);
    await until(
      page,
      'the trace without salience drawn',
      `document.querySelector('.run-view')?.dataset.run === '${run}' && document.querySelectorAll('#p-retention .frame[data-drawn="1"]').length === 2`,
    );
    await expectOwnGrids('#p-retention');
    expect(errors).toEqual([]);
  });

  it('shows the server’s dropped-message count and resyncs the run by replay', async () => {
    const slow = await startProfiler({ maxLiveBufferedBytes: 1, log: () => undefined });
    try {
      const { page: p2, errors: e2 } = await browser.page();
      await p2.goto(slow.url);
      await until(p2, 'the live socket', `document.querySelector('#status')?.dataset.state === 'live'`);
      // The page is busy (its main thread blocked) while three 64-frame runs arrive in one burst of ~15 MB:
      // its socket backs up, and the server skips messages for it.
      const burst = ['burst-a', 'burst-b', 'burst-c'];
      const traces = await Promise.all(
        burst.map((run) => videoTrace(run, { frames: 64, grid: 16, layers: 24, turns: 2, keep: 0.5, retrieve: 0.1, steps: 16 })),
      );
      const busy = p2.evaluate(() => {
        const end = performance.now() + 2500;
        while (performance.now() < end);
      });
      await sleep(200);
      for (const e of traces.flat()) slow.ingest(e);
      slow.endInProcess();
      await busy;
      await until(p2, 'a dropped notice', `Number(document.querySelector('#dropped')?.dataset.count) > 0`);
      expect(await p2.isVisible('#dropped')).toBe(true);
      expect(await p2.textContent('#dropped')).toMatch(/dropped \d+/);
      // Every run is complete on the page after the resync: every frame, both answers, every layer.
      for (const run of burst) {
        await p2.evaluate((r) => (location.hash = `#/run/${r}`), run);
        await until(
          p2,
          `${run} resynced`,
          `(() => { const m = window.profiler.runs.get('${run}')?.model; return !!m && m.images.size === 64 && m.turns.get(1)?.answer != null && m.turns.get(1).retrieval.length === 24; })()`,
        );
        await until(p2, `${run} drawn`, `document.querySelector('.run-view')?.dataset.run === '${run}' && document.querySelectorAll('.frame').length === 64`);
      }
      expect(slow.stats().droppedLiveMessages).toBeGreaterThan(0);
      await saveScreenshot(p2, 'dropped');
      expect(e2).toEqual([]);
      await p2.close();
    } finally {
      await slow.close();
    }
  });
});

describe('profiler main view screenshot', () => {
  it('SparseVILA runs of the bundled demo model on a held-out image, two questions about different objects and a caption: main view and sweep (test-artifacts/; UPDATE_SCREENSHOT=1 also writes profiler-ui/screenshot.png)', async () => {
    const demo = path.join(REPO_ROOT, 'src', 'models', 'sparsevila-demo');
    const example = (
      JSON.parse(fs.readFileSync(path.join(demo, 'examples', 'conversations.json'), 'utf8')) as { media: string[]; turns: { question: string }[] }[]
    )[0]!;
    const image = path.join(demo, 'examples', example.media[0]!);
    const [model, server, browser] = await Promise.all([
      engine.loadModel(demo, { cacheDir: tempDir('ui-shot-graphs'), threads: 1 }),
      startProfiler({ log: () => undefined }),
      launchBrowser(),
    ]);
    try {
      const { page, errors } = await browser.page({ width: 1600, height: 1180 });
      await page.goto(server.url);
      await until(page, 'the live socket', `document.querySelector('#status')?.dataset.state === 'live'`);
      const budgets: [number, number][] = [
        [0.25, 0.25],
        [1, 0.1],
        [0.75, 0.25],
        [1, 0.5],
        [0.5, 0.25],
      ];
      let main = '';
      for (const policy of [
        { method: 'dense' as const },
        ...budgets.map(([k, r]) => engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: k } }, retrieve: { budget: { ratio: r } } })),
      ]) {
        const sink = new WebSocketSink(server.ingestUrl);
        const tracer = new Tracer([sink]);
        const chat = model.chat({ maxNewTokens: 96, policy, tracer, fidelity: policy.method !== 'dense' });
        // Two one-word questions about different objects, then a caption: ~55 tokens that decode writes under retrieval.
        const questions = [...example.turns.slice(0, 2).map((t) => t.question), 'Describe the image.'];
        for (const [i, text] of questions.entries()) await chat.ask({ images: i === 0 ? [image] : [], text });
        await chat.close();
        await tracer.close();
        main = tracer.run;
      }
      // The page followed each run as it started; once it has all of the last one, pick turn and layer.
      await until(
        page,
        'the last run followed',
        `document.querySelector('.run-view')?.dataset.run === '${main}' && !!document.querySelector('.conversation .turn[data-turn="2"] .fidelity')`,
      );
      // Layer 1 is where the demo model looks the question's object up: its retrieval set follows the question.
      await page.evaluate((run) => (location.hash = `#/run/${run}?turn=1&layer=1`), main);
      await until(
        page,
        'the main view',
        `document.querySelector('.run-view')?.dataset.layer === '1' && document.querySelectorAll('.frame[data-drawn="1"]').length === 1 && !!document.querySelector('#p-timeline .main-svg') && !!document.querySelector('#p-steps .main-svg')`,
      );
      await sleep(400); // Plotly's transitions
      const file = await saveScreenshot(page, 'main-view');
      if (process.env.UPDATE_SCREENSHOT) {
        await sharp(file)
          .png({ compressionLevel: 9, palette: true, colours: 256, dither: 0.3 })
          .toFile(path.join(REPO_ROOT, 'profiler-ui', 'screenshot.png'));
      }
      await saveScreenshot(page, 'main-view-full', { fullPage: true });
      await page.evaluate(() => (location.hash = '#/sweep'));
      await until(page, 'the sweep', `Number(document.querySelector('.sweep-view')?.dataset.points) === 5`);
      expect(Number(await page.$eval('.sweep-view', (v) => (v as HTMLElement).dataset.pareto))).toBeGreaterThan(0);
      await sleep(300);
      await saveScreenshot(page, 'sweep', { fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
      await model.close();
    }
  });
});
