/**
 * One temporary folder per test run, under which every test's temporary folders go, removed when the run
 * ends. Tests cannot clean up after themselves on exit: vitest stops its workers without an 'exit' event.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsevila-test-'));
  process.env.SPARSEVILA_TEST_TMP = root;
  return () => fs.rmSync(root, { recursive: true, force: true });
}
