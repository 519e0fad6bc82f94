/**
 * A synthetic long-video run with the engine's event shapes, for the profiler page's tests: frames of a scene
 * whose sun moves, SparseVILA keeping each frame's most salient patches, and turns whose layers each retrieve
 * the tokens of their own stretch of the video. Deterministic (a seeded generator), so two runs built with the
 * same options are the same run, and options that differ say exactly where they part.
 */
import sharp from 'sharp';
import { seededRandom } from '../../dist/src/seeded-random.js';
import type { TraceEvent } from '../../dist/src/trace/index.js';

/** Indices of the k largest scores, ascending; ties to the lower index, as src/sparsity/topk.ts breaks them. */
export const topIndices = (scores: ArrayLike<number>, k: number): number[] =>
  Array.from(scores, (v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i)
    .sort((a, b) => a - b);

/** A small RGB picture (a scene with a sun that moves with `phase`), as PNG or JPEG bytes. */
export async function picture(size: number, phase: number, format: 'png' | 'jpeg'): Promise<Buffer> {
  const px = Buffer.alloc(size * size * 3);
  const sunX = size * (0.15 + 0.7 * phase);
  const sunY = size * 0.22;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const sky = y < size * 0.55;
      let [r, g, b] = sky ? [110 + (y / size) * 90, 165 + (y / size) * 50, 235] : [70 + (x / size) * 40, 125 + (y / size) * 30, 60];
      if ((x - sunX) ** 2 + (y - sunY) ** 2 < (size * 0.1) ** 2) [r, g, b] = [250, 215, 80];
      if (x > size * 0.18 && x < size * 0.48 && y > size * 0.4 && y < size * 0.76) [r, g, b] = [185, 62, 48];
      if (x > size * 0.27 && x < size * 0.39 && y > size * 0.58 && y < size * 0.76) [r, g, b] = [90, 50, 30];
      if (x > size * 0.62 && x < size * 0.9 && y > size * 0.5 && y < size * 0.8) [r, g, b] = [60, 60, 70];
      px[i] = r;
      px[i + 1] = g;
      px[i + 2] = b;
    }
  }
  const img = sharp(px, { raw: { width: size, height: size, channels: 3 } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 70 }).toBuffer();
}

export interface VideoTraceOptions {
  frames: number;
  grid: number;
  layers: number;
  turns: number;
  keep: number;
  retrieve: number;
  steps: number;
  /** Each turn's question (default: what happens, then the house's colour). */
  questions?: readonly string[];
  /** Each turn's answer (default: two fixed answers, the second repeated). */
  answers?: readonly string[];
  /** From this turn on, every layer looks at another stretch of the video (`by` layers' worth along). */
  shift?: { fromTurn: number; by: number };
  /** The gap (ms) the encode step leaves between its span and the prune span, as a trace whose encode span stops at the tower. */
  encodeGap?: number;
}

const QUESTIONS = ['What happens in this video?', 'What colour is the house?'];
const ANSWERS = ['A red house under a moving sun; the sun crosses the sky from left to right.', 'It is red.'];

/**
 * `frames` frames on a grid×grid patch grid, SparseVILA keeping `keep` of each frame, `turns` turns retrieving
 * `retrieve` of the retained tokens per layer (each layer favouring a stretch of the video), decode steps, answers
 * and fidelity (with its own span).
 */
