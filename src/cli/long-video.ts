/**
 * The long-video conversation of `sparsevila demo`: a video of the synthetic world the demo model knows, far longer
 * than the 8-frame videos it was trained on, asked about dense and with SparseVILA turn by turn, printed side by
 * side with SparseVILA's speed-ups. At 64 tokens an image the shipped examples leave sparsity little to save; here
 * thousands of visual tokens enter the prompt, so pruning half of them at prefill and retrieving a quarter per layer
 * at decode is where it pays. The frames are rendered at run time from `src/world` (frames as images, as the demo
 * model's template labels a video: no ffmpeg needed).
 */
import type { Model } from '../session/model.js';
import type { Answer } from '../session/types.js';
import type { SparsityPolicy } from '../sparsity/registry.js';
import type { TraceSink } from '../trace/schema.js';
import { Tracer } from '../trace/tracer.js';
import { makeVideo, renderVideo, toPng, videoFrame, videoQuestions, type Question } from '../world/index.js';

/** The world's seed for the video (any seed makes a video; this one is fixed so runs compare). */
const SEED = 20260101;
/** Text tokens a frame adds besides its image tokens ("Frame k: " and the separator), and the prompt's own. */
const FRAME_LABEL_TOKENS = 6;
const PROMPT_MARGIN = 64;

/**
 * How many frames the long video has: 64, or as many as fit the model's rotary positions densely (the dense run
 * must see every frame). The demo model's max_position_embeddings (8192; its rotary positions are plain RoPE, which
 * transformers computes the same whatever that limit) holds the 64 frames of 64 tokens.
 */
export function longVideoFrames(maxPositions: number, imageTokens: number): number {
  return Math.min(64, Math.floor((maxPositions - PROMPT_MARGIN) / (imageTokens + FRAME_LABEL_TOKENS)));
}

export interface LongVideo {
  title: string;
  frames: Uint8Array[];
  turns: Question[];
}

/**
 * The video and five questions spread over it: where an object is early and late, a frame's count, a cell's shape
 * and a colour, each with the world's answer.
 */
export async function longVideo(frames: number, imageSize: number): Promise<LongVideo> {
  const video = makeVideo(SEED, { frames, minObjects: 3, maxObjects: 5 });
  const pngs = await Promise.all(renderVideo(video, imageSize).map((rgb) => toPng(rgb, imageSize, imageSize)));
  const questions = videoQuestions(video);
  const at = (frame: number, kind: Question['kind']) => questions.find((q) => q.frame === frame && q.kind === kind);
  const spread = [3, Math.round(frames / 3), Math.round(frames / 2), Math.round((2 * frames) / 3), frames - 2];
  const kinds: Question['kind'][] = ['frame-where', 'frame-count', 'frame-cell-shape', 'frame-shape-color', 'frame-where'];
  const turns = spread.map((f, i) => at(f, kinds[i]!) ?? at(f, 'frame-count')!);
  const visible = videoFrame(video, 1).objects.length;
  return { title: `long video, ${frames} frames (${visible} objects in frame 1, seed ${SEED})`, frames: pngs, turns };
}

/**
 * Asks the long video's questions under each policy, turn by turn with the policies alternating (so neither runs
 * on a machine the other left warmer), and prints each turn's answers and timings side by side with the
 * speed-ups. Both runs stream to `sink`.
 */
export async function runLongVideo(
  model: Model,
  shape: { imageTokens: number; imageSize: number },
  policies: [string, SparsityPolicy][],
  sink: TraceSink,
): Promise<Answer[][]> {
  const frames = longVideoFrames(model.spec.text.maxPositionEmbeddings, shape.imageTokens);
  const video = await longVideo(frames, shape.imageSize);
  console.log(`\n== ${video.title}: ${frames * shape.imageTokens} visual tokens, ${policies.map(([n]) => n).join(' vs ')}`);
  // One unmeasured first turn per policy: ORT sizes its arenas for this prompt length on the first run.
  for (const [, policy] of policies) {
    const warm = model.chat({ maxNewTokens: 1, policy });
    await warm.ask({ images: video.frames, text: video.turns[0]!.question });
    await warm.close();
  }
  const chats = policies.map(([, policy]) => model.chat({ maxNewTokens: 16, policy, tracer: new Tracer([sink]) }));
  const answers: Answer[][] = policies.map(() => []);
  try {
    for (const [i, turn] of video.turns.entries()) {
      console.log(`turn ${i + 1} user: ${turn.question}   (the world's answer: ${turn.answer})`);
      for (const [p, chat] of chats.entries()) {
        const a = await chat.ask({ images: i === 0 ? video.frames : [], text: turn.question });
        answers[p]!.push(a);
        const t = a.timings;
        console.log(
          `  ${chats[p]!.policy.method.padEnd(12)} ${JSON.stringify(a.text).padEnd(16)} prefill ${ms(t.prefillSeconds)}, first token ${ms(t.firstTokenSeconds)}, ` +
            `decode ${decodeMs(a)} ms/token, turn ${ms(t.totalSeconds)}; ${a.sparsity.turnKeptTokens}/${a.sparsity.turnImageTokens} new visual tokens in, ` +
            `${attendedMean(a)} of ${a.sparsity.visualTokens} attended per step`,
        );
      }
      const [dense, sparse] = answers.map((list) => list[i]!);
      console.log(`  speed-up: ${speedups(dense!, sparse!)}`);
    }
  } finally {
    for (const chat of chats) await chat.close();
  }
  return answers;
}

const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
const decodeMs = (a: Answer) => (a.timings.decodeTokensPerSecond ? (1000 / a.timings.decodeTokensPerSecond).toFixed(2) : '—');
const attendedMean = (a: Answer) => Math.round(a.sparsity.attendedVisualPerLayer.reduce((x, y) => x + y, 0) / a.sparsity.attendedVisualPerLayer.length);

/** Dense ÷ sparse: prefill, decode per token, end to end ("n/a" where a side has nothing to time). */
export function speedups(dense: Answer, sparse: Answer): string {
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
  const perToken = (a: Answer) => (a.timings.decodeTokensPerSecond ? 1 / a.timings.decodeTokensPerSecond : 0);
  return (
    `prefill ${ratio(dense.timings.prefillSeconds, sparse.timings.prefillSeconds)}, decode ${ratio(perToken(dense), perToken(sparse))} per token, ` +
    `end to end ${ratio(dense.timings.totalSeconds, sparse.timings.totalSeconds)}`
  );
}
