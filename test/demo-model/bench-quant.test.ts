/**
 * `npm run bench:quant -- --quick` on the shipped demo model: fp32, int4 round-to-nearest and AWQ side by side.
 * fp32 is its own reference (no error, every answer its own); the int4 rows are compared on turns whose history
 * matches fp32's, keep most of fp32's answers, and their logit error is that of 4-bit weights, not of a broken
 * packing (which moves logits by whole units and flips most answers).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/checkpoint-writer.js';
import { tempDir } from '../helpers/engine.js';

interface Row {
  precision: 'fp32' | 'int4' | 'awq';
  accuracy: number;
  answerAgreement: number;
  maxAbsLogitError: number;
  meanAbsLogitError: number;
  turnsCompared: number;
  loadSeconds: number;
  medianFirstTurnPrefillSeconds: number;
  medianDecodeTokensPerSecond: number;
}

describe('bench:quant --quick', () => {
  it('compares fp32, int4 and AWQ on accuracy, logit error and speed', async () => {
    const out = tempDir('bench-quant');
    const { stdout } = await promisify(execFile)('node', ['scripts/bench-quant.mjs', '--quick', '--out', out, '--threads', '1'], {
      cwd: REPO_ROOT,
      maxBuffer: 1 << 24,
    });
    const report = JSON.parse(fs.readFileSync(path.join(out, 'quant.json'), 'utf8')) as { conversations: number; turns: number; results: Row[] };
    expect(report.results.map((r) => r.precision)).toEqual(['fp32', 'int4', 'awq']);
    const [fp32, ...int4] = report.results as [Row, Row, Row];
    expect(fp32).toMatchObject({ answerAgreement: 1, maxAbsLogitError: 0, turnsCompared: report.turns });
    for (const r of int4) {
      expect(r.turnsCompared, r.precision).toBeGreaterThan(report.conversations);
      expect(r.answerAgreement, r.precision).toBeGreaterThanOrEqual(0.75);
      expect(r.meanAbsLogitError, r.precision).toBeGreaterThan(0);
      expect(r.meanAbsLogitError, r.precision).toBeLessThan(0.5);
    }
    for (const r of report.results) {
      expect(r.accuracy).toBeGreaterThan(0);
      expect(r.medianFirstTurnPrefillSeconds).toBeGreaterThan(0);
      expect(r.medianDecodeTokensPerSecond).toBeGreaterThan(0);
    }
    const md = fs.readFileSync(path.join(out, 'quant.md'), 'utf8');
    expect(stdout).toBe(md);
    expect(md.split('\n').filter((l) => l.startsWith('|'))).toHaveLength(2 + 3);
  }, 600_000);
});
