/**
 * Retrieval table: one row per LLM layer with the turn's retrieval set (which retained visual tokens that
 * layer's decode steps attend) and the top question→visual attention scores. Pure: data in, HTML out.
 */
import { attrs, esc } from './markup.js';

export interface TokenRef {
  image: number;
  token: number;
}

export interface RetrievalLayerRow {
  layer: number;
  /** Retained visual tokens the layer chose from. */
  candidates: number;
  /** The retrieval set, in token order; `score` when known. */
  retrieved: (TokenRef & { score?: number })[];
  /** The highest scores, best first; the token when known. */
  top: (Partial<TokenRef> & { score: number })[];
}

export interface RetrievalTableData {
  title?: string;
  layers: RetrievalLayerRow[];
}

/** "image:token" as a person reads it: the image counted from 1, as the prompt counts frames; the token an index within it. */
export const tokenLabel = (t: Partial<TokenRef>): string => (t.image === undefined || t.token === undefined ? '?' : `${t.image + 1}:${t.token}`);

const STYLE = 'border-collapse:collapse;font:12px system-ui,sans-serif;margin:4px 0';
const CELL = 'border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top';

export function renderRetrievalHtml(data: RetrievalTableData): string {
  const head = ['layer', 'retrieved', 'retrieval set (image:token, images from 1)', 'top scores']
    .map((h) => `<th style="${CELL};background:#f4f4f4">${esc(h)}</th>`)
    .join('');
  const rows = data.layers
    .map((l) => {
      const set = l.retrieved
        .map(
          (t) => `<code${attrs({ class: 'token', title: t.score === undefined ? undefined : `score ${t.score.toPrecision(4)}` })}>${esc(tokenLabel(t))}</code>`,
        )
        .join(' ');
      const top = l.top.map((t) => `${t.image === undefined ? '' : `${esc(tokenLabel(t))} `}${esc(t.score.toPrecision(3))}`).join(', ');
      return (
        `<tr${attrs({ class: 'retrieval-layer', 'data-layer': l.layer, 'data-retrieved': l.retrieved.length })}>` +
        `<td style="${CELL}">${l.layer}</td><td style="${CELL}">${l.retrieved.length}/${l.candidates}</td>` +
        `<td style="${CELL}">${set}</td><td style="${CELL}">${top}</td></tr>`
      );
    })
    .join('');
  const caption = data.title ? `<caption style="text-align:left;font-weight:600;padding:2px 0">${esc(data.title)}</caption>` : '';
  return `<table class="retrieval" style="${STYLE}">${caption}<thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}
