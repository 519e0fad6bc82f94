/**
 * Helpers shared by the benchmark scripts (bench-engine.mjs, bench-sparse.mjs): medians and formatting,
 * peak RSS per phase (VmHWM, reset through clear_refs), how much of the machine other processes took during a
 * phase (the machine may be shared), machine info, and the cached random checkpoints under .cache/bench/.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ------------------------------------------------------------------------------------ numbers and format

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const ms = () => performance.now();
export const mb = (bytes) => bytes / 2 ** 20;
export const millions = (n) => (n >= 1e7 ? (n / 1e6).toFixed(0) : (n / 1e6).toFixed(2)) + 'M';
/** Milliseconds with precision that suits their size. */
export const fmtMs = (x) => (x === undefined ? '–' : x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0));
export const fmt = (x, digits = 1) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(digits));

// ---------------------------------------------------------------------------------- memory and contention

/** VmHWM (peak resident set) of this process, worker threads included, in MiB. */
export function peakRssMiB() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {}
  return mb(process.memoryUsage().rss);
}
/** Resets VmHWM to the current RSS (Linux clear_refs 5), so a phase's own peak can be read. */
export function resetPeak() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
/** System-wide busy and steal CPU seconds from /proc/stat (USER_HZ = 100), or undefined off Linux. */
export function systemCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 };
  } catch {
    return undefined;
  }
}
let overallPeak = 0;
/** The process's peak RSS over the whole run so far (phases reset VmHWM, so it is tracked here), MiB. */
export function overallPeakMiB() {
  overallPeak = Math.max(overallPeak, peakRssMiB());
  return overallPeak;
}
/**
 * Runs fn; returns [result, { peakRssMiB, otherCpuSeconds, stealSeconds }]: the peak RSS during it (the
 * process peak if clear_refs is unavailable) and how much CPU time other processes and the hypervisor
 * took meanwhile (the machine is shared: a large value means the timings of this phase are inflated).
 */
export async function measured(fn) {
  overallPeakMiB();
  resetPeak();
  const cpu0 = systemCpu();
  const own0 = process.cpuUsage();
  const t0 = ms();
  const r = await fn();
  const own = process.cpuUsage(own0);
  const cpu1 = systemCpu();
  const peak = peakRssMiB();
  overallPeak = Math.max(overallPeak, peak);
  const load = { peakRssMiB: peak, wallSeconds: (ms() - t0) / 1000 };
  if (cpu0 && cpu1) {
    load.otherCpuSeconds = Math.max(0, cpu1.busy - cpu0.busy - (own.user + own.system) / 1e6);
    load.stealSeconds = cpu1.steal - cpu0.steal;
  }
  return [r, load];
}
/**
 * A note when other processes took more than 10% of the machine during a phase. Phases under a second are
 * not judged: /proc/stat counts in 10 ms ticks, too coarse for them.
 */
export function contention(load) {
  if (load.wallSeconds < 1) return '';
  const share = otherShare(load);
  return share > 0.1 ? `other processes used ${(100 * share).toFixed(0)}% of the CPUs` : '';
}
/** The share of the machine's CPU time other processes took during a phase (0 when unknown). */
export function otherShare(load) {
  return (load.otherCpuSeconds ?? 0) / (load.wallSeconds * os.cpus().length);
}

// ------------------------------------------------------------------------------------------ files, machine

export function dirBytes(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return n;
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sparsevila-bench-${prefix}-`));
}

export function machine() {
  const require = createRequire(import.meta.url);
  let commit;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {}
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    onnxruntime: require('onnxruntime-node/package.json').version,
    commit,
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

/**
 * Writes (or reuses) a random Llava checkpoint under .cache/bench/random-llava-<key>, the key hashing
 * `{ v: version, options, ...keyExtra }`. `afterWrite(dir)` runs once on a fresh write (e.g. to swap files
 * in; whatever it changes must be covered by `keyExtra`). Returns { dir, cached, options, parameters, bytes,
 * files, writeSeconds, writtenAt }.
 */
export function cachedRandomLlava(writeRandomLlava, { options, version, rewrite = false, keyExtra, afterWrite }) {
  const key = crypto.createHash('sha256').update(JSON.stringify({ v: version, options, ...keyExtra })).digest('hex').slice(0, 12);
  const dir = path.join(REPO, '.cache', 'bench', `random-llava-${key}`);
  const metaFile = path.join(dir, 'bench-checkpoint.json');
  if (!rewrite && fs.existsSync(metaFile)) {
    return { dir, cached: true, ...JSON.parse(fs.readFileSync(metaFile, 'utf8')) };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const t0 = ms();
  const written = writeRandomLlava(dir, options);
  afterWrite?.(dir);
  const meta = {
    options, ...keyExtra, parameters: written.parameters, bytes: written.bytes, files: written.files.length,
    writeSeconds: (ms() - t0) / 1000, writtenAt: new Date().toISOString(),
  };
  fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2));
  return { dir, cached: false, ...meta };
}
