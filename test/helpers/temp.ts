/** Temporary folders for tests. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A fresh temporary folder, inside the test run's own (test/global-setup.ts), which is removed when the run
 * ends; outside vitest, inside the system's.
 */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(process.env.SPARSEVILA_TEST_TMP ?? os.tmpdir(), `sparsevila-${prefix}-`));
}
