/**
 * `npm run bench:fidelity -- --quick` on the shipped demo model: the report's structure (per method, per turn,
 * budgets, recall; markdown table, JSON, plot) and a floor on dense accuracy over its held-out sample.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/checkpoint-writer.js';
import { tempDir } from '../helpers/engine.js';

/** Dense exact-match accuracy the quick sample must reach (the full held-out set's is in training.json). */
const DENSE_FLOOR = 0.7;
/** Grid cells the dense model's captions describe right on the quick run's images. */
const CAPTION_FLOOR = 0.7;

interface Row {
  name: string;
  policy: { method: string };
  budget: number;
  accuracy: number;
  perTurn: ({ accuracy: number; n: number } | null)[];
  perKind: Record<string, { accuracy: number; n: number }>;
  retrievalRecall: number | null;
  recallAnswers: number;
  caption: { images: number; cellAccuracy: number; retrievalRecall: number | null };
}

describe('bench:fidelity --quick', () => {
  it('writes a per-method, per-turn accuracy table, JSON and plot, with dense above the floor', async () => {
    const out = tempDir('bench-fidelity');
    const { stdout } = await promisify(execFile)('node', ['scripts/bench-fidelity.mjs', '--quick', '--out', out, '--threads', '1'], {
      cwd: REPO_ROOT,
      env: { ...process.env, SPARSEVILA_CACHE: tempDir('bench-fidelity-graphs') },
      maxBuffer: 1 << 24,
    });
    const report = JSON.parse(fs.readFileSync(path.join(out, 'fidelity.json'), 'utf8')) as { conversations: number; turns: number; results: Row[] };
    expect(report.conversations).toBeGreaterThanOrEqual(24);
    const methods = report.results.map((r) => r.policy.method);
    expect(methods).toEqual(expect.arrayContaining(['dense', 'sparsevila', 'fastv', 'divprune']));
    for (const r of report.results) {
      expect(r.perTurn).toHaveLength(5);
      const n = r.perTurn.reduce((s, p) => s + (p?.n ?? 0), 0);
      expect(n, r.name).toBe(report.turns);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
      expect(r.budget).toBeGreaterThan(0);
      expect(r.budget).toBeLessThanOrEqual(1);
      // Recall is scored on the decode steps after an answer's first token (the first comes from the prefill): over
      // the questions' answers, null when none of the sample ran one (most answers are one token); over the
      // captions (tens of tokens each), always there for a method that retrieves, and for no other.
      expect(r.retrievalRecall === null, r.name).toBe(r.recallAnswers === 0);
      if (r.policy.method === 'sparsevila') {
        for (const recall of [r.retrievalRecall, r.caption.retrievalRecall].filter((x) => x !== null)) {
          expect(recall, r.name).toBeGreaterThan(0);
          expect(recall, r.name).toBeLessThanOrEqual(1);
        }
        expect(r.caption.retrievalRecall, r.name).not.toBeNull();
      } else {
        expect(r.recallAnswers, r.name).toBe(0);
        expect(r.caption.retrievalRecall, r.name).toBeNull();
      }
      expect(r.caption.images, r.name).toBeGreaterThan(0);
      expect(r.caption.cellAccuracy, r.name).toBeGreaterThanOrEqual(0);
      expect(r.caption.cellAccuracy, r.name).toBeLessThanOrEqual(1);
    }
    const dense = report.results.find((r) => r.policy.method === 'dense')!;
    expect(dense.budget).toBe(1);
    expect(dense.accuracy).toBeGreaterThanOrEqual(DENSE_FLOOR);
    expect(dense.caption.cellAccuracy).toBeGreaterThanOrEqual(CAPTION_FLOOR);

    const md = fs.readFileSync(path.join(out, 'fidelity.md'), 'utf8');
    expect(stdout).toBe(md);
    const table = md.split('\n').filter((l) => l.startsWith('|'));
    expect(table[0]).toMatch(
      /^\| method \| visual tokens attended \| all turns \| turn 1 \| turn 2 \| turn 3 \| turn 4 \| turn 5 \| retrieval recall \| caption cells \| caption recall \|$/,
    );
    expect(table).toHaveLength(2 + report.results.length);
    for (const row of table.slice(2)) expect(row.split('|').length).toBe(table[0]!.split('|').length);
    expect(fs.readFileSync(path.join(out, 'fidelity.svg'), 'utf8')).toMatch(/^<svg[^>]*>.*<polyline/s);

    // The refresh table's bench-scale columns: each policy's decode on the bench model's shape over a video
    // workload's cache (the quick run: the 2-layer twin, 8 frames), dense 1×, every other policy's cost positive.
    const refresh = JSON.parse(fs.readFileSync(path.join(out, 'fidelity-refresh.json'), 'utf8')) as {
      results: { name: string; policy: { method: string } }[];
      workload: {
        workload: string;
        visualTokens: number;
        cachedTokens: number;
        denseMs: number;
        rows: { name: string; msPerToken: number; speedUp: number; attended: number }[];
      };
    };
    const w = refresh.workload;
    expect(w.workload).toBe('video 8 frames');
    expect(w.visualTokens).toBe(8 * 729);
    expect(w.cachedTokens).toBeGreaterThan(w.visualTokens);
    expect(w.rows.map((r) => r.name)).toEqual(refresh.results.map((r) => r.name));
    for (const [i, r] of w.rows.entries()) {
      expect(r.msPerToken, r.name).toBeGreaterThan(0);
      expect(r.speedUp, r.name).toBeCloseTo(w.denseMs / r.msPerToken, 6);
      if (refresh.results[i]!.policy.method === 'dense') expect(r.speedUp).toBe(1);
      else expect(r.attended, r.name).toBeLessThan(1);
    }
    const refreshTable = fs
      .readFileSync(path.join(out, 'fidelity-refresh.md'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('|'));
    expect(refreshTable[0]).toMatch(/\| video 8 frames: visual attended \| video 8 frames: decode ms\/token \| video 8 frames: speed-up vs dense \|$/);
    expect(refreshTable).toHaveLength(2 + w.rows.length);
    for (const row of refreshTable.slice(2)) expect(row.split('|').length).toBe(refreshTable[0]!.split('|').length);
  }, 600_000);
});
