/**
 * Inspecting runs on the profiler page (headless Chromium against the real server): the token panel's layers,
 * turns and ranks against the trace's retrieval events, keyboard and search, the frame a question names, the
 * comparison per turn and frame with its difference map, a long video laid out for reading (heatmap first,
 * thinned ticks, frames in their own scroll area), and a timeline with every stage and every gap named. Also the
 * engine side of that timeline: the encode span runs to its step's end.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProfiler, type ProfilerServer } from '../dist/profiler-ui/server/server.js';
import { MemorySink, Tracer, type TraceEvent } from '../dist/src/trace/index.js';
import { serializeEvent } from '../dist/src/trace/jsonl-sink.js';
import { foldEvents } from '../profiler-ui/web/data/run-model.js';
import { framesNamed, searchRun, turnGaps } from '../profiler-ui/web/data/run-queries.js';
import { thinTicks } from '../profiler-ui/web/views/retrieval-heatmap.js';
import { gotoRun, launchBrowser, saveScreenshot, until, type TestBrowser } from './helpers/browser.js';
import { CLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';
import { videoTrace, type VideoTraceOptions } from './helpers/video-trace.js';

type Retrieval = Extract<TraceEvent, { type: 'retrieval' }>;

const QUESTIONS = ['What happens in this video?', 'What colour is the house?', 'Where is the sun at the start?', 'What is in frame 1?', 'And at the end?'];
const ANSWERS = ['A red house under a moving sun.', 'It is red.', 'Low on the left.', 'A red house and the sun on the left.', 'The sun on the right.'];
/** A 64-frame video over five turns; the pair below parts at turn 4 (index 3): another answer, other retrieval sets. */
const VIDEO: VideoTraceOptions = {
  frames: 64,
  grid: 14,
  layers: 8,
  turns: 5,
  keep: 0.5,
  retrieve: 0.1,
  steps: 12,
  questions: QUESTIONS,
  answers: ANSWERS,
  encodeGap: 92,
};
const PARTED = { ...VIDEO, answers: ANSWERS.map((a, i) => (i === 3 ? 'Only a grey shed.' : a)), shift: { fromTurn: 3, by: 3 } };

/**
 * The token's rank at one retrieval event by its score, from 1, computed apart from the page: the candidates
 * sorted by score (as float32, the precision the page holds), ties to the earlier candidate as the engine's
 * top-k breaks them.
 */
function expectedRank(e: Retrieval, i: number): number {
  const s = e.scores.map((x) => Math.fround(x));
  const order = s.map((_, j) => j).sort((a, b) => s[b]! - s[a]! || a - b);
  return order.indexOf(i) + 1;
}

describe('inspection queries (pure)', () => {
  it('names the frames a question names, counted from 1 as the prompt counts them, and finds frames and questions', async () => {
    const m = foldEvents(await videoTrace('q', { ...VIDEO, frames: 8, turns: 5 })).get('q')!;
    expect(framesNamed(m, 'What is in frame 1?')).toEqual([0]);
    expect(framesNamed(m, 'Compare frames 2 and 5, or Frame 8')).toEqual([1, 4, 7]);
    expect(framesNamed(m, 'frame 9 is not in an 8-frame video')).toEqual([]);
    expect(searchRun(m, '12')).toEqual({ frames: [], turns: [] });
    expect(searchRun(m, 'frame 3')).toEqual({ frames: [2], turns: [] });
    expect(searchRun(m, 'WHAT IS IN')).toEqual({ frames: [0], turns: [3] });
  });

  it('names each stretch of a turn no span covers, by the stages either side', async () => {
    const m = foldEvents(await videoTrace('g', { ...VIDEO, frames: 2 })).get('g')!;
    const gaps = turnGaps(m.turns.get(0)!);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toMatchObject({ after: 'encode', before: 'prune' });
    expect(gaps[0]!.duration).toBeCloseTo(92, 6);
  });

  it('thins tick labels so that none overlaps the next', () => {
    const labels = Array.from({ length: 64 }, (_, i) => String(i + 1));
    const at = labels.map((_, i) => (i + 0.5) / 64);
    const kept = thinTicks(at, labels, 800);
    expect(kept[0]).toBe(0);
    expect(kept.length).toBeGreaterThan(8);
    expect(kept.length).toBeLessThan(64);
    // Every label fits on its own at the width: keeping all 16 of a shorter list.
    expect(
      thinTicks(
        at.slice(0, 16).map((_, i) => (i + 0.5) / 16),
        labels.slice(0, 16),
        800,
      ),
    ).toHaveLength(16);
  });
});

