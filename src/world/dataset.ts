/**
 * Writing a world dataset to disk for a trainer (the PyTorch side reads it):
 *
 *   DIR/images/<id>.png            one per image conversation, imageSize × imageSize RGB
 *   DIR/frames/<id>_<k>.png        k = 1 … frames, one per frame of a video conversation
 *   DIR/conversations.jsonl        one conversation per line (see `DatasetLine`), train lines first
 *   DIR/meta.json                  written last: seed, options, counts, answer vocabulary (see `DatasetMeta`)
 *
 * The same seed and options give byte-identical files. PNG encoding runs on sharp's thread pool with a
 * bounded number of writes in flight; conversations are generated, rendered and written one at a time,
 * so memory stays flat however many are written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { conversations, type Conversation, type ConversationOptions, type Turn } from './conversations.js';
import { answerVocabulary, QUESTION_KINDS } from './questions.js';
import { CELLS, COLORS, COLOR_RGB, SHAPES, SIZES, type Scene } from './scene.js';
import { DEFAULT_IMAGE_SIZE, renderScene } from './render.js';
import { DEFAULT_FRAMES, videoFrames, type Video } from './video.js';
import { writePng } from './png.js';

export const DATASET_FORMAT = 'sparsevila-world';
export const DATASET_VERSION = 1;

export interface DatasetOptions extends ConversationOptions {
  /** Base seed: train and held-out conversations come from separate streams derived from it. */
  seed: number;
  /** Train conversations. */
  count: number;
  /** Held-out conversations (default 0), none sharing a scene layout with the train split. */
  heldOut?: number;
  /** Square image side in pixels (default 64). */
  imageSize?: number;
  /** PNG writes in flight (default 16). */
  concurrency?: number;
  /** zlib level for the PNGs (default 6). */
  compressionLevel?: number;
  /** Replace an existing dataset in the folder (removes only the dataset's own files). Default: refuse. */
  overwrite?: boolean;
  /** Called after each conversation is queued, with (written so far, total). */
  onProgress?: (done: number, total: number) => void;
}

/** One line of conversations.jsonl. */
export interface DatasetLine {
  id: string;
  split: 'train' | 'heldout';
  /** Media files relative to the dataset folder: one PNG for an image, the frames in order for a video. */
  media: { kind: 'image'; paths: [string] } | { kind: 'video'; paths: string[] };
  turns: Turn[];
  /** Layout hash of the media; no hash occurs in both splits. */
  hash: string;
  /** The seed that regenerates the conversation (`makeConversation(seed, options)`). */
  seed: number;
  /** Ground truth: the scene, or the video (its actors with their cell per frame). */
  truth: { scene: Scene } | { video: Video };
}

export interface DatasetMeta {
  format: typeof DATASET_FORMAT;
  version: typeof DATASET_VERSION;
  seed: number;
  imageSize: number;
  frames: number;
  videoFraction: number;
  minTurns: number;
  maxTurns: number;
  files: { conversations: 'conversations.jsonl'; images: 'images'; frames: 'frames' };
  counts: {
    train: number;
    heldout: number;
    conversations: number;
    images: number;
    videos: number;
    frameFiles: number;
    turns: number;
  };
  vocabulary: { answers: string[]; colors: string[]; shapes: string[]; sizes: string[]; cells: string[]; kinds: string[] };
  /** RGB of each object color, as rendered. */
  palette: Record<string, readonly [number, number, number]>;
  /** Answer frequencies per split. */
  answerCounts: { train: Record<string, number>; heldout: Record<string, number> };
  /** Turn counts by question kind, per split. */
  kindCounts: { train: Record<string, number>; heldout: Record<string, number> };
}

export interface DatasetSummary {
  dir: string;
  meta: DatasetMeta;
  seconds: number;
}

const OWN_FILES = ['conversations.jsonl', 'meta.json', 'images', 'frames'];