export async function videoTrace(run: string, o: VideoTraceOptions): Promise<TraceEvent[]> {
  const rand = seededRandom(7);
  const tokens = o.grid * o.grid;
  const ev: TraceEvent[] = [];
  let t = 0;
  const at = (dt: number) => (t += dt);
  ev.push({
    run,
    t: at(0.1),
    type: 'run.start',
    version: 1,
    model: { dir: 'synthetic/llava-video-qwen2', vision: 'siglip', text: 'qwen2', layers: o.layers, heads: 14, kvHeads: 2, imageTokens: tokens },
    policy: {
      method: 'sparsevila',
      keep: { budget: { ratio: o.keep }, scope: 'per-image' },
      retrieve: { budget: { ratio: o.retrieve }, minPerImage: 0, perKvHead: false },
      salience: 'received',
      positions: 'original',
    },
    options: { maxNewTokens: o.steps },
  } as TraceEvent);
  const jpegs = await Promise.all(Array.from({ length: o.frames }, (_, f) => picture(96, f / Math.max(1, o.frames - 1), 'jpeg')));
  const candidates: { image: number; token: number }[] = [];
  for (let f = 0; f < o.frames; f++) {
    ev.push({ run, t: at(0.5), type: 'image', turn: 0, image: f, width: 96, height: 96, jpeg: jpegs[f]!.toString('base64'), timestamps: [f / 2] });
    const sunCol = (0.15 + (0.7 * f) / Math.max(1, o.frames - 1)) * o.grid;
    const scores = Array.from({ length: tokens }, (_, p) => {
      const r = Math.floor(p / o.grid);
      const c = p % o.grid;
      return Math.exp(-((c - sunCol) ** 2 + (r - 0.22 * o.grid) ** 2) / 6) + 0.15 * rand();
    });
    const sum = scores.reduce((a, b) => a + b, 0);
    ev.push({
      run,
      t: at(0.2),
      type: 'salience',
      turn: 0,
      image: f,
      source: 'received',
      grid: { rows: o.grid, cols: o.grid },
      leading: 0,
      scores: scores.map((s) => s / sum),
    });
    const kept = topIndices(scores, Math.round(o.keep * tokens));
    ev.push({ run, t: at(0.05), type: 'kept', turn: 0, image: f, total: tokens, kept });
    for (const k of kept) candidates.push({ image: f, token: k });
  }
  const questions = o.questions ?? QUESTIONS;
  const answers = o.answers ?? ANSWERS;
  for (let turn = 0; turn < o.turns; turn++) {
    const t0 = at(1);
    const answer = answers[Math.min(turn, answers.length - 1)]!;
    ev.push({ run, t: t0, type: 'turn.start', turn, text: questions[Math.min(turn, questions.length - 1)]!, images: turn === 0 ? o.frames : 0 });
    const spans: [string, number][] =
      turn === 0
        ? [
            ['images', 40],
            ['encode', 900],
            ['prune', 6],
            ['prefill', 2400],
            ['retrieve', 30],
          ]
        : [
            ['prefill', 60],
            ['retrieve', 30],
          ];
    let s0 = t0;
    for (const [stage, d] of spans) {
      if (stage === 'prune' && o.encodeGap) {
        s0 += o.encodeGap;
        at(o.encodeGap);
      }
      ev.push({ run, t: at(d), type: 'span', turn, stage: stage as 'prefill', start: s0, duration: d });
      s0 += d;
    }
    const k = Math.round(o.retrieve * candidates.length);
    const shift = o.shift && turn >= o.shift.fromTurn ? o.shift.by : 0;
    for (let layer = 0; layer < o.layers; layer++) {
      const focus = ((layer + turn * 7 + shift) % o.layers) / o.layers; // each layer favours a stretch of the video
      const scores = candidates.map((c) => Math.exp(-(((c.image / o.frames - focus) * 4) ** 2)) * (0.5 + rand()));
      ev.push({ run, t: at(0.2), type: 'retrieval', turn, layer, candidates, scores, retrieved: topIndices(scores, k) });
    }
    const words = answer.split(/(?= )/);
    for (let step = 0; step < Math.min(o.steps, words.length); step++) {
      const ms = 18 + 6 * rand();
      if (step > 0) ev.push({ run, t: at(ms), type: 'decode.step', turn, step, ms, attended: 200 + step, visualAttended: k });
      ev.push({ run, t: at(0.05), type: 'token', turn, step, id: 100 + step, text: words[step]! });
    }
    ev.push({ run, t: at(1), type: 'span', turn, stage: 'decode', start: s0, duration: t - s0 });
    const f0 = t;
    ev.push({ run, t: at(12), type: 'span', turn, stage: 'fidelity', start: f0, duration: 12 });
    ev.push({
      run,
      t: at(0.5),
      type: 'turn.end',
      turn,
      answer,
      stopReason: 'eos',
      metrics: {
        firstTokenSeconds: 2.4,
        prefillSeconds: 2.4,
        decodeSeconds: 0.4,
        decodeTokensPerSecond: 48,
        totalSeconds: (t - t0) / 1000,
        promptTokens: 200,
        generatedTokens: words.length,
        cachedTokens: turn ? 300 : 0,
      },
    } as TraceEvent);
    ev.push({
      run,
      t: at(0.1),
      type: 'fidelity',
      turn,
      metrics: {
        steps: words.length,
        tokenAgreement: 0.9,
        firstDivergence: 3,
        klPerStep: words.map(() => 0.01 * rand()),
        meanKl: 0.005,
        retrievalRecall: Array(o.layers).fill(0.7),
      },
    });
  }
  return ev;
}
