/**
 * What the page prints for a turn, an image or a video frame. The trace's `turn` and `image` are indices from
 * 0; the chat template ("Frame 1: <image>"), the user's questions and the CLI count from 1, so every label a
 * person reads counts from 1 too, with a video frame's time beside it where the trace has it.
 */

/** @typedef {import('./run-model.js').RunModel} RunModel */

/** "turn 1" for turn index 0. @param {number} turn */
export const turnLabel = (turn) => `turn ${turn + 1}`;

/** "Turn 1" for turn index 0, to head a turn. @param {number} turn */
export const turnTitle = (turn) => `Turn ${turn + 1}`;

/** A video time in seconds, as "1.5 s" or "1:02.5". @param {number} s */
export function timeLabel(s) {
  const fixed = (/** @type {number} */ x) => (Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 10 ? 2 : 1).replace(/0$/, ''));
  if (s < 60) return `${fixed(s)} s`;
  const sec = s % 60;
  return `${Math.floor(s / 60)}:${sec < 10 ? '0' : ''}${fixed(sec)}`;
}

/**
 * The video times an image shows, as text: "1.5 s" for one frame, "0–7.5 s" for a video encoded as one media;
 * '' for a still image or a trace without times.
 * @param {RunModel} m
 * @param {number} image
 */
export function imageTime(m, image) {
  const ts = m.images.get(image)?.timestamps;
  if (!ts?.length) return '';
  return ts.length === 1 ? timeLabel(ts[0]) : `${timeLabel(ts[0]).replace(/ s$/, '')}–${timeLabel(ts[ts.length - 1])}`;
}

/**
 * Whether the run's images are frames of a video: the trace says so with times, or (traces without them)
 * there are more than three, as a video sampled to frames gives.
 * @param {RunModel} m
 */
function isVideo(m) {
  for (const info of m.images.values()) if (info.timestamps?.length) return true;
  return m.images.size > 3;
}

/** "frame 1" or "image 1" for image index 0 ("video 1" for a video encoded as one media). @param {RunModel} m @param {number} image */
export function imageName(m, image) {
  if ((m.images.get(image)?.timestamps?.length ?? 0) > 1) return `video ${image + 1}`;
  return `${isVideo(m) ? 'frame' : 'image'} ${image + 1}`;
}

/** "frame 1 · 0 s" (the time where the trace has it), else "image 1". @param {RunModel} m @param {number} image */
export function imageLabel(m, image) {
  const t = imageTime(m, image);
  return t ? `${imageName(m, image)} · ${t}` : imageName(m, image);
}

/** What the page calls a salience event's source. @param {string | undefined} source */
export function sourceLabel(source) {
  return source === 'cls'
    ? 'CLS attention'
    : source === 'received'
      ? 'attention received'
      : source === 'summary'
        ? 'summary-token attention'
        : 'tower attention';
}
