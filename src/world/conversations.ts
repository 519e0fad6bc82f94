/**
 * Multi-turn conversations about one image or one video whose turns ask about different regions: every
 * region turn looks at cells no earlier turn looked at (and, where the media allows, not next to the
 * previous turn's cells), which is exactly what separates query-aware retrieval at decode (re-scored per
 * turn) from query-aware pruning at prefill (fixed by the first question).
 *
 * Conversation `i` of a split is a pure function of (seed, split, attempt), so the same seed gives the
 * same conversations, and a longer run extends a shorter one. Train and held-out splits use different
 * seed streams, and the held-out split skips any media whose layout occurs in the train split.
 */
import { deriveSeed, makeRng, type Rng } from './random.js';
import { neighbours, randomScene, sceneHash, type Cell, type Scene, type SceneOptions } from './scene.js';
import { DEFAULT_FRAMES, randomVideo, videoHash, type Video, type VideoOptions } from './video.js';
import { NOTHING, imageQuestions, videoQuestions, type Question, type QuestionKind } from './questions.js';

export type Media = { kind: 'image'; scene: Scene } | { kind: 'video'; video: Video };

/** One question and its answer, with the evidence it rests on (see `Question`). */
export type Turn = Question;

export interface Conversation {
  /** `<split>-<index, 6 digits>`, e.g. "train-000042". */
  id: string;
  split: string;
  /** The seed this conversation was generated from (`makeConversation(seed, options)` gives it again). */
  seed: number;
  media: Media;
  /** The media's layout hash (`sceneHash` / `videoHash`): equal hashes mean the same scene. */
  hash: string;
  turns: Turn[];
}

export interface ConversationOptions {
  /** Fraction of conversations about a video rather than an image (default 0). */
  videoFraction?: number;
  /** Turns per conversation, drawn uniformly from minTurns–maxTurns (default 1–5). Fewer when the media runs out of distinct regions. */
  minTurns?: number;
  maxTurns?: number;
  /** Frames per video (default 8). */
  frames?: number;
  /** At most this many global turns (counts, absences, first appearances) per conversation (default 1). */
  maxGlobalTurns?: number;
  /** Ask only these kinds of question (default: all). */
  kinds?: readonly QuestionKind[];
  /** Prefer each region turn's cells not to touch the previous region turn's (default true). */
  spread?: boolean;
  /** Chance that a turn asks what is in an empty cell (answer "nothing") when one is available (default 0.1). */
  emptyCellRate?: number;
  scene?: SceneOptions;
  video?: Omit<VideoOptions, 'frames'>;
}

export interface GeneratorOptions extends ConversationOptions {
  /** Split name, also the seed stream (default "train"). */
  split?: string;
  /** Media hashes to skip (the held-out split passes the train split's). */
  exclude?: ReadonlySet<string>;
}

/** The conversation a seed names (id and split are for the caller to set). */
export function makeConversation(seed: number, options: ConversationOptions = {}, id = `conv-${seed}`, split = 'train'): Conversation {
  const rng = makeRng(seed);
  const videoFraction = options.videoFraction ?? 0;
  if (!(videoFraction >= 0 && videoFraction <= 1)) throw new RangeError(`videoFraction must be in [0, 1], got ${videoFraction}`);
  const media: Media =
    videoFraction > 0 && rng.next() < videoFraction
      ? { kind: 'video', video: randomVideo(rng, { ...options.video, frames: options.frames ?? DEFAULT_FRAMES }) }
      : { kind: 'image', scene: randomScene(rng, options.scene) };
  const candidates = media.kind === 'image' ? imageQuestions(media.scene) : videoQuestions(media.video);
  const turns = pickTurns(rng, candidates, options);
  return { id, split, seed, media, hash: mediaHash(media), turns };
}

export function mediaHash(media: Media): string {
  return media.kind === 'image' ? sceneHash(media.scene) : videoHash(media.video);
}