describe('the encode span (engine)', () => {
  it("runs to the encode step's end: its detail splits the tower's ms from the outputs', and prune starts where it ends", async () => {
    const model = await engine.loadModel(CLIP_FIXTURE, { cacheDir: tempDir('inspect-graphs'), threads: 1 });
    try {
      const memory = new MemorySink();
      const chat = model.chat({
        maxNewTokens: 2,
        policy: engine.validatePolicy({ method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.25 } } }),
        tracer: new Tracer([memory]),
      });
      const image = path.join(CLIP_FIXTURE, 'image.png');
      await chat.ask({ images: [image, image], text: 'What is shown?' });
      await chat.close();
      const span = (stage: string) => memory.events.find((e): e is Extract<TraceEvent, { type: 'span' }> => e.type === 'span' && e.stage === stage)!;
      const encode = span('encode');
      const prune = span('prune');
      expect(encode.detail!.towerMs! + encode.detail!.outputsMs!).toBeCloseTo(encode.duration, 6);
      expect(encode.detail!.outputsMs).toBeGreaterThan(0);
      // Between the encode step's end and prune's start the session only hands the step on: no model work.
      expect(prune.start - (encode.start + encode.duration)).toBeLessThan(Math.max(5, encode.detail!.outputsMs!));
    } finally {
      await model.close();
    }
  });
});

/** Open a run at a turn and layer, and wait until the view shows them. */
async function openRun(page: Page, run: string, turn: number, layer = 0): Promise<void> {
  await gotoRun(page, run, `?turn=${turn}&layer=${layer}`);
  const view = `document.querySelector('.run-view')?.dataset`;
  await until(page, `turn ${turn + 1}, layer ${layer}`, `${view}.turn === '${turn}' && ${view}.layer === '${layer}'`);
}

