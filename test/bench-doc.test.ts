/**
 * docs/benchmarks.md is written by the bench scripts (scripts/bench-doc.mjs): a run replaces its own section and
 * leaves every other byte of the file as it was, stamps the section with the command, date, machine, commit and
 * load, and a --quick run (CI) writes no doc unless pointed at one.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchDoc, BENCH_DOC, commandLine, docTarget, replaceSection } from '../scripts/bench-doc.mjs';
import { tempDir } from './helpers/temp.js';

/** A page with hand-written prose around two sections, a and b, holding the given text. */
const doc = (a: string, b: string) =>
  '# Benchmarks\n\nIntro, hand-written.\n\n## A\n\n' +
  `<!-- bench:a:start -->\n${a}<!-- bench:a:end -->\n\nProse about A.\n\n## B\n` +
  `<!-- bench:b:start -->\n${b}<!-- bench:b:end -->\ntail\n`;

/** A git repository with one commit; `generated` is committed too, so a later write to it shows as a change. */
function repo(): { dir: string; commit: string } {
  const dir = tempDir('bench-doc-repo');
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.email=bench@example.invalid', '-c', 'user.name=bench', ...args], { cwd: dir, encoding: 'utf8' }).trim();
  git('init', '-q');
  fs.mkdirSync(path.join(dir, 'docs'));
  fs.writeFileSync(path.join(dir, 'code.js'), 'one\n');
  fs.writeFileSync(path.join(dir, 'docs', 'benchmarks.md'), doc('old a\n', 'old b\n'));
  git('add', '.');
  git('commit', '-q', '-m', 'start');
  return { dir, commit: git('rev-parse', '--short', 'HEAD') };
}

describe('bench docs section writer', () => {
  it('replaces one section and leaves every other byte identical; appends a missing section; refuses broken markers', () => {
    const before = doc('old a\n', 'old b\n');
    const after = replaceSection(before, 'a', 'new a\nsecond line');
    expect(after).toBe(doc('new a\nsecond line\n', 'old b\n'));
    const [head, tail] = before.split(/<!-- bench:a:start -->[^]*<!-- bench:a:end -->/);
    expect(after.startsWith(head!)).toBe(true);
    expect(after.endsWith(tail!)).toBe(true);
    // Writing the same content twice changes nothing.
    expect(replaceSection(after, 'a', 'new a\nsecond line')).toBe(after);
    expect(replaceSection(before, 'c', 'c body')).toBe(`${before}\n<!-- bench:c:start -->\nc body\n<!-- bench:c:end -->\n`);
    expect(() => replaceSection('<!-- bench:a:start -->\nx\n', 'a', 'y')).toThrow(/no <!-- bench:a:end -->/);
    expect(() => replaceSection(before + before, 'a', 'y')).toThrow(/twice/);
    expect(() => replaceSection(before, 'A b', 'y')).toThrow(/section name/);
  });

  it('stamps the section with the command, date, machine, commit (+dirty for uncommitted code, not for the doc) and load', () => {
    const { dir, commit } = repo();
    const file = path.join(dir, 'docs', 'benchmarks.md');
    const argv = [process.execPath, path.join(dir, 'scripts', 'bench-quant.mjs'), '--count', '50', '--workloads', '1 image,video 8 frames'];
    const env = { npm_lifecycle_event: 'bench:quant', npm_lifecycle_script: 'npm run build && node scripts/bench-quant.mjs' };
    const times = [new Date('2026-12-06T22:30:10Z'), new Date('2026-12-06T22:42:40Z')];
    const options = { repo: dir, argv, env, execArgv: [], now: () => times.shift()! };

    const run = benchDoc({ doc: file }, options);
    run.write('b', '| x |\n| --- |\n| 1 |\n', { 'b.svg': '<svg/>\n' });
    const text = fs.readFileSync(file, 'utf8');
    const [head] = doc('old a\n', 'old b\n').split('<!-- bench:b:start -->');
    expect(text.startsWith(`${head}<!-- bench:b:start -->\n`)).toBe(true);
    expect(text.endsWith('<!-- bench:b:end -->\ntail\n')).toBe(true);
    const section = text.slice(head!.length);
    // As typed from the repository's root, quoted for the shell.
    expect(section).toContain("- command: `node scripts/bench-quant.mjs --count 50 --workloads '1 image,video 8 frames'` (through `npm run bench:quant`)\n");
    expect(section).toContain('- date: 2026-12-06 22:30 UTC, 12.5 min\n');
    const cpus = os.cpus().length;
    expect(section).toMatch(new RegExp(`^- machine: .+, ${cpus} CPUs, [\\d.]+ GiB; .*node v\\d+.*, onnxruntime-node [\\d.]+$`, 'm'));
    expect(section).toMatch(new RegExp(`^- load average \\(1 min\\): [\\d.]+ at the start, [\\d.]+ at the end \\(on ${cpus} CPUs\\)$`, 'm'));
    // The doc itself was changed by the run: that does not make the commit dirty.
    expect(section).toContain(`- commit: ${commit}\n`);
    expect(section).toContain('| x |\n| --- |\n| 1 |\n<!-- bench:b:end -->');
    expect(fs.readFileSync(path.join(dir, 'docs', 'benchmarks-b.svg'), 'utf8')).toBe('<svg/>\n');

    // An uncommitted change to the code does. Writing section a leaves section b, stamp and all, as it was.
    fs.writeFileSync(path.join(dir, 'code.js'), 'two\n');
    benchDoc({ doc: file }, { ...options, now: () => new Date() }).write('a', 'fresh');
    const again = fs.readFileSync(file, 'utf8');
    expect(again).toContain(`- commit: ${commit}+dirty\n`);
    expect(again.endsWith(section)).toBe(true);
  });

  it('writes docs/benchmarks.md for a full run, and a --quick run only where --doc points it', () => {
    expect(docTarget({})).toBe(BENCH_DOC);
    expect(path.relative(path.resolve(import.meta.dirname, '..'), BENCH_DOC)).toBe(path.join('docs', 'benchmarks.md'));
    expect(docTarget({ quick: true })).toBeUndefined();
    expect(docTarget({ 'no-doc': true })).toBeUndefined();
    expect(docTarget({ quick: true, doc: 'x/bench.md' })).toBe(path.resolve('x/bench.md'));
    const file = path.join(tempDir('bench-doc-quick'), 'benchmarks.md');
    benchDoc({ quick: true }).write('quant', 'table');
    benchDoc({ doc: file, 'no-doc': true }).write('quant', 'table');
    expect(fs.existsSync(file)).toBe(false);
    benchDoc({ quick: true, doc: file }).write('quant', 'table');
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^# Benchmarks\n\n<!-- bench:quant:start -->\n[^]*\ntable\n<!-- bench:quant:end -->\n$/);
    expect(commandLine(['node', 'scripts/bench.mjs', '--quick'], {}, [])).toBe('`node scripts/bench.mjs --quick`');
  });
});
