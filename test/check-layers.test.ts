/**
 * The layering check (scripts/check-layers.mjs): the repository passes it, and a copy of the repository's
 * sources with one planted upward import, file-level cycle or folder-level cycle fails it, naming the file
 * and line. It reads sources only: no build.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALLOWED, ROOTS, importsOf } from '../scripts/check-layers.mjs';
import { tempDir } from './helpers/temp.js';

const REPO = path.resolve(import.meta.dirname, '..');
const SCRIPT = path.join(REPO, 'scripts', 'check-layers.mjs');

function check(root?: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...(root ? ['--root', root] : [])], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

/** A copy of the checked trees' .ts files (not the models' weights beside them). */
function copyOfSources(): string {
  const root = tempDir('layers');
  for (const tree of ROOTS) {
    fs.cpSync(path.join(REPO, tree), path.join(root, tree), {
      recursive: true,
      filter: (from) => fs.statSync(from).isDirectory() || from.endsWith('.ts'),
    });
  }
  return root;
}

/** Appends `line` to `file` of the copy and returns the line number it landed on. */
function plant(root: string, file: string, line: string): number {
  const at = path.join(root, file);
  const text = fs.readFileSync(at, 'utf8').replace(/\n*$/, '\n');
  fs.writeFileSync(at, `${text}${line}\n`);
  return text.split('\n').length;
}

describe('check-layers', () => {
  it('passes on the repository: imports run one way, no cycles', () => {
    const r = check();
    expect(r.output).toContain('imports run one way');
    expect(r.status).toBe(0);
  });

  it('fails on an upward import, naming the file and line', () => {
    const root = copyOfSources();
    const line = plant(root, 'src/checkpoint/spec.ts', "import type { Chat } from '../session/chat.js';");
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.output).toContain(`src/checkpoint/spec.ts:${line}: upward import: src/checkpoint (rank 1) imports src/session/chat.ts`);
  });

  it('fails on a file-level cycle inside one folder, naming both files', () => {
    const root = copyOfSources();
    // checkpoint.ts imports spec.ts; spec.ts importing it back closes a cycle.
    const line = plant(root, 'src/checkpoint/spec.ts', "import type { Checkpoint } from './checkpoint.js';");
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.output).toMatch(/file-level import cycle among [^\n]*src\/checkpoint\/checkpoint\.ts, [^\n]*src\/checkpoint\/spec\.ts:/);
    expect(r.output).toContain(`src/checkpoint/spec.ts:${line} imports src/checkpoint/checkpoint.ts`);
    expect(r.output).not.toContain('upward import');
  });

  it('fails on a folder-level cycle between peers of one rank, though no files form a cycle', () => {
    const root = copyOfSources();
    const textLine = plant(root, 'src/text/chat.ts', "import type { RgbImage } from '../media/rgb-image.js';");
    plant(root, 'src/media/video-tool.ts', "import '../text/stream.js';");
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.output).toContain('folder-level import cycle among src/media, src/text');
    expect(r.output).toContain(`src/text/chat.ts:${textLine} imports src/media/rgb-image.ts`);
    expect(r.output).not.toContain('file-level');
  });

  it.skipIf(ALLOWED.length === 0)('fails on an allow-list entry that no import matches any more', () => {
    const root = copyOfSources();
    const [from, to] = ALLOWED[0]!.split(' → ') as [string, string];
    const specifier = `'${path.posix
      .relative(path.posix.dirname(from), to)
      .replace(/^(?!\.)/, './')
      .replace(/\.ts$/, '.js')}'`;
    const file = path.join(root, from);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain(specifier);
    fs.writeFileSync(file, text.replaceAll(specifier, "'./gone.js'"));
    const r = check(root);
    expect(r.status).toBe(1);
    expect(r.output).toContain(`ALLOWED lists ${ALLOWED[0]}, which no file imports any more`);
  });

  it('reads every form of relative import, type-only ones included, and skips commented-out ones', () => {
    const root = tempDir('layers-forms');
    fs.mkdirSync(path.join(root, 'src', 'a'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'src', 'a', 'x.ts'),
      [
        "import fs from 'node:fs';", // 1: not relative
        'import { a,', // 2: multi-line
        '  b } from "./b.js";',
        "import type { C } from '../c.js';", // 4
        "export * as d from './d.js';", // 5
        "export type { E } from './e.js';", // 6
        "import './f.js';", // 7
        "const g = await import('./g.js');", // 8
        "// import { h } from './h.js';",
        "/* export { i } from './i.js'; */",
        'const s = \'import j from "./j.js"\';',
      ].join('\n'),
    );
    expect(importsOf(root, 'src/a/x.ts')).toEqual([
      { to: 'src/a/b.ts', line: 2 },
      { to: 'src/c.ts', line: 4 },
      { to: 'src/a/d.ts', line: 5 },
      { to: 'src/a/e.ts', line: 6 },
      { to: 'src/a/f.ts', line: 7 },
      { to: 'src/a/g.ts', line: 8 },
    ]);
  });
});
