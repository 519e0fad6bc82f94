/**
 * The notebook kernel helpers (kernel/, compiled to dist/kernel/): the pure renderers (retention map,
 * retrieval table, latency, budget sweep), the step/trace → render-data adapters, the display hook, the
 * notebook trace, the kernelspec installer, and attaching to the profiler.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kernel from '../dist/kernel/index.js';
import { installKernelspec } from '../dist/kernel/install.js';
import { startProfiler } from '../dist/profiler-ui/server/server.js';
import { decodeBatch, type TraceEvent } from '../dist/src/index.js';
import { engine, tempDir } from './helpers/engine.js';
import type { LlavaSpec } from '../dist/src/checkpoint/spec.js';
import { QWEN_IMAGES, qwenTraces } from './helpers/qwen-trace.js';

const count = (markup: string, needle: string) => markup.split(needle).length - 1;

/** Salience on a 4×4 grid, token t scoring t (so the top-k are the last k tokens). */
const GRID = { rows: 4, cols: 4 };
const SCORES = Array.from({ length: 16 }, (_, t) => t / 100);

/** A synthetic two-turn trace of one run, plus an older run that must be ignored by default. */
function twoTurnTrace(): TraceEvent[] {
  const run = 'run-b';
  const candidates = [3, 5, 9, 12, 14, 15].map((token) => ({ image: 0, token }));
  const ev = (e: Record<string, unknown>, t: number) => ({ run, t, ...e }) as TraceEvent;
  return [
    { run: 'run-a', t: 0, type: 'kept', turn: 0, image: 0, total: 16, kept: [0, 1] } as TraceEvent,
    ev({ type: 'image', turn: 0, image: 0, width: 32, height: 32, jpeg: 'QUJD' }, 1),
    ev({ type: 'salience', turn: 0, image: 0, source: 'received', grid: GRID, leading: 0, scores: SCORES }, 2),
    ev({ type: 'kept', turn: 0, image: 0, total: 16, kept: [3, 5, 9, 12, 14, 15] }, 3),
    ev({ type: 'retrieval', turn: 0, layer: 0, candidates, scores: [0.1, 0.5, 0.2, 0.9, 0.05, 0.3], retrieved: [1, 3] }, 4),
    ev({ type: 'retrieval', turn: 0, layer: 1, candidates, scores: [0.6, 0.5, 0.2, 0.1, 0.05, 0.3], retrieved: [0, 1] }, 5),
    ev({ type: 'retrieval', turn: 1, layer: 0, candidates, scores: [0.1, 0.1, 0.7, 0.1, 0.8, 0.3], retrieved: [2, 4] }, 6),
    ev({ type: 'retrieval', turn: 1, layer: 1, candidates, scores: [0.1, 0.1, 0.7, 0.1, 0.8, 0.3], retrieved: [2, 4] }, 7),
  ];
}

