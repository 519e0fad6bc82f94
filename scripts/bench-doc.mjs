/**
 * docs/benchmarks.md is written by the benchmarks themselves: each script replaces its own sections, marked
 *
 *   <!-- bench:NAME:start -->
 *   …what the script last wrote…
 *   <!-- bench:NAME:end -->
 *
 * and leaves every byte outside them as it was (the hand-written prose between sections included). Each section
 * starts with a stamp of the run that wrote it: the exact command line, the date and duration, the machine, the
 * git commit (`+dirty` when tracked files other than the generated ones had uncommitted changes) and the 1-minute
 * load average at the start and the end (the machine may be shared).
 *
 * Full runs write docs/benchmarks.md; `--quick` runs (CI) write nothing unless given `--doc FILE`; `--no-doc`
 * writes nothing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const BENCH_DOC = path.join(REPO, 'docs', 'benchmarks.md');

/** The parseArgs options every bench script takes for its docs section. */
export const DOC_OPTIONS = { doc: { type: 'string' }, 'no-doc': { type: 'boolean', default: false } };

/** Where a run writes its sections: --doc FILE; else docs/benchmarks.md for a full run, nowhere for --quick or --no-doc. */
export function docTarget(args) {
  if (args['no-doc']) return undefined;
  if (args.doc) return path.resolve(args.doc);
  return args.quick ? undefined : BENCH_DOC;
}

const markers = (name) => [`<!-- bench:${name}:start -->`, `<!-- bench:${name}:end -->`];

/**
 * `text` with section `name`'s content replaced by `content` (the markers stay; nothing outside them changes),
 * or the section appended at the end when the text has none.
 */
export function replaceSection(text, name, content) {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`bench section name ${JSON.stringify(name)}: use lower-case letters, digits and '-'`);
  const [start, end] = markers(name);
  const body = `${start}\n${content.replace(/\n*$/, '\n')}${end}`;
  const i = text.indexOf(start);
  if (i < 0) return `${text.replace(/\n*$/, text ? '\n\n' : '')}${body}\n`;
  const j = text.indexOf(end, i);
  if (j < 0) throw new Error(`${start} has no ${end} after it`);
  if (text.indexOf(start, i + 1) >= 0) throw new Error(`${start} occurs twice`);
  return text.slice(0, i) + body + text.slice(j + end.length);
}

const shellWord = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** In markdown, the command line as typed from the repository root (`node scripts/x.mjs --flag 'a b'`) and the npm script it ran under. */
export function commandLine(argv = process.argv, env = process.env, execArgv = process.execArgv, repo = REPO) {
  const script = path.relative(repo, path.resolve(argv[1]));
  const cmd = ['node', ...execArgv, script, ...argv.slice(2)].map(shellWord).join(' ');
  const npm = env.npm_lifecycle_event && env.npm_lifecycle_script?.includes(path.basename(script)) ? env.npm_lifecycle_event : undefined;
  return `\`${cmd}\`${npm ? ` (through \`npm run ${npm}\`)` : ''}`;
}

/** Short commit of `repo`, `+dirty` when tracked files other than `generated` (paths relative to the repo) changed. */
export function commitStamp(repo = REPO, generated = () => false) {
  const git = (...a) => execFileSync('git', a, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const commit = git('rev-parse', '--short', 'HEAD').trim();
    const changed = git('diff', '--name-only', '-z', 'HEAD').split('\0').filter(Boolean);
    return changed.some((p) => !generated(p)) ? `${commit}+dirty` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** CPU model (from /proc/cpuinfo when Linux names it there), CPU count, memory, OS, Node and onnxruntime-node. */
export function machineLine() {
  let cpu = os.cpus()[0]?.model?.trim();
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1].trim() ?? cpu;
  } catch {}
  let ort = '?';
  try {
    ort = createRequire(import.meta.url)('onnxruntime-node/package.json').version;
  } catch {}
  return (
    `${cpu ?? 'unknown CPU'}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${os.type()} ${os.release()}; ` +
    `node ${process.version}, onnxruntime-node ${ort}`
  );
}

const utc = (d) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
const load1 = () => os.loadavg()[0].toFixed(2);

/**
 * Starts a run's stamp — call it before any work, so the command, commit and load are those at the start — and
 * returns `write(name, markdown, files?)`, which replaces section `name` of the run's doc with the stamp and the
 * markdown (a no-op when the run writes no doc). `files` ({ 'fidelity.svg': text }) are written beside the doc as
 * `<doc name>-<file>`, and the markdown can link them by that name. Options are for tests.
 */
export function benchDoc(args, { repo = REPO, argv = process.argv, env = process.env, execArgv = process.execArgv, now = () => new Date() } = {}) {
  const file = docTarget(args);
  const base = file && path.basename(file, '.md');
  const generated = (p) =>
    !!file &&
    path.dirname(path.resolve(repo, p)) === path.dirname(file) &&
    (path.basename(p) === path.basename(file) || path.basename(p).startsWith(`${base}-`));
  const start = { date: now(), load: load1(), command: commandLine(argv, env, execArgv, repo), commit: commitStamp(repo, generated) };
  return {
    file,
    /** The file name a companion file gets beside the doc. */
    companion: (name) => `${base}-${name}`,
    write(name, markdown, files = {}) {
      if (!file) return;
      const end = now();
      const minutes = (end - start.date) / 60_000;
      const stamp = [
        `<!-- Written by ${path.basename(argv[1])}; rerun it to replace this section. -->`,
        '',
        `- command: ${start.command}`,
        `- date: ${utc(start.date)}, ${minutes < 1 ? `${((end - start.date) / 1000).toFixed(0)} s` : `${minutes.toFixed(1)} min`}`,
        `- machine: ${machineLine()}`,
        `- commit: ${start.commit}`,
        `- load average (1 min): ${start.load} at the start, ${load1()} at the end (on ${os.cpus().length} CPUs)`,
        '',
      ].join('\n');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(path.dirname(file), `${base}-${k}`), v);
      const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, replaceSection(before, name, `${stamp}\n${markdown}`));
      fs.renameSync(tmp, file);
      process.stderr.write(`wrote section "${name}" of ${path.relative(process.cwd(), file)}\n`);
    },
  };
}
