/**
 * The profiler page is plain JavaScript typed by JSDoc against the engine's trace schema
 * (profiler-ui/web/tsconfig.json): this runs that type-check, so a schema change the page does not follow
 * — a new event type or stage, a renamed field — fails the tests, not a browser.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

describe('profiler page types', () => {
  it('type-checks strict against the trace schema (checkJs)', async () => {
    const run = promisify(execFile)(process.execPath, [tsc, '-p', path.join(REPO_ROOT, 'profiler-ui/web/tsconfig.json')], { cwd: REPO_ROOT });
    const result = await run.then(
      () => '',
      (err: { stdout?: string; stderr?: string; message: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}` || err.message,
    );
    expect(result).toBe('');
  }, 120_000);
});