describe('retention map SVG', () => {
  it('draws one kept element per kept token, one pruned element per dropped token, one outline per retrieved token', () => {
    const kept = [0, 3, 5, 6, 10, 15];
    const svg = kernel.renderRetentionSvg({
      images: [
        {
          grid: GRID,
          leading: 0,
          salience: SCORES,
          kept,
          retrieved: [3, 10],
        },
      ],
      layer: 2,
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(count(svg, 'class="patch kept"')).toBe(kept.length);
    expect(count(svg, 'class="patch pruned"')).toBe(16 - kept.length);
    expect(count(svg, 'class="retrieved"')).toBe(2);
    expect(svg).toContain('kept 6/16 · layer 2 retrieved 2');
  });

  it("draws pruned patches with the page's hatching, and one legend naming the salience source and the layer", () => {
    const svg = kernel.renderRetentionSvg({
      images: [{ grid: GRID, leading: 0, salience: SCORES, kept: [15], retrieved: [15] }],
      layer: 3,
      salienceSource: 'cls',
    });
    const hatch = svg.match(/<pattern id="([^"]+)"[^>]*patternTransform="rotate\(45\)">/)![1]!;
    expect(count(svg, `class="patch pruned" data-token`)).toBe(15);
    expect([...svg.matchAll(/class="patch pruned"[^>]* fill="([^"]+)"/g)].every((m) => m[1] === `url(#${hatch})`)).toBe(true);
    expect(count(svg, 'class="retention-legend"')).toBe(1);
    expect(svg).toContain('salience (CLS attention, √ scale)');
    expect(svg).toContain('retrieved at layer 3');
  });

  it('before pruning every token is a candidate, and leading non-patch tokens (CLS) are drawn too', () => {
    const svg = kernel.renderRetentionSvg({ images: [{ grid: GRID, leading: 1, salience: [1, ...SCORES] }] });
    expect(count(svg, 'class="patch candidate"')).toBe(17);
    expect(svg).toContain('leading token 0');
    expect(count(svg, 'class="patch kept"')).toBe(0);
  });

  it('draws the tower image under the grid and escapes labels', () => {
    const svg = kernel.renderRetentionSvg({
      title: 'a <b> & "c"',
      images: [{ label: 'x<y', grid: GRID, leading: 0, background: { href: 'data:image/jpeg;base64,QUJD', width: 32, height: 32 } }],
    });
    expect(svg).toContain('href="data:image/jpeg;base64,QUJD"');
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).toContain('x&lt;y');
    expect(svg).not.toContain('<b>');
  });

  it('one panel per image, side by side, wrapping into rows past the width', () => {
    const panel = { grid: GRID, leading: 0, kept: [1, 2] };
    const svg = kernel.renderRetentionSvg({ images: [panel, { ...panel, kept: [4] }] }, { size: 100 });
    expect(count(svg, 'class="retention-image"')).toBe(2);
    expect(count(svg, 'class="patch kept"')).toBe(3);
    expect(svg).toMatch(/^<svg[^>]* width="216"/);
    const many = kernel.renderRetention({ images: Array.from({ length: 10 }, () => panel) }, { size: 100, maxWidth: 500 });
    const offsets = [...many.svg.matchAll(/class="retention-image"[^>]*transform="translate\(([\d.]+),([\d.]+)\)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(new Set(offsets.map(([x]) => x)).size).toBe(4);
    expect(new Set(offsets.map(([, y]) => y)).size).toBe(3);
    expect(many.width).toBeLessThanOrEqual(500);
  });
});

describe('retention data from a trace', () => {
  it("takes the latest run and turn, its image, kept tokens and layer 0's retrieval", () => {
    const data = kernel.retentionFromEvents(twoTurnTrace());
    expect(data.images).toHaveLength(1);
    const p = data.images[0]!;
    expect(p.kept).toEqual([3, 5, 9, 12, 14, 15]);
    expect(p.background?.href).toBe('data:image/jpeg;base64,QUJD');
    expect(p.retrieved).toEqual([9, 14]);
    expect(data.layer).toBe(0);
    // The latest turn is index 1: shown as the prompt and CLI count turns and images, from 1.
    expect(data.title).toContain('Turn 2');
    expect(p.label).toBe('image 1');
  });

  it("outlines exactly the chosen layer's retrieval set, not the union of the layers", () => {
    // Turn 0: layer 0 retrieved candidates 1 and 3 (tokens 5, 12), layer 1 candidates 0 and 1 (tokens 3, 5).
    const outlined = (options: { turn: number; layer?: number }) =>
      [...kernel.retentionMapSvg(twoTurnTrace(), options).matchAll(/class="retrieved" data-token="(\d+)"/g)].map((m) => Number(m[1]));
    expect(outlined({ turn: 0, layer: 0 })).toEqual([5, 12]);
    expect(outlined({ turn: 0, layer: 1 })).toEqual([3, 5]);
    expect(outlined({ turn: 0 })).toEqual([5, 12]);
    const svg = kernel.retentionMapSvg(twoTurnTrace(), { turn: 0, layer: 1 });
    expect(count(svg, 'class="patch kept"')).toBe(6);
    expect(svg).toContain('Turn 1 · layer 1');
    expect(svg).toContain('layer 1 retrieved 2');
  });

  it('a layer the turn did not retrieve at is an error naming the layers there are; without layer 0, the default is the first there is', () => {
    expect(() => kernel.retentionFromEvents(twoTurnTrace(), { turn: 0, layer: 4 })).toThrow(/layer 4: turn 1 retrieved at layers 0–1/);
    const withoutLayer0 = twoTurnTrace().filter((e) => !(e.type === 'retrieval' && e.turn === 0 && e.layer === 0));
    expect(kernel.retentionFromEvents(withoutLayer0, { turn: 0 })).toMatchObject({ layer: 1, title: 'Turn 1 · layer 1', images: [{ retrieved: [3, 5] }] });
  });
});

describe('retention maps of a native-resolution run (Qwen2.5-VL: each image its own grid)', () => {
  let events: TraceEvent[];
  beforeAll(async () => {
    events = (await qwenTraces()).runs[0]!.events;
  });

  /** Per drawn image: its grid, the picture's box, and its patch cells' boxes. */
  function drawnPanels(svg: string) {
    return svg
      .split('<g class="retention-image"')
      .slice(1)
      .map((g) => {
        const n = (re: RegExp) => Number(g.match(re)![1]);
        const box = (m: RegExpMatchArray) => ({ x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) });
        return {
          rows: n(/data-rows="(\d+)"/),
          cols: n(/data-cols="(\d+)"/),
          picture: box(g.match(/class="tower-input" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/)!),
          cells: [...g.matchAll(/class="patch \w+" data-token="\d+" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)].map(box),
          kept: count(g, 'class="patch kept"'),
        };
      });
  }

  /** Each image's rows × cols cells tile its picture exactly, the picture at the image's aspect and within the panel's box. */
  function expectOwnGrids(svg: string, size: number) {
    const kept = events.filter((e): e is Extract<TraceEvent, { type: 'kept' }> => e.type === 'kept');
    const panels = drawnPanels(svg);
    expect(panels).toHaveLength(QWEN_IMAGES.length);
    panels.forEach((p, i) => {
      const { width, height, rows, cols } = QWEN_IMAGES[i]!;
      expect([p.rows, p.cols], `image ${i}`).toEqual([rows, cols]);
      expect(p.cells).toHaveLength(rows * cols);
      expect(p.kept).toBe(kept[i]!.kept.length);
      expect(p.picture.w / p.picture.h).toBeCloseTo(width / height, 2);
      expect(Math.max(p.picture.w, p.picture.h)).toBeCloseTo(size, 2);
      expect(new Set(p.cells.map((c) => c.x)).size).toBe(cols);
      expect(new Set(p.cells.map((c) => c.y)).size).toBe(rows);
      for (const c of p.cells) {
        expect(c.w).toBeCloseTo(p.picture.w / cols, 2);
        expect(c.h).toBeCloseTo(p.picture.h / rows, 2);
      }
      expect(Math.max(...p.cells.map((c) => c.x + c.w))).toBeCloseTo(p.picture.x + p.picture.w, 2);
      expect(Math.max(...p.cells.map((c) => c.y + c.h))).toBeCloseTo(p.picture.y + p.picture.h, 2);
    });
  }

  it('a trace draws a 2×4 and a 3×2 image in one turn, each over its own picture', () => {
    expect(events.find((e) => e.type === 'run.start')).toMatchObject({ model: { vision: 'qwen2.5-vl', imageTokens: 0 } });
    expectOwnGrids(kernel.retentionMapSvg(events), 256);
    expectOwnGrids(kernel.retentionMapSvg(events, { size: 120 }), 120);
  });

  it('without its salience events (dropped from a notebook trace), the grids come from the token counts and the pictures', () => {
    expectOwnGrids(kernel.retentionMapSvg(events.filter((e) => e.type !== 'salience')), 256);
  });
});

describe('retention data from the step API', () => {
  const encoded = { salience: [{ scores: Float32Array.from(SCORES), grid: GRID, leading: 0 }] };
  const pruned = { encoded, kept: [[12, 13, 14, 15]] };
  const retrieved = {
    layers: [
      { rows: [10, 12], scores: Float32Array.of(0.1, 0.4, 0.3, 0.2) },
      { rows: [11, 12], scores: Float32Array.of(0.1, 0.4, 0.3, 0.2) },
    ],
    retrievedIds: [
      [
        { image: 0, token: 12 },
        { image: 0, token: 14 },
      ],
      [
        { image: 0, token: 13 },
        { image: 0, token: 14 },
      ],
    ],
  };

  it('encoded images show salience only; pruned images show kept tokens and a layer retrieval', () => {
    expect(kernel.retentionFromSteps(encoded).images[0]!.kept).toBeUndefined();
    const svg = kernel.retentionMapSvg(pruned, { retrieved, layer: 1 });
    expect(count(svg, 'class="patch kept"')).toBe(4);
    expect(count(svg, 'class="retrieved"')).toBe(2);
    expect(kernel.retentionFromSteps(pruned, { retrieved }).images[0]!.retrieved).toEqual([12, 14]);
    expect(kernel.retentionFromSteps(pruned, { retrieved, layer: 1 }).images[0]!.retrieved).toEqual([13, 14]);
  });

  it('takes backgrounds from a trace image events', () => {
    const data = kernel.retentionFromSteps(pruned, { background: twoTurnTrace() });
    expect(data.images[0]!.background?.href).toBe('data:image/jpeg;base64,QUJD');
  });

  it('retrieval table from a turn: a row per layer with its set and the top scores, best first', () => {
    const table = kernel.retrievalFromTurn(retrieved, { top: 2 });
    expect(table.layers.map((l) => l.retrieved.length)).toEqual([2, 2]);
    expect(table.layers[0]!.top.map((t) => t.score)).toEqual([Math.fround(0.4), Math.fround(0.3)]);
    const html = kernel.renderRetrievalHtml(table);
    expect(count(html, 'class="retrieval-layer"')).toBe(2);
    expect(html).toContain('data-retrieved="2"');
    // Image 0's token 14, with the image counted from 1 as the prompt counts it.
    expect(html).toContain('1:14');
    expect(html).not.toContain('0:14');
  });

  it('retrieval sets and Jaccard similarity', () => {
    const sets = kernel.retrievalSets(retrieved);
    expect(sets).toEqual([
      ['0:12', '0:14'],
      ['0:13', '0:14'],
    ]);
    expect(kernel.jaccard(sets[0]!, sets[1]!)).toBeCloseTo(1 / 3);
    expect(kernel.jaccard([], [])).toBe(1);
  });
});

describe('numbering as the prompt numbers', () => {
  /** A video turn of eight frames, each its own image, with the times the trace announces them at. */
  function videoTrace(): TraceEvent[] {
    const run = 'run-v';
    const out: TraceEvent[] = [{ run, t: 0, type: 'turn.start', turn: 0, text: 'Where is the purple ring in frame 1?', images: 8 }];
    for (let f = 0; f < 8; f++) {
      out.push({ run, t: 1, type: 'image', turn: 0, image: f, width: 32, height: 32, jpeg: 'QUJD', timestamps: [f * 0.5] });
      out.push({ run, t: 2, type: 'kept', turn: 0, image: f, total: 16, kept: [0, 1] });
    }
    return out;
  }

  it('labels the trace image 0 as frame 1, with its time in the video, and the turn index 0 as Turn 1', () => {
    const data = kernel.retentionFromEvents(videoTrace());
    expect(data.images.map((p) => p.label)).toEqual(Array.from({ length: 8 }, (_, f) => `frame ${f + 1} · ${f * 0.5} s`));
    expect(data.title).toMatch(/^Turn 1 · /);
    expect(kernel.renderRetentionSvg(data)).toContain('frame 1 · 0 s');
  });

  it('a trace without times (an older one) still counts frames from 1', () => {
    const old = videoTrace().map((e) => (e.type === 'image' ? { ...e, timestamps: undefined } : e));
    expect(kernel.retentionFromEvents(old).images[0]!.label).toBe('frame 1');
  });

  it('the step API labels a video turn’s frames from 1 with their times, and a still image as image 1', () => {
    const s = { scores: SCORES, grid: GRID, leading: 0 };
    const video = { frames: [0, 1.5].map((timestamp, index) => ({ index, timestamp })) };
    expect(kernel.retentionFromSteps({ salience: [s, s], video }).images.map((p) => p.label)).toEqual(['frame 1 · 0 s', 'frame 2 · 1.5 s']);
    expect(kernel.retentionFromSteps({ salience: [s] }).images[0]!.label).toBe('image 1');
    expect(kernel.retentionFromSteps({ salience: [s] }, { firstImage: 2 }).images[0]!.label).toBe('image 3');
  });

  it('the retrieval table titles the turn from 1', () => {
    expect(kernel.retrievalFromEvents(twoTurnTrace(), { turn: 0 }).title).toBe('Retrieval sets of turn 1 per layer');
  });
});

describe('retrieval table from a trace', () => {
  it('pairs each retrieved token with its score and ranks the top scores with their tokens', () => {
    const table = kernel.retrievalFromEvents(twoTurnTrace(), { turn: 0, top: 3 });
    // Scores at float32, as the engine computes them and the profiler page shows them (one fold of the trace).
    expect(table.layers[0]!.retrieved).toEqual([
      { image: 0, token: 5, score: 0.5 },
      { image: 0, token: 12, score: Math.fround(0.9) },
    ]);
    expect(table.layers[0]!.top.map((t) => t.token)).toEqual([12, 5, 15]);
    expect(kernel.retrievalSets(twoTurnTrace(), { turn: 1 })).toEqual([
      ['0:9', '0:14'],
      ['0:9', '0:14'],
    ]);
  });
});

describe('latency summary', () => {
  const timings = (prefill: number) => ({
    imageSeconds: 0.001,
    visionSeconds: 0.002,
    prefillSeconds: prefill,
    firstTokenSeconds: prefill + 0.004,
    decodeSeconds: 0.01,
    decodeTokensPerSecond: 700,
    totalSeconds: prefill + 0.014,
    promptTokens: 50,
    generatedTokens: 8,
    cachedTokens: 0,
  });

  it('one row per answer, TTFT / prefill / decode tok/s stated, a stage bar each', () => {
    const html = kernel.renderLatencyHtml(
      kernel.latencyRows([
        { label: 'dense', answer: { timings: timings(0.02) } },
        { label: 'k8 <r4>', answer: { timings: timings(0.005) } },
      ]),
    );
    expect(count(html, 'class="latency-row"')).toBe(2);
    expect(count(html, 'class="stage prefill"')).toBe(2);
    expect(html).toContain('TTFT');
    expect(html).toContain('>24.0<'); // TTFT of the first, ms
    expect(html).toContain('k8 &lt;r4&gt;');
  });

  it('accepts one answer, a list or a record', () => {
    expect(kernel.latencyRows({ timings: timings(0.01) }).map((r) => r.label)).toEqual(['answer']);
    expect(kernel.latencyRows([{ timings: timings(0.01) }, { timings: timings(0.01) }]).map((r) => r.label)).toEqual(['answer 1', 'answer 2']);
    expect(kernel.latencyRows({ a: { timings: timings(0.01) } }).map((r) => r.label)).toEqual(['a']);
  });
});

describe('budget sweep', () => {
  const points = [
    { label: 'a', latency: 0.01, fidelity: 0.5 },
    { label: 'b', latency: 0.02, fidelity: 0.9 },
    { label: 'c', latency: 0.03, fidelity: 0.8 }, // dominated by b
    { label: 'd', latency: 0.04, fidelity: 1.0 },
    { label: 'e', latency: 0.01, fidelity: 0.4 }, // dominated by a
  ];

  it('the Pareto front holds exactly the points no other is both faster and more faithful than', () => {
    expect(kernel.paretoFront(points).map((i) => points[i]!.label)).toEqual(['a', 'b', 'd']);
    // With a divergence (lower is better) the same values give a different front.
    expect(kernel.paretoFront(points, 'lower-is-better').map((i) => points[i]!.label)).toEqual(['e']);
    expect(kernel.paretoFront([])).toEqual([]);
    expect(
      kernel.paretoFront([
        { latency: 1, fidelity: 1 },
        { latency: 1, fidelity: 1 },
      ]),
    ).toEqual([0, 1]);
  });

  it('plots one point per budget and marks the front', () => {
    const svg = kernel.renderSweepSvg(points);
    expect(count(svg, 'class="sweep-point')).toBe(5);
    expect(count(svg, 'class="sweep-point pareto"')).toBe(3);
    expect(count(svg, 'class="pareto-front"')).toBe(1);
    expect(svg).toContain('data-label="c"');
  });
});

describe('figures as PNGs (what an HTML export keeps)', () => {
  /** RGB of the PNG's pixels in a box of the figure (CSS px), and how much they vary. */
  async function pixels(png: Uint8Array, scale: number, box: { x: number; y: number; w: number; h: number }) {
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const values: number[][] = [];
    for (let y = Math.ceil(box.y * scale) + 2; y < Math.floor((box.y + box.h) * scale) - 2; y++) {
      for (let x = Math.ceil(box.x * scale) + 2; x < Math.floor((box.x + box.w) * scale) - 2; x++) {
        const i = (y * info.width + x) * info.channels;
        values.push([data[i]!, data[i + 1]!, data[i + 2]!]);
      }
    }
    const lum = values.map(([r, g, b]) => 0.3 * r! + 0.59 * g! + 0.11 * b!);
    const mean = lum.reduce((a, b) => a + b, 0) / lum.length;
    const sd = Math.sqrt(lum.reduce((a, b) => a + (b - mean) ** 2, 0) / lum.length);
    return { values, mean, sd };
  }

  it('librsvg draws the hatching over pruned patches, plain kept patches, and cyan outlines, at 2× the CSS size', async () => {
    const figure = kernel.renderRetention({ images: [{ grid: GRID, leading: 0, kept: [0, 5], retrieved: [5] }], layer: 0 });
    const png = kernel.rasterise(figure.svg, 2);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', Math.round(figure.width * 2), Math.round(figure.height * 2)]);
    const cell = (t: number) => figure.spots.find((s) => s.data?.token === t)!;
    const pruned = await pixels(png, 2, cell(1));
    const kept = await pixels(png, 2, cell(0));
    // Stripes: a pruned patch alternates dark fill and light lines; a kept one over the grey placeholder is flat.
    expect(pruned.sd).toBeGreaterThan(15);
    expect(kept.sd).toBeLessThan(3);
    expect(pruned.mean).toBeLessThan(kept.mean - 40);
    // The outline's stroke, just inside the retrieved patch's edge: cyan (#00d5ff).
    const edge = cell(5);
    const ring = await pixels(png, 2, { x: edge.x - 1, y: edge.y + edge.h / 2 - 1, w: 5, h: 4 });
    expect(ring.values.some(([r, g, b]) => r! < 80 && g! > 170 && b! > 200)).toBe(true);
  });

  it('a figure is an <img> PNG data URL at its CSS size with one hover box per token', () => {
    const figure = kernel.renderRetention(kernel.retentionFromEvents(twoTurnTrace(), { turn: 0, layer: 1 }));
    const html = kernel.figureHtml(figure, kernel.rasterise(figure.svg, 2), 'retention-map');
    const img = html.match(/<img src="data:image\/png;base64,([^"]+)" width="(\d+)" height="(\d+)" alt="([^"]+)" usemap="#([^"]+)">/)!;
    expect(Number(img[2])).toBe(Math.round(figure.width));
    expect(img[4]).toContain('image 1: kept 6/16 · layer 1 retrieved 2');
    expect(html).toContain(`<map name="${img[5]}">`);
    expect(count(html, '<area ')).toBe(16);
    expect([...html.matchAll(/data-token="(\d+)" data-state="\w+ retrieved"/g)].map((m) => Number(m[1]))).toEqual([3, 5]);
  });

  it('a 64-frame map stays small: 1 px per CSS px, a 256-colour palette, no image map past the hover-box cap', async () => {
    // The demo model's held-out video frames, as the trace's tower pictures (64×64 JPEG).
    const dir = path.join(kernel.paths.demoModel, 'examples');
    const frames = fs.readdirSync(dir).filter((f) => /_\d+\.png$/.test(f));
    expect(frames.length).toBeGreaterThan(0);
    const jpegs = await Promise.all(
      frames.map(async (f) => (await sharp(path.join(dir, f)).resize(64, 64).jpeg({ quality: 85 }).toBuffer()).toString('base64')),
    );
    const images = Array.from({ length: 64 }, (_, i) => ({
      label: `frame ${i + 1}`,
      grid: { rows: 8, cols: 8 },
      leading: 0,
      salience: Array.from({ length: 64 }, (_, t) => ((t * 37 + i * 11) % 64) / 640),
      kept: Array.from({ length: 64 }, (_, t) => t).filter((t) => (t + i) % 2 === 0),
      retrieved: [i % 64, (i * 7) % 64].filter((t) => (t + i) % 2 === 0),
      background: { href: `data:image/jpeg;base64,${jpegs[i % jpegs.length]}`, width: 64, height: 64 },
    }));
    const figure = kernel.renderRetention({ title: 'Turn 1 · layer 0', images, layer: 0 });
    const shown: string[] = [];
    kernel.useDisplay({ html: (s) => shown.push(s), svg: () => undefined, markdown: () => undefined });
    try {
      kernel.showFigure(figure, 'retention-map');
    } finally {
      kernel.useDisplay(undefined);
    }
    const png = Buffer.from(shown[0]!.match(/data:image\/png;base64,([^"]+)"/)![1]!, 'base64');
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([Math.round(figure.width), Math.round(figure.height)]);
    expect(meta.width).toBeLessThanOrEqual(1040);
    expect(shown[0]).not.toContain('<area');
    console.log(`64-frame retention map: ${meta.width}×${meta.height} px, PNG ${png.length} bytes, HTML ${shown[0]!.length} bytes`);
    expect(png.length).toBeLessThan(600_000);
  });
});

describe('display and the notebook trace', () => {
  it('show functions hand their markup to the display, and do nothing without one', () => {
    const shown: [string, string][] = [];
    kernel.useDisplay({ html: (s) => shown.push(['html', s]), svg: (s) => shown.push(['svg', s]), markdown: (s) => shown.push(['md', s]) });
    try {
      kernel.showRetentionMap(twoTurnTrace());
      kernel.showRetrieval(twoTurnTrace());
      kernel.showSweep([{ label: 'x', latency: 1, fidelity: 1 }]);
      expect(shown.map(([k]) => k)).toEqual(['html', 'html', 'html']);
      // Maps and plots as PNGs, each token a hover box saying what the map drew there.
      expect(shown[0]![1]).toMatch(/^<figure class="retention-map"[^>]*><img src="data:image\/png;base64,/);
      expect(count(shown[0]![1], 'data-state="kept')).toBe(6);
      expect(count(shown[0]![1], '<area ')).toBe(16);
      expect(shown[2]![1]).toMatch(/^<figure class="budget-sweep"[^>]*><img src="data:image\/png;base64,/);
    } finally {
      kernel.useDisplay(undefined);
    }
    // Outside a kernel tslab's display is not ready: nothing is shown and nothing throws.
    expect(kernel.show('html', '<p>x</p>')).toBe(false);
    expect(() => kernel.showLatency([])).not.toThrow();
  });

  it('each tracer() is its own run; memory stays under maxEvents', () => {
    const trace = kernel.recordTrace({ maxEvents: 100 });
    const a = trace.tracer();
    const b = trace.tracer();
    expect(a.run).not.toBe(b.run);
    a.emit({ type: 'turn.start', turn: 0, text: 'hi', images: 0 });
    b.emit({ type: 'turn.start', turn: 0, text: 'hi', images: 0 });
    expect(trace.runs).toEqual([a.run, b.run]);
    for (let i = 0; i < 500; i++) a.emit({ type: 'token', turn: 0, step: i, id: 1, text: 'x' });
    expect(trace.events.length).toBeLessThanOrEqual(100);
    expect(trace.dropped + trace.events.length).toBe(502);
    expect(trace.events.at(-1)).toMatchObject({ type: 'token', step: 499 });
  });
});

describe('paths', () => {
  it('resolve the repository and the bundled model from the module, not the working directory', () => {
    expect(fs.existsSync(path.join(kernel.paths.bundledModel, 'config.json'))).toBe(true);
    expect(fs.existsSync(kernel.paths.bundledImage)).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(kernel.repoRoot, 'package.json'), 'utf8')).name).toBe('sparsevila-ts');
    expect(JSON.parse(fs.readFileSync(path.join(kernel.paths.demoModel, 'config.json'), 'utf8')).model_type).toBe('llava');
  });
});

describe('demo image example', () => {
  it("is the demo model's first one-image conversation from examples/conversations.json, media as absolute paths", () => {
    const list = JSON.parse(fs.readFileSync(path.join(kernel.paths.demoModel, 'examples/conversations.json'), 'utf8')) as {
      media: string[];
      turns: { question: string; answer: string }[];
    }[];
    const first = list.find((c) => c.media.length === 1)!;
    const example = kernel.demoImageExample();
    expect(example.media).toEqual([path.join(kernel.paths.demoModel, 'examples', first.media[0]!)]);
    expect(fs.existsSync(example.media[0]!)).toBe(true);
    expect(example.turns).toEqual(first.turns);
  });

  it('says which folder lacks the examples, is malformed, or has no image conversation with enough turns', () => {
    const dir = tempDir('examples');
    expect(() => kernel.demoImageExample({ modelDir: dir })).toThrow(
      expect.objectContaining({ code: 'CHECKPOINT_NOT_FOUND', message: expect.stringContaining(dir) }),
    );
    fs.mkdirSync(path.join(dir, 'examples'));
    const write = (json: unknown) => fs.writeFileSync(path.join(dir, 'examples/conversations.json'), JSON.stringify(json));
    write([{ title: 'x', media: ['a.png'], turns: [{ answer: 'red' }] }]);
    expect(() => kernel.demoImageExample({ modelDir: dir })).toThrow(
      expect.objectContaining({ code: 'CHECKPOINT_CORRUPT', message: expect.stringContaining('conversation 0') }),
    );
    write([
      { title: 'video', media: ['1.png', '2.png'], turns: [{ question: 'q?' }] },
      { title: 'image', media: ['a.png'], turns: [{ question: 'q?', answer: 'red' }] },
    ]);
    expect(kernel.demoImageExample({ modelDir: dir })).toEqual({
      title: 'image',
      media: [path.join(dir, 'examples/a.png')],
      turns: [{ question: 'q?', answer: 'red' }],
    });
    expect(() => kernel.demoImageExample({ modelDir: dir, minTurns: 2 })).toThrow(
      expect.objectContaining({ code: 'CHECKPOINT_NOT_FOUND', message: expect.stringContaining('2+ turns') }),
    );
  });
});

describe('kernelspec install', () => {
  it('writes a tslab kernelspec whose command starts this checkout tslab, without tslab on PATH', () => {
    const prefix = tempDir('kernelspec');
    const spec = installKernelspec({ prefix });
    expect(spec.dir).toBe(path.join(prefix, 'share', 'jupyter', 'kernels', 'tslab'));
    const json = JSON.parse(fs.readFileSync(path.join(spec.dir, 'kernel.json'), 'utf8'));
    expect(json.language).toBe('typescript');
    expect(json.argv.slice(1)).toEqual(['kernel', '--config-path', '{connection_file}']);
    expect(path.isAbsolute(json.argv[0])).toBe(true);
    // A PATH with neither node nor tslab on it: the wrapper still starts tslab.
    const run = spawnSync(json.argv[0], ['--version'], { env: { PATH: '/nonexistent' }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/tslab 1\.0\.22/);
    // Installing again overwrites in place.
    expect(installKernelspec({ prefix }).dir).toBe(spec.dir);
    expect(() => installKernelspec({ prefix, name: '../x' })).toThrow(/kernelspec name/);
  });

  it('npm run kernel:install installs into the project .jupyter/ (gitignored)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(kernel.repoRoot, 'package.json'), 'utf8'));
    expect(pkg.scripts['kernel:install']).toBe('node dist/kernel/install.js');
    expect(fs.readFileSync(path.join(kernel.repoRoot, '.gitignore'), 'utf8').split('\n')).toContain('.jupyter/');
    const prefix = tempDir('kernelspec-cli');
    const out = execFileSync(process.execPath, [path.join(kernel.repoRoot, 'dist/kernel/install.js'), '--prefix', prefix], { encoding: 'utf8' });
    expect(out).toContain('installed the tslab kernelspec');
    expect(fs.existsSync(path.join(prefix, 'share/jupyter/kernels/tslab/kernel.json'))).toBe(true);
  });
});

describe('profiler endpoints', () => {
  it('derive the ingest URL and page URL from either form, carrying the token', () => {
    expect(kernel.profilerEndpoints('http://127.0.0.1:8765/?token=abc')).toEqual({
      page: 'http://127.0.0.1:8765/?token=abc',
      ingest: 'ws://127.0.0.1:8765/ws/ingest?token=abc',
      health: 'http://127.0.0.1:8765/api/health',
      token: 'abc',
      shown: 'http://127.0.0.1:8765/?token=…',
    });
    expect(kernel.profilerEndpoints('ws://localhost:9/ws/ingest', 't').page).toBe('http://localhost:9/?token=t');
    expect(kernel.profilerEndpoints('https://h.example/x').ingest).toBe('wss://h.example/ws/ingest');
    expect(() => kernel.profilerEndpoints('localhost:8765')).toThrow(/profiler URL localhost:8765 must start with http:\/\//);
  });

  it('a URL where no profiler answers fails at attach time, naming it', async () => {
    const server = await startProfiler({ port: 0, log: () => undefined });
    const wrong = `http://127.0.0.1:${server.port}/?token=${'w'.repeat(20)}`;
    await server.close();
    await expect(kernel.attachProfiler({ url: wrong, announce: false })).rejects.toThrow(
      `no profiler at http://127.0.0.1:${server.port}/?token=…: nothing is listening there`,
    );
  });
});

describe('attachProfiler', () => {
  type Model = Awaited<ReturnType<typeof engine.loadModel>>;
  let model: Model;
  const policy = engine.validatePolicy({ method: 'sparsevila', keep: { budget: { count: 8 } }, retrieve: { budget: { count: 4 } } });
  beforeAll(async () => {
    model = await engine.loadModel(kernel.paths.bundledModel, { threads: 1, cacheDir: tempDir('kernel-graphs') });
  });
  afterAll(() => model?.close());

  /** One chat turn through the trace's tracer; its run id. */
  async function chatThrough(trace: kernel.NotebookTrace): Promise<string> {
    const tracer = trace.tracer();
    const chat = model.chat({ policy, tracer, maxNewTokens: 4 });
    await chat.ask({ images: [kernel.paths.bundledImage], text: 'What is shown?' });
    await chat.close();
    return tracer.run;
  }

  it('towerImage is the image as the tower sees it (resized, cropped): the retention map background', async () => {
    const bg = await kernel.towerImage(model, kernel.paths.bundledImage);
    const side = (model.spec as LlavaSpec).vision.imageSize;
    expect([bg.width, bg.height]).toEqual([side, side]);
    expect(bg.href).toMatch(/^data:image\/jpeg;base64,\/9j\//);
  });

  it('hosts a profiler in the kernel process: chats appear as runs, and stay in memory for the show functions', async () => {
    const trace = await kernel.attachProfiler({ announce: false });
    try {
      expect(trace.server).not.toBeNull();
      expect(trace.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
      const run = await chatThrough(trace);
      const mine = trace.events.filter((e) => e.run === run);
      expect(trace.server!.runs().find((r) => r.run === run)?.events).toBe(mine.length);
      // The server gives back what the notebook recorded (token required).
      const res = await fetch(new URL(`/api/runs/${run}/events`, trace.url), { headers: { authorization: `Bearer ${trace.server!.token}` } });
      expect(res.status).toBe(200);
      const served = decodeBatch(await res.text());
      expect(served.filter((e) => e.type === 'kept').map((e) => (e as { kept: number[] }).kept)).toEqual(
        mine.filter((e) => e.type === 'kept').map((e) => (e as { kept: number[] }).kept),
      );
      expect(count(kernel.retentionMapSvg(trace), 'class="patch kept"')).toBe(8);
    } finally {
      await trace.close();
    }
  });

  it('connects to a running profiler by its printed URL (or $SPARSEVILA_PROFILER_URL) over WebSocket', async () => {
    const server = await startProfiler({ log: () => undefined });
    const saved = process.env.SPARSEVILA_PROFILER_URL;
    try {
      const byUrl = await kernel.attachProfiler({ url: server.url, announce: false });
      expect(byUrl.server).toBeNull();
      const run = await chatThrough(byUrl);
      await byUrl.close(); // flushes the sink
      expect(server.runs().find((r) => r.run === run)?.events).toBe(byUrl.events.length);

      process.env.SPARSEVILA_PROFILER_URL = server.url;
      const byEnv = await kernel.attachProfiler({ announce: false });
      const run2 = await chatThrough(byEnv);
      await byEnv.close();
      expect(server.runs().map((r) => r.run)).toEqual(expect.arrayContaining([run, run2]));
    } finally {
      if (saved === undefined) delete process.env.SPARSEVILA_PROFILER_URL;
      else process.env.SPARSEVILA_PROFILER_URL = saved;
      await server.close();
    }
  });
});
