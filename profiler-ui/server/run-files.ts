/**
 * The run store's files in its data dir: one JSON-lines file per run, named from the run id, and the disk
 * bound — at most `maxRuns` files and `maxBytes` bytes, the oldest (by last write) removed first — since
 * producers and uploads choose run ids freely and a long-lived server would otherwise fill the disk.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface RunFile {
  file: string;
  mtime: number;
  size: number;
  /** False for a directory (or anything else) whose name ends in .jsonl: never loaded or removed. */
  isFile: boolean;
}

/**
 * A safe file name for a run id (ids come from clients): plain ids stay readable; anything else is
 * replaced, with a hash of the id so distinct ids never share a file.
 */
export function runFileName(id: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(id)) return `${id}.jsonl`;
  const safe = id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60);
  const hash = crypto.createHash('sha256').update(id).digest('hex').slice(0, 12);
  return `${safe}-${hash}.jsonl`;
}

/** The data dir's run files, oldest first (what cannot be stat'ed is left out: it may be gone already). */
export function listRunFiles(dataDir: string, log: (message: string) => void): RunFile[] {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir).filter((f) => f.endsWith('.jsonl'));
  } catch (err) {
    log(`profiler: cannot list ${dataDir}: ${(err as Error).message}`);
    return [];
  }
  const out: RunFile[] = [];
  for (const name of names) {
    const file = path.join(dataDir, name);
    try {
      const stat = fs.statSync(file);
      out.push({ file, mtime: stat.mtimeMs, size: stat.isFile() ? stat.size : 0, isFile: stat.isFile() });
    } catch {
      // removed in between
    }
  }
  return out.sort((a, b) => a.mtime - b.mtime);
}

/** Remove the oldest run files past `maxRuns` or `maxBytes`, except those named in `keep` (file names). */
export function pruneRunFiles(dataDir: string, bounds: { maxRuns: number; maxBytes: number }, keep: ReadonlySet<string>, log: (message: string) => void): void {
  const files = listRunFiles(dataDir, log).filter((f) => f.isFile);
  let count = files.length;
  let bytes = files.reduce((sum, f) => sum + f.size, 0);
  for (const f of files) {
    if (count <= bounds.maxRuns && bytes <= bounds.maxBytes) break;
    if (keep.has(path.basename(f.file))) continue;
    try {
      fs.rmSync(f.file, { force: true });
      count--;
      bytes -= f.size;
    } catch (err) {
      log(`profiler: cannot remove ${f.file}: ${(err as Error).message}`);
    }
  }
}
