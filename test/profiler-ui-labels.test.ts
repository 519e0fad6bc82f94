/**
 * The page counts frames, images and turns from 1, as the chat template ("Frame 1: <image>"), the user's
 * questions and the CLI do, while the trace's `turn` and `image` stay indices from 0; a video frame's label
 * carries its time in the video where the trace has it. Pure: the run model and the views' label data, no browser.
 */
import { describe, expect, it } from 'vitest';
import type { TraceEvent } from '../dist/src/trace/index.js';
import { imageLabel, imageName, timeLabel, turnLabel, turnTitle } from '../profiler-ui/web/data/labels.js';
import { foldEvents } from '../profiler-ui/web/data/run-model.js';
import { retrievalMatrix } from '../profiler-ui/web/views/retrieval-heatmap.js';

const RUN = 'run-v';

/** One turn over `frames` images of 2 tokens each, every layer retrieving each image's first token. */
function run(frames: number, times?: (f: number) => number[]): TraceEvent[] {
  const ev: TraceEvent[] = [{ run: RUN, t: 0, type: 'turn.start', turn: 0, text: 'Where is the purple ring in frame 1?', images: frames }];
  for (let f = 0; f < frames; f++) {
    const timestamps = times?.(f);
    ev.push({ run: RUN, t: 1, type: 'image', turn: 0, image: f, width: 8, height: 8, jpeg: 'QUJD', ...(timestamps ? { timestamps } : {}) });
    ev.push({ run: RUN, t: 2, type: 'kept', turn: 0, image: f, total: 2, kept: [0, 1] });
  }
  const candidates = Array.from({ length: frames * 2 }, (_, i) => ({ image: Math.floor(i / 2), token: i % 2 }));
  const retrieved = Array.from({ length: frames }, (_, f) => 2 * f);
  for (const layer of [0, 1]) ev.push({ run: RUN, t: 3, type: 'retrieval', turn: 0, layer, candidates, scores: candidates.map(() => 1), retrieved });
  return ev;
}

const model = (events: TraceEvent[]) => foldEvents(events).get(RUN)!;
const video = () => model(run(8, (f) => [f * 0.5]));

describe('display numbering', () => {
  it('turn index 0 reads as turn 1', () => {
    expect(turnLabel(0)).toBe('turn 1');
    expect(turnTitle(4)).toBe('Turn 5');
  });

  it("a trace event with image 0 is shown as frame 1, at the frame's time in the video", () => {
    const m = video();
    expect(imageLabel(m, 0)).toBe('frame 1 · 0 s');
    expect(imageLabel(m, 7)).toBe('frame 8 · 3.5 s');
    expect(imageName(m, 0)).toBe('frame 1');
  });

  it('an older trace without times, or still images, still count from 1', () => {
    expect(imageLabel(model(run(8)), 0)).toBe('frame 1');
    expect(imageLabel(model(run(2)), 0)).toBe('image 1');
    expect(imageLabel(model(run(2)), 1)).toBe('image 2');
  });

  it('a video encoded as one media (Qwen2-VL) reads as video 1 over its span of times', () => {
    const m = model(run(1, () => [0, 0.5, 1, 1.5]));
    expect(imageLabel(m, 0)).toBe('video 1 · 0–1.5 s');
  });

  it('times read in seconds, past a minute as m:ss', () => {
    expect(timeLabel(0)).toBe('0 s');
    expect(timeLabel(1.25)).toBe('1.25 s');
    expect(timeLabel(12.5)).toBe('12.5 s');
    expect(timeLabel(62.5)).toBe('1:02.5');
  });
});

describe('retrieval heatmap ticks', () => {
  const eight = Array.from({ length: 8 }, (_, f) => `frame ${f + 1}<br>${f * 0.5} s`);

  it("a video run's tick labels read frame 1 … frame 8 with their times, in every mode", () => {
    const m = video();
    for (const mode of ['hits', 'scores', 'frames']) {
      const mat = retrievalMatrix(m, 0, mode)!;
      expect(mat.ticks, mode).toEqual(eight);
      expect(mat.names[0], mode).toBe('frame 1 · 0 s');
    }
    // The data behind the ticks stays indices: the first column is image 0.
    expect(retrievalMatrix(m, 0, 'frames')!.x![0]).toBe(0);
    expect(retrievalMatrix(m, 0, 'hits')!.bounds![0]).toEqual({ at: 0, image: 0 });
  });

  it('a long video is ticked by frame number alone, from 1', () => {
    const mat = retrievalMatrix(model(run(64, (f) => [f])), 0, 'frames')!;
    expect(mat.ticks[0]).toBe('1');
    expect(mat.ticks.at(-1)).toBe('64');
  });
});
