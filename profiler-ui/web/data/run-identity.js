/**
 * What a run is, as a person tells runs apart: what it looked at (an image, 2 images, 8 frames of a video,
 * text alone), the files, the first question, the policy with its budget, the model — and the name someone
 * gave it. Pure, and shared: the page reads it from a loaded run model, the server (profiler-ui/server,
 * through the compiled copy in dist/) folds the same facts event by event into the run list it serves, so a
 * run reads the same before and after the page loads it.
 *
 * A run's *workload* is what a sweep holds fixed while the policy varies: the model and the media (kind,
 * count and, where the trace names them, the files). Runs of one workload are comparable on one Pareto
 * front; an 8-frame video costs several times a still image's visual tokens, so a front across workloads
 * would rank inputs, not policies. The question is not part of it: a sweep over a set of questions about
 * the same media is one workload, and questions do not change what prefill and decode pay for the visual
 * tokens.
 */
import { policyLabel } from './summary.js';

/**
 * @typedef {import('../../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('../../../src/trace/schema.js').PolicyValue} PolicyValue
 * @typedef {import('./run-model.js').RunModel} RunModel
 */

/**
 * What the trace says about a run's inputs, folded from its image and turn.start events.
 * @typedef {object} MediaFacts
 * @property {number} images  image events (a video encoded as one media is one)
 * @property {number} frames  video frames shown (the times the image events carry)
 * @property {string[]} files  the files' base names, in order of first appearance
 * @property {string | null} question  the first turn's text
 */

/** @returns {MediaFacts} */
export function emptyFacts() {
  return { images: 0, frames: 0, files: [], question: null };
}

/**
 * Folds one event into the facts (mutating them); true when they changed. Events other than image and
 * turn.start are ignored, so a caller may pass every event.
 * @param {MediaFacts} f
 * @param {TraceEvent} e
 */
export function noteEvent(f, e) {
  if (e.type === 'turn.start') {
    if (f.question != null) return false;
    f.question = e.text;
    return true;
  }
  if (e.type !== 'image') return false;
  f.images++;
  f.frames += e.timestamps?.length ?? 0;
  if (e.file && !f.files.includes(e.file)) f.files.push(e.file);
  return true;
}

/**
 * The facts of a loaded run model, by the same fold as the server's.
 * @param {RunModel} m
 */
export function factsOfModel(m) {
  const f = emptyFacts();
  const first = [...m.turns.values()].sort((a, b) => a.turn - b.turn)[0];
  if (first?.text != null) noteEvent(f, { type: 'turn.start', run: m.run, t: 0, turn: first.turn, text: first.text, images: first.images });
  for (const i of [...m.images.values()].sort((a, b) => a.image - b.image)) {
    noteEvent(f, {
      type: 'image',
      run: m.run,
      t: 0,
      turn: i.turn,
      image: i.image,
      width: i.width,
      height: i.height,
      jpeg: '',
      ...(i.timestamps ? { timestamps: i.timestamps } : {}),
      ...(i.file ? { file: i.file } : {}),
    });
  }
  return f;
}

/**
 * The media a run looked at: 'video' when its images carry video times, 'image' for still images, 'text'
 * for none; `count` is frames for a video, images otherwise.
 * @param {MediaFacts} f
 * @returns {{ kind: 'image' | 'video' | 'text', count: number, text: string }}
 */
export function mediaOf(f) {
  const plural = (/** @type {number} */ n, /** @type {string} */ w) => `${n} ${w}${n === 1 ? '' : 's'}`;
  if (f.frames > 0) return { kind: 'video', count: f.frames, text: plural(f.frames, 'frame') };
  if (f.images > 0) return { kind: 'image', count: f.images, text: f.images === 1 ? 'image' : plural(f.images, 'image') };
  return { kind: 'text', count: 0, text: 'text only' };
}

/** The last part of a path. @param {string | null | undefined} dir */
export const baseName = (dir) => (dir ?? '').split(/[\\/]/).filter(Boolean).pop() ?? '';

/** A question cut to `n` characters at a word boundary. @param {string} q */
export function shortQuestion(q, n = 48) {
  const one = q.replace(/\s+/g, ' ').trim();
  if (one.length <= n) return one;
  const cut = one.slice(0, n);
  return `${cut.slice(0, cut.lastIndexOf(' ') > n / 2 ? cut.lastIndexOf(' ') : n)}…`;
}

/**
 * @typedef {object} RunIdentity
 * @property {string} run
 * @property {string | null} name  the name a person gave the run (the server keeps it), else null
 * @property {string} policy  the policy's label with its budget
 * @property {boolean} dense
 * @property {string} model  the model directory's base name
 * @property {{ kind: 'image' | 'video' | 'text', count: number, text: string }} media
 * @property {string[]} files
 * @property {string | null} question
 * @property {string} workload  key: runs with the same key are comparable in a sweep
 * @property {string} workloadLabel  the workload as people read it: "8 frames · clip.mp4 · sparsevila-demo"
 * @property {string} label  one line that tells the run apart: name or policy, media, files, question, model, id
 */

/**
 * A run's identity from its start (run model's, or the server's summary: same policy, label and model) and
 * its media facts.
 * @param {string} run
 * @param {{ policy?: PolicyValue | null, label?: string | null } | null | undefined} start
 * @param {string | null | undefined} modelDir
 * @param {MediaFacts} facts
 * @param {string | null} [name]
 * @returns {RunIdentity}
 */
export function runIdentity(run, start, modelDir, facts, name = null) {
  const policy = policyLabel(start);
  const model = baseName(modelDir) || 'model?';
  const media = mediaOf(facts);
  const files = facts.files.length > 2 ? `${facts.files.slice(0, 2).join(', ')} +${facts.files.length - 2}` : facts.files.join(', ');
  const workloadLabel = [media.text, files, model].filter(Boolean).join(' · ');
  const question = facts.question == null ? '' : `“${shortQuestion(facts.question)}”`;
  return {
    run,
    name: name || null,
    policy,
    dense: start?.policy?.method === 'dense',
    model,
    media,
    files: facts.files,
    question: facts.question,
    workload: JSON.stringify([model, media.kind, media.count, facts.files]),
    workloadLabel,
    label: [name || policy, media.text, files, question, model, run.slice(0, 6)].filter(Boolean).join(' · '),
  };
}

/**
 * Whether a run matches a filter: every word of `text` appears in its label, policy, name, question, files
 * or id (case-insensitive), and its media kind is one of `kinds` (empty: any).
 * @param {RunIdentity} id
 * @param {string} text
 * @param {ReadonlySet<string>} [kinds]
 */
export function matchesFilter(id, text, kinds = new Set()) {
  if (kinds.size && !kinds.has(id.media.kind)) return false;
  const hay = [id.label, id.policy, id.name ?? '', id.question ?? '', ...id.files, id.run, id.model].join('\n').toLowerCase();
  return text
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => hay.includes(w));
}
