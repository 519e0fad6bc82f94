/**
 * Questions about scenes and videos with exact, short, lower-case answers (a word, a hyphenated cell name
 * or a number), so accuracy is exact string match. Each question records the evidence its answer rests on:
 * the cells (and frame) to look at, and whether one region decides it (`region`) or the whole image or
 * several frames do (`global`).
 */
import { CELLS, CELL_PHRASE, COLORS, SHAPES, SIZES, objectAt, type Cell, type Scene } from './scene.js';
import { videoFrame, type Video } from './video.js';

export const IMAGE_QUESTION_KINDS = ['shape-color', 'shape-size', 'cell-shape', 'cell-color', 'count-color', 'exists'] as const;
export const VIDEO_QUESTION_KINDS = ['first-appear', 'frame-count', 'frame-where', 'frame-shape-color', 'frame-cell-shape'] as const;
export const QUESTION_KINDS = [...IMAGE_QUESTION_KINDS, ...VIDEO_QUESTION_KINDS] as const;
export type ImageQuestionKind = (typeof IMAGE_QUESTION_KINDS)[number];
export type VideoQuestionKind = (typeof VIDEO_QUESTION_KINDS)[number];
export type QuestionKind = (typeof QUESTION_KINDS)[number];

/** `region`: one cell (of one frame) decides the answer. `global`: the whole image, or several frames, do. */
export type QuestionScope = 'region' | 'global';

export interface Question {
  kind: QuestionKind;
  /** The question as asked, e.g. "What color is the circle?". */
  question: string;
  /** The exact answer, lower-case: a color, shape, size, cell name, "nothing", "yes"/"no", or a number. */
  answer: string;
  scope: QuestionScope;
  /** The cells holding the evidence (reading order). Empty for a global question whose answer is an absence. */
  cells: Cell[];
  /** For video questions: the frame (1-based) the evidence is in — the asked frame, or the frame of first appearance. */
  frame?: number;
}

/** The answer for an empty cell. */
export const NOTHING = 'nothing';

/** Every answer a question can have, for videos of up to `frames` frames, sorted. */
export function answerVocabulary(frames = 8): string[] {
  const numbers = Array.from({ length: Math.max(frames, 9) + 1 }, (_, i) => String(i));
  return [...COLORS, ...SHAPES, ...SIZES, ...CELLS, NOTHING, 'yes', 'no', ...numbers].sort();
}

function byCell(a: Cell, b: Cell): number {
  return CELLS.indexOf(a) - CELLS.indexOf(b);
}

/** All the questions one can ask about a scene, by kind, each with its answer. */
export function imageQuestions(scene: Scene): Question[] {
  return [...sceneQuestions(scene, undefined)];
}

function* sceneQuestions(scene: Scene, frame: number | undefined): Generator<Question> {
  const inFrame = frame === undefined ? '' : ` in frame ${frame}`;
  const withFrame = (q: Omit<Question, 'frame'>): Question => (frame === undefined ? q : { ...q, frame });
  const shapeKind = frame === undefined ? 'shape-color' : 'frame-shape-color';
  const cellKind = frame === undefined ? 'cell-shape' : 'frame-cell-shape';
  // The <shape>: asked only of shapes that occur exactly once.
  for (const shape of SHAPES) {
    const matches = scene.objects.filter((o) => o.shape === shape);
    if (matches.length !== 1) continue;
    const o = matches[0]!;
    yield withFrame({ kind: shapeKind, question: `What color is the ${shape}${inFrame}?`, answer: o.color, scope: 'region', cells: [o.cell] });
    if (frame === undefined) yield { kind: 'shape-size', question: `Is the ${shape} large or small?`, answer: o.size, scope: 'region', cells: [o.cell] };
  }
  for (const cell of CELLS) {
    const o = objectAt(scene, cell);
    yield withFrame({
      kind: cellKind,
      question: `What shape is at the ${CELL_PHRASE[cell]}${inFrame}?`,
      answer: o ? o.shape : NOTHING,
      scope: 'region',
      cells: [cell],
    });
    if (o && frame === undefined)
      yield { kind: 'cell-color', question: `What color is the object at the ${CELL_PHRASE[cell]}?`, answer: o.color, scope: 'region', cells: [cell] };
  }
  if (frame !== undefined) return;
  for (const color of COLORS) {
    const cells = scene.objects
      .filter((o) => o.color === color)
      .map((o) => o.cell)
      .sort(byCell);
    yield { kind: 'count-color', question: `How many ${color} objects are there?`, answer: String(cells.length), scope: 'global', cells };
  }
  for (const color of COLORS) {
    for (const shape of SHAPES) {
      const cells = scene.objects
        .filter((o) => o.color === color && o.shape === shape)
        .map((o) => o.cell)
        .sort(byCell);
      const question = `Is there ${color === 'orange' ? 'an' : 'a'} ${color} ${shape}?`;
      // One match: that cell decides it. None: only the whole image does. (Two matches: still yes, but no single region.)
      yield { kind: 'exists', question, answer: cells.length > 0 ? 'yes' : 'no', scope: cells.length === 1 ? 'region' : 'global', cells };
    }
  }
}

/** All the questions one can ask about a video, by kind, each with its answer. */
export function videoQuestions(video: Video): Question[] {
  const out: Question[] = [];
  for (const a of video.actors) {
    out.push({
      kind: 'first-appear',
      question: `In which frame does the ${a.color} ${a.shape} first appear?`,
      answer: String(a.firstFrame),
      scope: 'global',
      cells: [a.cells[a.firstFrame - 1]!],
      frame: a.firstFrame,
    });
  }
  for (let frame = 1; frame <= video.frames; frame++) {
    const scene = videoFrame(video, frame);
    out.push({
      kind: 'frame-count',
      question: `How many objects are in frame ${frame}?`,
      answer: String(scene.objects.length),
      scope: 'global',
      cells: scene.objects.map((o) => o.cell),
      frame,
    });
    for (const o of scene.objects) {
      out.push({
        kind: 'frame-where',
        question: `Where is the ${o.color} ${o.shape} in frame ${frame}?`,
        answer: o.cell,
        scope: 'region',
        cells: [o.cell],
        frame,
      });
    }
    out.push(...sceneQuestions(scene, frame));
  }
  return out;
}
