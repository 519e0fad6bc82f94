/**
 * A tuning workload: conversations — images or a video, turns, optional reference answers — that the tuner
 * runs every candidate policy on. Read from a JSON-lines file, one conversation a line:
 *
 *   {"id": "kitchen-1", "images": ["a.png", "b.png"], "turns": [{"question": "…", "answer": "…"}, …]}
 *   {"video": "clip.mp4", "frames": 8, "turns": [{"question": "…"}]}
 *
 * Media paths are relative to the file. `answer` is the reference: with references, a floor may be an
 * accuracy (exact match after trimming, case and a final stop: `isCorrect` in src/world/heldout.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { ImageInput, TurnInput } from '../session/types.js';
import { seededRandom } from '../seeded-random.js';
import { isCorrect } from '../world/heldout.js';

export interface WorkloadTurn {
  question: string;
  /** The reference answer. */
  answer?: string;
  /** Scores an answer in [0, 1]; default: exact match against `answer`, none without one. */
  score?: (text: string) => number;
}

export interface WorkloadConversation {
  id: string;
  /** The first turn's images (paths or encoded bytes; a video's frames in order), or a video file. */
  media: { images: ImageInput[] } | { video: NonNullable<TurnInput['video']> };
  turns: WorkloadTurn[];
}

export interface Workload {
  /** The file, or the named set (`demo:captions`): trial labels, the report, the log's header. */
  name: string;
  conversations: WorkloadConversation[];
  /** Tokens per answer (default 16): a caption workload needs its answers whole. */
  maxNewTokens?: number;
}

/** A turn's score: its own rule, else exact match against its reference, else none. */
export function scoreTurn(turn: WorkloadTurn, text: string): number | undefined {
  if (turn.score) return turn.score(text);
  return turn.answer === undefined ? undefined : Number(isCorrect(text, turn.answer));
}

/** The workload in a JSON-lines file; WORKLOAD_INVALID naming the file, line and field otherwise. */
export function readWorkload(file: string): Workload {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new InputError('WORKLOAD_INVALID', `${file}: cannot read the workload: ${(cause as Error).message}`, { subject: file, cause });
  }
  const conversations: WorkloadConversation[] = [];
  const ids = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const c = parseConversation(line, `${file}:${i + 1}`, path.dirname(file), conversations.length);
    if (ids.has(c.id)) throw lineError(`${file}:${i + 1}`, 'id', `'${c.id}' is already used by an earlier line`);
    ids.add(c.id);
    conversations.push(c);
  });
  if (!conversations.length) throw new InputError('WORKLOAD_INVALID', `${file}: no conversations (one JSON object a line)`, { subject: file });
  return { name: path.basename(file), conversations };
}

function parseConversation(line: string, where: string, dir: string, index: number): WorkloadConversation {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (cause) {
    throw new InputError('WORKLOAD_INVALID', `${where}: not a JSON object: ${(cause as Error).message}`, { subject: where, cause });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw lineError(where, '(line)', 'expected one JSON object');
  const o = v as Record<string, unknown>;
  const id = o.id ?? `line-${index + 1}`;
  if (typeof id !== 'string' || !id) throw lineError(where, 'id', `must be a non-empty string, got ${JSON.stringify(o.id)}`);
  const resolve = (p: string) => path.resolve(dir, p);
  let media: WorkloadConversation['media'];
  if (o.images !== undefined && o.video !== undefined) throw lineError(where, 'images', 'give images or a video, not both');
  if (o.video !== undefined) {
    if (typeof o.video !== 'string' || !o.video) throw lineError(where, 'video', `must be a file path, got ${JSON.stringify(o.video)}`);
    const frames = o.frames;
    if (frames !== undefined && !(Number.isInteger(frames) && (frames as number) > 0))
      throw lineError(where, 'frames', `must be a positive integer, got ${JSON.stringify(frames)}`);
    media = { video: frames === undefined ? resolve(o.video) : { path: resolve(o.video), frames: frames as number } };
  } else {
    const images = o.images;
    if (!Array.isArray(images) || !images.length || !images.every((x) => typeof x === 'string' && x))
      throw lineError(where, 'images', `must be a non-empty list of file paths (or give "video"), got ${JSON.stringify(images)}`);
    media = { images: images.map(resolve) };
  }
  if (!Array.isArray(o.turns) || !o.turns.length)
    throw lineError(where, 'turns', `must be a non-empty list of { question, answer? }, got ${JSON.stringify(o.turns)}`);
  const turns = o.turns.map((t: unknown, k: number): WorkloadTurn => {
    const field = `turns[${k}]`;
    if (typeof t !== 'object' || t === null) throw lineError(where, field, `must be { question, answer? }, got ${JSON.stringify(t)}`);
    const { question, answer } = t as Record<string, unknown>;
    if (typeof question !== 'string' || !question.trim())
      throw lineError(where, `${field}.question`, `must be a non-empty string, got ${JSON.stringify(question)}`);
    if (answer !== undefined && typeof answer !== 'string') throw lineError(where, `${field}.answer`, `must be a string, got ${JSON.stringify(answer)}`);
    return answer === undefined ? { question } : { question, answer };
  });
  return { id, media, turns };
}

function lineError(where: string, field: string, message: string): InputError {
  return new InputError('WORKLOAD_INVALID', `${where}: ${field}: ${message}`, { subject: `${where} ${field}` });
}

/**
 * The workload's conversations split into tuning and held-out ones by a seeded shuffle: the tuner chooses on
 * the first and reports the choice on the second, which it never saw (at least one of each).
 */
export function splitWorkload(
  conversations: readonly WorkloadConversation[],
  heldOutShare: number,
  seed: number,
): { tuning: WorkloadConversation[]; heldOut: WorkloadConversation[] } {
  if (conversations.length < 2)
    throw new InputError('WORKLOAD_INVALID', `a tune needs at least 2 conversations (tuning and held out), got ${conversations.length}`, {
      subject: 'workload',
    });
  const order = conversations.map((_, i) => i);
  const rand = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const held = Math.min(conversations.length - 1, Math.max(1, Math.round(heldOutShare * conversations.length)));
  return { heldOut: order.slice(0, held).map((i) => conversations[i]!), tuning: order.slice(held).map((i) => conversations[i]!) };
}
