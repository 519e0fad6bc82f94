/** One formatter: every source file is as prettier writes it (`npm run format` fixes, `format:check` checks). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';

describe('formatting', () => {
  it('every TypeScript, JavaScript, CSS and HTML source is prettier-formatted', () => {
    const run = spawnSync('npm', ['run', '--silent', 'format:check'], { cwd: REPO_ROOT, encoding: 'utf8' });
    // prettier names each file it would change on stderr ("[warn] path").
    const unformatted = `${run.stdout}${run.stderr}`.split('\n').filter((l) => l.startsWith('[warn] ') && !l.includes('Code style issues'));
    expect(unformatted, 'run `npm run format`').toEqual([]);
    expect(run.status).toBe(0);
  });
});
