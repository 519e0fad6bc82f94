/**
 * Latency summary: per answer, time to first token, prefill, decode throughput and end to end — stated
 * separately, since each stage's speed-up differs (prefill is compute-bound on visual tokens, decode
 * memory-bound on the cache) — and a stacked bar of the turn's stages. Pure: data in,
 * HTML (with an inline SVG per bar) out.
 */
import type { Timings } from '../../src/session/types.js';
import { attrs, esc, ms, num } from './markup.js';

/** The engine's per-turn timings (seconds). */
export type LatencyTimings = Timings;

export interface LatencyRow {
  label: string;
  timings: LatencyTimings;
}

/** Turn stages in order, with their colours. */
export const STAGES = [
  { key: 'imageSeconds', name: 'images', colour: '#b0bec5' },
  { key: 'visionSeconds', name: 'vision', colour: '#7e57c2' },
  { key: 'prefillSeconds', name: 'prefill', colour: '#ef6c00' },
  { key: 'decodeSeconds', name: 'decode', colour: '#1e88e5' },
] as const;

const CELL = 'border:1px solid #ddd;padding:3px 6px;text-align:right';

export function renderLatencyHtml(rows: readonly LatencyRow[], options: { title?: string; barWidth?: number } = {}): string {
  const barWidth = options.barWidth ?? 220;
  const longest = Math.max(1e-9, ...rows.map((r) => STAGES.reduce((s, st) => s + r.timings[st.key], 0)));
  const headers = ['', 'prompt tok', 'cached tok', 'generated', 'vision ms', 'prefill ms', 'TTFT ms', 'decode tok/s', 'total ms', 'stages'];
  const head = headers.map((h) => `<th style="${CELL};background:#f4f4f4">${esc(h)}</th>`).join('');
  const body = rows
    .map((r) => {
      const t = r.timings;
      const cells = [
        t.promptTokens,
        t.cachedTokens,
        t.generatedTokens,
        ms(t.visionSeconds),
        ms(t.prefillSeconds),
        ms(t.firstTokenSeconds),
        t.decodeTokensPerSecond.toFixed(0),
        ms(t.totalSeconds),
      ].map((v) => `<td style="${CELL}">${esc(v)}</td>`);
      return (
        `<tr class="latency-row"><th style="${CELL};text-align:left">${esc(r.label)}</th>${cells.join('')}` +
        `<td style="${CELL};text-align:left">${stageBar(t, (barWidth * STAGES.reduce((s, st) => s + t[st.key], 0)) / longest)}</td></tr>`
      );
    })
    .join('');
  const legend = STAGES.map((s) => `<span style="display:inline-block;width:9px;height:9px;background:${s.colour};margin:0 3px 0 10px"></span>${s.name}`).join(
    '',
  );
  const caption = options.title ? `<caption style="text-align:left;font-weight:600;padding:2px 0">${esc(options.title)}</caption>` : '';
  return (
    `<div class="latency"><table style="border-collapse:collapse;font:12px system-ui,sans-serif">${caption}<thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>` +
    `<div style="font:11px system-ui,sans-serif;color:#555;margin-top:3px">${legend} · TTFT = start of the turn to the first token; decode tok/s excludes prefill; total includes a fidelity twin's work when the chat has one</div></div>`
  );
}

function stageBar(t: LatencyTimings, width: number): string {
  const total = STAGES.reduce((s, st) => s + t[st.key], 0);
  let x = 0;
  let rects = '';
  for (const s of STAGES) {
    const w = total > 0 ? (width * t[s.key]) / total : 0;
    rects += `<rect${attrs({ class: `stage ${s.name}`, x, y: 0, width: w, height: 12, fill: s.colour })}><title>${esc(`${s.name} ${ms(t[s.key])} ms`)}</title></rect>`;
    x += w;
  }
  return `<svg${attrs({ xmlns: 'http://www.w3.org/2000/svg', width: num(Math.max(1, width)), height: 12 })}>${rects}</svg>`;
}