describe('inspecting a run in Chromium', () => {
  let server: ProfilerServer;
  let browser: TestBrowser;
  let page: Page;
  let errors: string[];
  let video: TraceEvent[];
  let parted: TraceEvent[];

  beforeAll(async () => {
    [server, browser, video, parted] = await Promise.all([
      startProfiler({ log: () => undefined }),
      launchBrowser(),
      videoTrace('video-a', VIDEO),
      videoTrace('video-b', PARTED),
    ]);
    ({ page, errors } = await browser.page({ width: 1500, height: 1000 }));
    await page.goto(server.url);
    // Saved traces, opened as a person opens them (uploaded, not live: nothing reloads them under the tests).
    const dir = tempDir('inspect-traces');
    const files = [video, parted].map((events, i) => {
      const file = path.join(dir, `video-${'ab'[i]}.jsonl`);
      fs.writeFileSync(file, events.map((e) => serializeEvent(e) + '\n').join(''));
      return file;
    });
    await page.setInputFiles('#file', files);
    await until(page, 'both runs loaded', `['video-a', 'video-b'].every((r) => window.profiler.runs.get(r)?.status === 'loaded')`, 60_000);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("highlights the frame turn 4's question names: the frame the page calls 1", async () => {
    await openRun(page, 'video-a', 3);
    await until(page, 'the named frame', `document.querySelectorAll('.frame.named').length > 0`);
    expect(await page.$$eval('.frame.named', (els) => els.map((e) => (e as HTMLElement).dataset.image))).toEqual(['0']);
    expect(await page.textContent('.frame.named figcaption b')).toBe('frame 1 · 0 s');
    expect(await page.isVisible('.frame.named .fc-named')).toBe(true);
    // The question's "frame 1" is a button to that frame: the keyboard lands on one of its patches.
    const ref = page.locator('.conversation .turn[data-turn="3"] button.frame-ref');
    expect(await ref.textContent()).toBe('1');
    await ref.click();
    await until(page, 'focus in frame 1', `document.activeElement?.closest('.frame')?.dataset.image === '0'`);
    // Another turn's question names no frame.
    await page.selectOption('#turn', { value: '1' });
    await until(page, 'no named frame', `document.querySelectorAll('.frame.named').length === 0`);
    expect(errors).toEqual([]);
  });

  it('lays a long video out for reading: heatmap first and near the top, per-frame hits, thinned ticks, frames in their own scroll area', async () => {
    await openRun(page, 'video-a', 0);
    await until(page, 'the heatmap', `!!document.querySelector('#p-heatmap .main-svg')`);
    const order = await page.$$eval('.col-main > .panel', (ps) => ps.map((p) => p.id));
    expect(order.indexOf('p-heatmap')).toBeLessThan(order.indexOf('p-retention'));
    expect(await page.$eval('#p-heatmap', (el) => el.getBoundingClientRect().top + scrollY)).toBeLessThan(400);
    expect(await page.$eval('#p-heatmap .retrieval-heatmap', (el) => (el as HTMLElement).dataset.mode)).toBe('frames');
    const strip = await page.$eval('.rm-strip', (el) => ({ scroll: (el as HTMLElement).dataset.scroll, overflows: el.scrollHeight > el.clientHeight + 10 }));
    expect(strip).toEqual({ scroll: '1', overflows: true });
    // Tick labels, per frame and per token, never overlap (and some are left out: 64 do not fit).
    for (const mode of ['frames', 'hits']) {
      await page.selectOption('#hm-mode', { value: mode });
      await until(page, `heatmap mode ${mode}`, `document.querySelector('#p-heatmap .retrieval-heatmap')?.dataset.mode === '${mode}'`);
      const boxes = await page.$$eval('#p-heatmap .xtick text', (ts) =>
        ts
          .map((t) => t.getBoundingClientRect())
          .map((r) => [r.left, r.right] as const)
          .sort((a, b) => a[0] - b[0]),
      );
      expect(boxes.length, mode).toBeGreaterThan(4);
      expect(boxes.length, mode).toBeLessThan(64);
      for (let i = 1; i < boxes.length; i++) expect(boxes[i]![0], `${mode} tick ${i}`).toBeGreaterThan(boxes[i - 1]![1]);
    }
    await page.selectOption('#hm-mode', { value: 'auto' });
    await saveScreenshot(page, 'inspect-long-video');
    expect(errors).toEqual([]);
  });

  it("lists, for a clicked patch, every layer and turn with the rank and cutoff of the trace's retrieval events", async () => {
    await openRun(page, 'video-a', 0, 2);
    const first = video.find((e): e is Retrieval => e.type === 'retrieval' && e.turn === 0 && e.layer === 2)!;
    const { image, token } = first.candidates[first.retrieved[0]!]!;
    await page.$eval(`.frame[data-image="${image}"]`, (el) => el.scrollIntoView({ block: 'center' }));
    await until(page, 'the frame drawn', `document.querySelector('.frame[data-image="${image}"]')?.dataset.drawn === '1'`);
    await page.locator(`.frame[data-image="${image}"] g.cells rect[data-token="${token}"]`).click();
    await until(page, 'the token panel', `document.querySelector('#p-token .token-panel')?.dataset.token === '${token}'`);
    expect(await page.$eval('#p-token .token-panel', (el) => (el as HTMLElement).dataset.image)).toBe(String(image));
    const cells = await page.$$eval('#p-token td[data-turn]', (tds) =>
      tds.map((td) => {
        const d = (td as HTMLElement).dataset;
        return `${d.turn}:${d.layer} rank ${d.rank} cutoff ${d.cutoff} ${d.retrieved === '1' ? 'retrieved' : '-'}`;
      }),
    );
    const expected: string[] = [];
    const often = new Map<number, number>();
    for (const e of video.filter((x): x is Retrieval => x.type === 'retrieval')) {
      const i = e.candidates.findIndex((c) => c.image === image && c.token === token);
      const retrieved = e.retrieved.includes(i);
      const rank = expectedRank(e, i);
      // A plain top-k (this trace's policy): retrieved exactly when ranked within the cutoff.
      expect(retrieved, `turn ${e.turn} layer ${e.layer}`).toBe(rank <= e.retrieved.length);
      expected.push(`${e.turn}:${e.layer} rank ${rank} cutoff ${e.retrieved.length} ${retrieved ? 'retrieved' : '-'}`);
      if (retrieved) often.set(e.layer, (often.get(e.layer) ?? 0) + 1);
    }
    expect(cells.sort()).toEqual(expected.sort());
    expect(cells.some((c) => c.endsWith('retrieved'))).toBe(true);
    expect(cells.some((c) => c.endsWith('-'))).toBe(true);
    const shownOften = await page.$$eval('#p-token tr[data-layer] td.often', (tds) => tds.map((td) => Number((td as HTMLElement).dataset.often)));
    expect(shownOften).toEqual(Array.from({ length: VIDEO.layers }, (_, l) => often.get(l) ?? 0));
    // Its salience rank in its frame, against the frame's own scores.
    const sal = video.find((e): e is Extract<TraceEvent, { type: 'salience' }> => e.type === 'salience' && e.image === image)!;
    const s = sal.scores.map((x) => Math.fround(x));
    const salRank =
      s
        .map((_, j) => j)
        .sort((a, b) => s[b]! - s[a]! || a - b)
        .indexOf(token) + 1;
    expect(await page.textContent('#p-token .tp-facts')).toContain(`salience rank ${salRank} of ${s.length}`);
    expect(await page.$$eval(`.frame[data-image="${image}"] [data-mark="selected"]`, (els) => els.map((e) => e.getAttribute('data-token')))).toEqual([
      String(token),
    ]);
    await saveScreenshot(page, 'inspect-token-panel');
    expect(errors).toEqual([]);
  });

  it('moves by keyboard: arrows between labelled patches, Enter to inspect, l/L layers, t/T turns, f/F frames, ? help, / search', async () => {
    await openRun(page, 'video-a', 0, 0);
    await page.$eval('.frame[data-image="1"]', (el) => el.scrollIntoView({ block: 'center' }));
    await until(page, 'frame 2 drawn', `document.querySelector('.frame[data-image="1"]')?.dataset.drawn === '1'`);
    // One tab stop per frame, each patch labelled with its frame, row, column and state.
    expect(await page.$$eval('.frame[data-image="1"] g.cells rect[tabindex="0"]', (els) => els.length)).toBe(1);
    await page.focus('.frame[data-image="1"] g.cells rect[data-token="0"]');
    const active = () => page.evaluate(() => [document.activeElement?.getAttribute('data-token'), document.activeElement?.getAttribute('aria-label')]);
    expect((await active())[1]).toMatch(/^frame 2 · 0\.5 s, row 1, col 1, (kept|pruned)/);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowDown');
    expect(await active()).toEqual([String(VIDEO.grid + 1), expect.stringMatching(/^frame 2 · 0\.5 s, row 2, col 2, (kept|pruned)/)]);
    await page.keyboard.press('Enter');
    await until(page, 'the panel on the patch', `document.querySelector('#p-token .token-panel')?.dataset.token === '${VIDEO.grid + 1}'`);
    const view = (k: string) => page.$eval('.run-view', (el, key) => (el as HTMLElement).dataset[key], k);
    await page.keyboard.press('l');
    await until(page, 'layer 1', `document.querySelector('.run-view')?.dataset.layer === '1'`);
    await page.keyboard.press('Shift+L');
    await until(page, 'layer 0', `document.querySelector('.run-view')?.dataset.layer === '0'`);
    await page.keyboard.press('t');
    await until(page, 'turn 2', `document.querySelector('.run-view')?.dataset.turn === '1'`);
    await page.keyboard.press('Shift+T');
    await until(page, 'turn 1', `document.querySelector('.run-view')?.dataset.turn === '0'`);
    expect(await view('layer')).toBe('0');
    // f: the same patch, one frame on.
    await page.keyboard.press('f');
    await until(page, 'frame 3', `document.querySelector('#p-token .token-panel')?.dataset.image === '2'`);
    expect(await page.$eval('#p-token .token-panel', (el) => (el as HTMLElement).dataset.token)).toBe(String(VIDEO.grid + 1));
    await page.keyboard.press('Shift+F');
    await until(page, 'frame 2 again', `document.querySelector('#p-token .token-panel')?.dataset.image === '1'`);
    await page.keyboard.press('?');
    expect(await page.isVisible('#p-token .tp-help')).toBe(true);
    await page.keyboard.press('Escape');
    expect(await page.isVisible('#p-token .tp-help')).toBe(false);
    // Search: a frame number, then words of a question.
    await page.keyboard.press('/');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tp-search');
    await page.keyboard.type('frame 12');
    expect(await page.$$eval('#p-token .tp-results button', (bs) => bs.map((b) => (b as HTMLElement).dataset.image))).toEqual(['11']);
    await page.keyboard.press('Enter');
    await until(page, 'focus in frame 12', `document.activeElement?.closest('.frame')?.dataset.image === '11'`);
    await page.fill('#tp-search', 'at the start');
    await page.click('#p-token .tp-results button[data-turn="2"]');
    await until(page, 'turn 3', `document.querySelector('.run-view')?.dataset.turn === '2'`);
    expect(errors).toEqual([]);
  });

  it('compares the video pair per turn and frame: where the answers part, a nonzero difference; before it, none; with the run view’s tooltip', async () => {
    await page.evaluate(() => (location.hash = '#/compare/video-a/video-b'));
    await until(page, 'the comparison', `document.querySelector('.compare-view')?.dataset.b === 'video-b' && !!document.querySelector('#p-cmp-diff')`);
    // By default the turn where the answers part: turn 4.
    expect(await page.$eval('.compare-view', (el) => (el as HTMLElement).dataset.turn)).toBe('3');
    expect(await page.$eval('#cmp-turn', (el) => (el as HTMLSelectElement).selectedOptions[0]!.textContent)).toBe('4 · answers part');
    const diff = () =>
      page.$eval('#p-cmp-diff figure', (el) => ({ a: Number((el as HTMLElement).dataset.aOnly), b: Number((el as HTMLElement).dataset.bOnly) }));
    const at4 = await diff();
    expect(at4.a + at4.b).toBeGreaterThan(0);
    // The frame shown is the one that differs most there, and its difference is the trace's.
    const frame = Number(await page.$eval('.compare-view', (el) => (el as HTMLElement).dataset.frame));
    const setOf = (events: TraceEvent[]) => {
      const e = events.find((x): x is Retrieval => x.type === 'retrieval' && x.turn === 3 && x.layer === 0)!;
      return new Set(e.retrieved.filter((i) => e.candidates[i]!.image === frame).map((i) => e.candidates[i]!.token));
    };
    const [ra, rb] = [setOf(video), setOf(parted)];
    expect(at4).toEqual({ a: [...ra].filter((t) => !rb.has(t)).length, b: [...rb].filter((t) => !ra.has(t)).length });
    expect(await page.$$eval('.side[data-side="a"] [data-mark="a-only"]', (els) => els.length)).toBe(at4.a);
    await saveScreenshot(page, 'inspect-compare-turn4');
    // Hovering a patch of the difference map: the run view's tooltip, for A and for B.
    const box = (await page.locator('#p-cmp-diff svg').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.3);
    await until(page, 'the tooltip', `!document.querySelector('#tooltip').hidden`);
    expect(await page.textContent('#tooltip')).toMatch(/A.*frame \d+ · .*salience.*B.*frame \d+/s);
    // Turn 1: the runs have not parted; no frame differs.
    await page.selectOption('#cmp-turn', { value: '0' });
    await until(page, 'turn 1 compared', `document.querySelector('.compare-view')?.dataset.turn === '0'`);
    expect(await diff()).toEqual({ a: 0, b: 0 });
    expect(await page.$$eval('#cmp-frame option', (os) => os.every((o) => o.textContent!.endsWith(' · 0 differ')))).toBe(true);
    // Picking a frame draws that frame.
    await page.selectOption('#cmp-frame', { value: '5' });
    await until(page, 'frame 6 compared', `document.querySelector('.compare-view')?.dataset.frame === '5'`);
    expect(await page.$eval('#p-cmp-diff figure', (el) => (el as HTMLElement).dataset.image)).toBe('5');
    expect(errors).toEqual([]);
  });

  it('draws every stage, the dense twin’s fidelity spans too, and names every gap in the timeline', async () => {
    await openRun(page, 'video-a', 4);
    await until(page, 'the timeline', `!!document.querySelector('#p-timeline .tl-gantt .main-svg')`);
    const traces = await page.$eval('#p-timeline .tl-gantt', (el) =>
      (el as unknown as { data: { name: string; y: string[]; base: number[]; x: number[] }[] }).data.map((t) => ({
        name: t.name,
        y: t.y,
        base: t.base,
        x: t.x,
      })),
    );
    expect(traces.find((t) => t.name === 'fidelity (dense twin)')!.y).toHaveLength(VIDEO.turns);
    // Nothing in a turn is blank: its spans and named gaps tile it from its first start to its last end.
    for (let turn = 0; turn < VIDEO.turns; turn++) {
      const bars = traces
        .flatMap((t) => t.y.flatMap((y, i) => (y === `turn ${turn + 1}` ? [[t.base[i]!, t.base[i]! + t.x[i]!] as const] : [])))
        .sort((a, b) => a[0] - b[0]);
      let end = bars[0]![0];
      for (const [s, e] of bars) {
        expect(s, `turn ${turn + 1} uncovered from ${end}`).toBeLessThanOrEqual(end + 1e-6);
        end = Math.max(end, e);
      }
    }
    const gap = page.locator('#p-timeline .tl-gaps li[data-after="encode"][data-before="prune"]');
    expect(Number(await gap.getAttribute('data-ms'))).toBeCloseTo(92, 2);
    expect(await gap.textContent()).toMatch(/turn 1, encode → prune: 92\.0 ms — the encode step after its tower/);
    await page.$eval('#p-timeline', (el) => el.scrollIntoView());
    await saveScreenshot(page, 'inspect-timeline', { selector: '#p-timeline' });
    expect(errors).toEqual([]);
  });

  it('plots decode steps with one legend entry a turn, above a plot taller than it, on whole-number steps', async () => {
    await openRun(page, 'video-a', 0);
    await page.$eval('#p-steps', (el) => el.scrollIntoView());
    await until(page, 'the decode-step plot', `!!document.querySelector('#p-steps .legend .traces')`);
    const box = await page.$eval('#p-steps', (el) => {
      const rect = (q: string) => el.querySelector(q)!.getBoundingClientRect();
      return {
        legend: rect('.legend').height,
        plot: rect('.nsewdrag').height,
        entries: [...el.querySelectorAll('.legend .traces .legendtext')].map((t) => t.textContent),
        ticks: [...el.querySelectorAll('.xtick text')].map((t) => t.textContent ?? ''),
      };
    });
    expect(box.entries).toEqual(Array.from({ length: VIDEO.turns }, (_, i) => `turn ${i + 1}`));
    expect(box.legend).toBeLessThan(box.plot);
    expect(box.ticks.length).toBeGreaterThan(1);
    for (const t of box.ticks) expect(t, 'a decode step tick').toMatch(/^\d[\d,]*$/);
    expect(errors).toEqual([]);
  });
});
