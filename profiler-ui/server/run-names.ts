/**
 * The names people give runs ("baseline, 8 frames", "tuner trial 12"), beside the runs: one small JSON
 * file in the data dir, `names.json` (run id → name), written whole on each change through a temporary file
 * and a rename, so a crash leaves the old file or the new one. A trace file stays what the engine wrote.
 * Without a data dir, names live in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../src/errors.js';

/** Longest accepted name, in characters: a run list entry, not a note. */
export const MAX_RUN_NAME = 120;

export const NAMES_FILE = 'names.json';

/**
 * A request body's name, checked: a string of at most MAX_RUN_NAME characters without control characters,
 * trimmed; '' or null clears the name. Throws InputError (the server answers 400) naming what is wrong.
 */
export function parseRunName(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('name' in body)) {
    throw new InputError('OPTION_INVALID', 'PUT /api/runs/:run/name expects a JSON body {"name": "…"} (null or "" clears the name)', { subject: 'name' });
  }
  const name = (body as { name: unknown }).name;
  if (name === null) return null;
  if (typeof name !== 'string') throw new InputError('OPTION_INVALID', `'name' must be a string or null, got ${typeof name}`, { subject: 'name' });
  const trimmed = name.trim();
  if (trimmed.length > MAX_RUN_NAME) {
    throw new InputError('OPTION_INVALID', `'name' is ${trimmed.length} characters; at most ${MAX_RUN_NAME}`, { subject: 'name' });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(trimmed))
    throw new InputError('OPTION_INVALID', `'name' must not hold control characters (newlines, tabs)`, { subject: 'name' });
  return trimmed || null;
}

export class RunNames {
  private readonly names = new Map<string, string>();
  private readonly file: string | undefined;

  constructor(
    dataDir: string | undefined,
    private readonly log: (message: string) => void,
  ) {
    this.file = dataDir === undefined ? undefined : path.join(dataDir, NAMES_FILE);
    if (!this.file || !fs.existsSync(this.file)) return;
    try {
      const json: unknown = JSON.parse(fs.readFileSync(this.file, 'utf8'));
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object of run id → name');
      for (const [run, name] of Object.entries(json)) {
        const checked = parseRunName({ name });
        if (checked) this.names.set(run, checked);
      }
    } catch (err) {
      // A hand-edited or torn file: the runs are still there, only their names are lost; say so.
      this.log(`profiler: ignoring ${this.file}: ${(err as Error).message}`);
    }
  }

  get(run: string): string | null {
    return this.names.get(run) ?? null;
  }

  /** Sets (or, with null, clears) a run's name and saves the file. */
  set(run: string, name: string | null): void {
    if (name) this.names.set(run, name);
    else this.names.delete(run);
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.names), null, 1) + '\n');
      fs.renameSync(tmp, this.file);
    } catch (err) {
      this.log(`profiler: could not save run names to ${this.file}: ${(err as Error).message}`);
    }
  }
}
