/**
 * A tune's report, written beside its trial log: policy.json (the choice, a plain policy value), report.json
 * (everything: every candidate with its measures, the front, the choice, the held-out result per turn),
 * report.md (the same as tables) and pareto.svg (cost ratio against fidelity, the front, the choice ringed).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Measures } from './measures.js';
import type { TuneResult } from './result.js';

export function writeReport(dir: string, r: TuneResult): void {
  fs.writeFileSync(path.join(dir, 'policy.json'), JSON.stringify(r.policy, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(r, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'report.md'), reportMarkdown(r));
  fs.writeFileSync(path.join(dir, 'pareto.svg'), paretoSvg(r));
}

const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const num = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : '—');

function fidelityCells(m: Measures): string {
  return `${pct(m.agreement)} [${pct(m.agreementLower)}, ${pct(m.agreementUpper)}] | ${num(m.meanKl)} | ${pct(m.accuracy)}`;
}

export function reportMarkdown(r: TuneResult): string {
  const h = r.heldOut;
  const lines = [
    `# Tune: ${r.workload}`,
    '',
    `Method ${r.method}, objective **${r.objective}**, floor **${r.floor}**; ${r.split.tuning.length} tuning and ${r.split.heldOut.length} held-out conversations; ` +
      `${r.trials.run + r.trials.resumed} trials (${r.trials.resumed} read from the log).`,
    '',
    `**Choice: ${r.label}** — ${r.confirmed ? 'its 95% lower bound meets the floor on the tuning conversations' : 'no candidate was confirmed to meet the floor; this is the best estimate (or dense)'}.`,
    '',
    '```json',
    JSON.stringify(r.policy),
    '```',
    '',
    '## Held out',
    '',
    `| run | token agreement [95% bounds] | mean KL | accuracy | ${r.objective} cost | cost ratio |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
    `| ${r.label} | ${fidelityCells(h.choice)} | ${num(h.choice.cost[r.objective])} | ${h.costRatio.toFixed(3)} |`,
    `| dense | — | — | ${pct(h.dense.accuracy)} | ${num(h.dense.cost[r.objective])} | 1 |`,
    '',
    `Floor ${r.floor} on held-out conversations: **${h.meetsFloor ? 'met' : 'not met'}**.`,
    '',
    '| turn | turns | token agreement | score |',
    '| ---: | ---: | ---: | ---: |',
    ...h.perTurn.map((t) => `| ${t.turn} | ${t.n} | ${pct(t.agreement)} | ${pct(t.score)} |`),
    '',
    '## Every candidate (tuning conversations)',
    '',
    `Bounds are one-sided 95%; the finalists' (${r.candidates.reduce((a, c) => Math.max(a, c.rungs), 0)} rungs) are shared by the ${r.candidates.length} candidates compared ` +
      `(Bonferroni, z = ${r.confirmZ.toFixed(2)}), as the choice is made on them.`,
    '',
    `| # | policy | rungs | conversations | token agreement [95% bounds] | mean KL | accuracy | cost ratio | verdict | front |`,
    '| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |',
    ...r.candidates.map(
      (c) =>
        `| ${c.index} | ${c.label}${c.policy === r.policy || JSON.stringify(c.policy) === JSON.stringify(r.policy) ? ' **(choice)**' : ''} | ${c.rungs} | ${c.measures.conversations} | ${fidelityCells(c.measures)} | ` +
        `${c.costRatio.toFixed(3)} | ${c.state}${c.stopped ? ` (stopped ${c.stopped})` : ''} | ${c.pareto ? '●' : ''} |`,
    ),
    '',
    '![cost against fidelity](pareto.svg)',
    '',
  ];
  return lines.join('\n');
}

/** Cost ratio (x) against the floor's fidelity metric (y) for every candidate; the front dashed, the choice ringed. */
export function paretoSvg(r: TuneResult): string {
  const W = 640;
  const H = 400;
  const M = { l: 60, r: 20, t: 36, b: 46 };
  const metric = r.floor.split('=')[0];
  const yOf = (m: Measures) => (metric === 'kl' ? m.meanKl : metric === 'accuracy' ? (m.accuracy ?? NaN) : m.agreement);
  const pts = r.candidates.map((c) => ({ c, x: c.costRatio, y: yOf(c.measures) })).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xs = [1, ...pts.map((p) => p.x)];
  const ys = pts.map((p) => p.y);
  const [x0, x1] = [Math.min(0, ...xs), Math.max(...xs) * 1.05];
  const [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  const pad = (y1 - y0) * 0.1 || 0.05;
  const X = (x: number) => M.l + ((x - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
  const Y = (y: number) => H - M.b - ((y - (y0 - pad)) / (y1 - y0 + 2 * pad)) * (H - M.t - M.b);
  const front = pts.filter((p) => p.c.pareto).sort((a, b) => a.x - b.x);
  const chosen = JSON.stringify(r.policy);
  const dots = pts
    .map((p) => {
      const isChoice = JSON.stringify(p.c.policy) === chosen;
      const cls = ['tune-point', p.c.pareto ? 'pareto' : '', isChoice ? 'choice' : ''].filter(Boolean).join(' ');
      return (
        `<circle class="${cls}" data-label="${esc(p.c.label)}" cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="${isChoice ? 7 : 4.5}" ` +
        `fill="${p.c.pareto ? '#db2777' : '#94a3b8'}" stroke="${isChoice ? '#0f172a' : 'white'}" stroke-width="${isChoice ? 2.5 : 1}"><title>${esc(p.c.label)}: cost ×${p.x.toFixed(3)}, ${metric} ${p.y.toPrecision(3)}</title></circle>`
      );
    })
    .join('');
  // The front as a staircase: between two front points, no candidate is known to do better than the cheaper one.
  const stairs = front.flatMap((p, i) =>
    i === 0
      ? [[p.x, p.y]]
      : [
          [p.x, front[i - 1]!.y],
          [p.x, p.y],
        ],
  );
  const line =
    stairs.length > 1
      ? `<polyline class="front" fill="none" stroke="#db2777" stroke-dasharray="4 3" points="${stairs.map(([x, y]) => `${X(x!).toFixed(1)},${Y(y!).toFixed(1)}`).join(' ')}"/>`
      : '';
  const floorValue = Number(r.floor.split('=')[1]);
  const floorLine =
    metric !== 'accuracy' && floorValue >= y0 - pad && floorValue <= y1 + pad
      ? `<line class="floor" x1="${M.l}" x2="${W - M.r}" y1="${Y(floorValue)}" y2="${Y(floorValue)}" stroke="#0f766e" stroke-dasharray="6 3"/><text x="${W - M.r - 4}" y="${Y(floorValue) - 4}" font-size="10" text-anchor="end" fill="#0f766e">floor ${esc(r.floor)}</text>`
      : '';
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => y0 - pad + f * (y1 - y0 + 2 * pad))
    .map((v) => `<text x="${M.l - 6}" y="${Y(v) + 3}" font-size="10" text-anchor="end">${v.toPrecision(3)}</text>`)
    .join('');
  const xticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => x0 + f * (x1 - x0))
    .map((v) => `<text x="${X(v)}" y="${H - M.b + 14}" font-size="10" text-anchor="middle">${v.toFixed(2)}</text>`)
    .join('');
  const denseLine = `<line x1="${X(1)}" x2="${X(1)}" y1="${M.t}" y2="${H - M.b}" stroke="#64748b" stroke-dasharray="2 3"/><text x="${X(1) - 4}" y="${M.t + 10}" font-size="10" text-anchor="end">dense</text>`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>` +
    `<text x="${M.l}" y="20" font-size="13">${esc(`${r.workload}: ${r.objective} cost ratio vs ${metric} (choice ringed, front dashed)`)}</text>` +
    `<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="#334155"/><line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="#334155"/>` +
    `${ticks}${xticks}${denseLine}${floorLine}${line}${dots}` +
    `<text x="${(M.l + W - M.r) / 2}" y="${H - 8}" font-size="11" text-anchor="middle">${esc(`${r.objective} cost / dense`)}</text>` +
    `<text x="14" y="${(M.t + H - M.b) / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${(M.t + H - M.b) / 2})">${esc(metric === 'kl' ? 'mean KL vs dense' : metric === 'accuracy' ? 'accuracy' : 'token agreement with dense')}</text></svg>\n`
  );
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