/** Writes a dataset folder (see the module comment for the layout). */
export async function writeDataset(dir: string, options: DatasetOptions): Promise<DatasetSummary> {
  const started = performance.now();
  const size = options.imageSize ?? DEFAULT_IMAGE_SIZE;
  const frames = options.frames ?? DEFAULT_FRAMES;
  const heldOut = options.heldOut ?? 0;
  const concurrency = options.concurrency ?? 16;
  if (!Number.isInteger(options.seed)) throw new RangeError(`seed must be an integer, got ${options.seed}`);
  if (!(Number.isInteger(options.count) && options.count >= 0)) throw new RangeError(`count must be a non-negative integer, got ${options.count}`);
  if (!(Number.isInteger(heldOut) && heldOut >= 0)) throw new RangeError(`heldOut must be a non-negative integer, got ${heldOut}`);
  if (!(Number.isInteger(size) && size >= 3 && size <= 4096)) throw new RangeError(`imageSize must be an integer in 3–4096, got ${size}`);
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);

  fs.mkdirSync(dir, { recursive: true });
  const existing = OWN_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  if (existing.length > 0) {
    if (!options.overwrite) throw new Error(`${dir} already holds a dataset (${existing.join(', ')}); pass overwrite to replace it`);
    for (const f of existing) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(dir, 'images'));
  fs.mkdirSync(path.join(dir, 'frames'));

  const total = options.count + heldOut;
  const jsonl = fs.createWriteStream(path.join(dir, 'conversations.jsonl'));
  const streamError = new Promise<never>((_, reject) => jsonl.once('error', reject));
  streamError.catch(() => undefined);
  const pending = new Set<Promise<void>>();
  let firstError: unknown;
  const enqueue = async (file: string, rgb: Uint8Array): Promise<void> => {
    while (pending.size >= concurrency) await Promise.race(pending);
    if (firstError) throw firstError;
    const p: Promise<void> = writePng(file, rgb, size, size, options.compressionLevel).then(
      () => void pending.delete(p),
      (err) => {
        pending.delete(p);
        firstError ??= err;
      },
    );
    pending.add(p);
  };

  const counts = { train: 0, heldout: 0, conversations: 0, images: 0, videos: 0, frameFiles: 0, turns: 0 };
  const answerCounts = { train: {} as Record<string, number>, heldout: {} as Record<string, number> };
  const kindCounts = { train: {} as Record<string, number>, heldout: {} as Record<string, number> };
  const trainHashes = new Set<string>();

  const emit = async (c: Conversation, split: 'train' | 'heldout'): Promise<void> => {
    let line: DatasetLine;
    if (c.media.kind === 'image') {
      const rel = `images/${c.id}.png`;
      await enqueue(path.join(dir, rel), renderScene(c.media.scene, size));
      line = { id: c.id, split, media: { kind: 'image', paths: [rel] }, turns: c.turns, hash: c.hash, seed: c.seed, truth: { scene: c.media.scene } };
      counts.images++;
    } else {
      const paths: string[] = [];
      const scenes = videoFrames(c.media.video);
      for (let k = 1; k <= scenes.length; k++) {
        const rel = `frames/${c.id}_${k}.png`;
        await enqueue(path.join(dir, rel), renderScene(scenes[k - 1]!, size));
        paths.push(rel);
      }
      line = { id: c.id, split, media: { kind: 'video', paths }, turns: c.turns, hash: c.hash, seed: c.seed, truth: { video: c.media.video } };
      counts.videos++;
      counts.frameFiles += scenes.length;
    }
    counts[split]++;
    counts.conversations++;
    counts.turns += c.turns.length;
    for (const t of c.turns) {
      answerCounts[split][t.answer] = (answerCounts[split][t.answer] ?? 0) + 1;
      kindCounts[split][t.kind] = (kindCounts[split][t.kind] ?? 0) + 1;
    }
    if (!jsonl.write(JSON.stringify(line) + '\n')) await Promise.race([once(jsonl, 'drain'), streamError]);
    options.onProgress?.(counts.conversations, total);
  };

  try {
    if (options.count > 0) {
      for (const c of conversations(options.seed, { ...options, split: 'train' })) {
        trainHashes.add(c.hash);
        await emit(c, 'train');
        if (counts.train === options.count) break;
      }
    }
    if (heldOut > 0) {
      for (const c of conversations(options.seed, { ...options, split: 'heldout', exclude: trainHashes })) {
        await emit(c, 'heldout');
        if (counts.heldout === heldOut) break;
      }
    }
  } finally {
    await Promise.allSettled(pending);
    jsonl.end();
    await Promise.race([once(jsonl, 'finish'), streamError]);
  }
  if (firstError) throw firstError;

  const meta: DatasetMeta = {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    seed: options.seed,
    imageSize: size,
    frames,
    videoFraction: options.videoFraction ?? 0,
    minTurns: options.minTurns ?? 1,
    maxTurns: options.maxTurns ?? 5,
    files: { conversations: 'conversations.jsonl', images: 'images', frames: 'frames' },
    counts,
    vocabulary: {
      answers: answerVocabulary(frames),
      colors: [...COLORS],
      shapes: [...SHAPES],
      sizes: [...SIZES],
      cells: [...CELLS],
      kinds: [...QUESTION_KINDS],
    },
    palette: { ...COLOR_RGB },
    answerCounts: { train: sortKeys(answerCounts.train), heldout: sortKeys(answerCounts.heldout) },
    kindCounts: { train: sortKeys(kindCounts.train), heldout: sortKeys(kindCounts.heldout) },
  };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return { dir, meta, seconds: (performance.now() - started) / 1000 };
}

function sortKeys(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Reads conversations.jsonl back (for tests and tools; a trainer reads the same file). */
export function readDatasetLines(dir: string): DatasetLine[] {
  return fs
    .readFileSync(path.join(dir, 'conversations.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as DatasetLine);
}

export function readDatasetMeta(dir: string): DatasetMeta {
  return JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as DatasetMeta;
}