function pickTurns(rng: Rng, all: Question[], options: ConversationOptions): Turn[] {
  const lo = options.minTurns ?? 1;
  const hi = options.maxTurns ?? 5;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi))
    throw new RangeError(`turn range must be integers 1 ≤ min ≤ max, got ${lo}–${hi}`);
  const maxGlobal = options.maxGlobalTurns ?? 1;
  const kinds = options.kinds ? new Set(options.kinds) : undefined;
  const spread = options.spread ?? true;
  const emptyCellRate = options.emptyCellRate ?? 0.1;
  const want = rng.int(lo, hi);
  const turns: Turn[] = [];
  const usedCells = new Set<Cell>();
  const asked = new Set<string>();
  let lastRegion: Cell[] = [];
  let globals = 0;
  const candidates = kinds ? all.filter((q) => kinds.has(q.kind)) : all;
  while (turns.length < want) {
    let eligible = candidates.filter((q) => !asked.has(q.question) && (q.scope === 'global' ? globals < maxGlobal : q.cells.every((c) => !usedCells.has(c))));
    if (spread && lastRegion.length > 0) {
      const near = new Set(lastRegion.flatMap(neighbours));
      const far = eligible.filter((q) => q.scope === 'global' || q.cells.every((c) => !near.has(c)));
      if (far.some((q) => q.scope === 'region')) eligible = far;
    }
    // Empty cells ("nothing") only now and then, and as a last resort to reach minTurns; a scene with
    // few objects gives a shorter conversation rather than a string of "nothing"s.
    const empty = eligible.filter((q) => q.answer === NOTHING);
    const filled = eligible.filter((q) => q.answer !== NOTHING);
    const allowEmpty = empty.length > 0 && (rng.chance(emptyCellRate) || (filled.length === 0 && turns.length < lo));
    if (!allowEmpty) eligible = filled;
    if (eligible.length === 0) break;
    // A kind uniformly, then an answer uniformly among that kind's answers, then a question: balanced yes/no
    // and counts without favouring whatever is most frequent in the candidate list.
    const kind = allowEmpty ? rng.pick([...new Set(empty.map((q) => q.kind))]) : rng.pick([...new Set(eligible.map((q) => q.kind))]);
    const ofKind = (allowEmpty ? empty : eligible).filter((q) => q.kind === kind);
    const answer = rng.pick([...new Set(ofKind.map((q) => q.answer))]);
    const q = rng.pick(ofKind.filter((c) => c.answer === answer));
    turns.push(q);
    asked.add(q.question);
    if (q.scope === 'global') globals++;
    else {
      for (const c of q.cells) usedCells.add(c);
      lastRegion = q.cells;
    }
  }
  return turns;
}

const MAX_SKIPS = 10_000;

/**
 * Conversations of one split, endlessly: conversation i is drawn from deriveSeed(seed, split, attempt),
 * attempts skipping media in `exclude`.
 */
export function* conversations(seed: number, options: GeneratorOptions = {}): Generator<Conversation> {
  const split = options.split ?? 'train';
  let attempt = 0;
  for (let index = 0; ; index++) {
    for (let skipped = 0; ; skipped++) {
      if (skipped > MAX_SKIPS) {
        throw new RangeError(`${split}: ${MAX_SKIPS} media in a row were all excluded — the options allow too few distinct scenes for this split`);
      }
      const s = deriveSeed(seed, split, attempt++);
      const c = makeConversation(s, options, `${split}-${String(index).padStart(6, '0')}`, split);
      if (!options.exclude?.has(c.hash)) {
        yield c;
        break;
      }
    }
  }
}

/** The first `count` conversations of a split (see `conversations`). */
export function makeConversations(seed: number, count: number, options: GeneratorOptions = {}): Conversation[] {
  if (!(Number.isInteger(count) && count >= 0)) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const out: Conversation[] = [];
  if (count === 0) return out;
  for (const c of conversations(seed, options)) {
    out.push(c);
    if (out.length === count) break;
  }
  return out;
}

/** A train split and a held-out split from one seed, with no scene (layout hash) in both. */
export function makeSplits(
  seed: number,
  counts: { train: number; heldOut: number },
  options: ConversationOptions = {},
): { train: Conversation[]; heldOut: Conversation[] } {
  const train = makeConversations(seed, counts.train, { ...options, split: 'train' });
  const exclude = new Set(train.map((c) => c.hash));
  const heldOut = makeConversations(seed, counts.heldOut, { ...options, split: 'heldout', exclude });
  return { train, heldOut };
}
