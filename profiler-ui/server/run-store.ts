/**
 * Recent runs, in memory and on disk. Memory is bounded — at most `maxRuns` runs (the oldest finished one
 * is evicted first), `maxEventsPerRun` events per run, and an estimated `maxBytes` overall — so a long
 * session or a flood of runs cannot exhaust the server. Every event of a live run is also appended, as JSON
 * lines, to `<dataDir>/<run>.jsonl`, which is what replays after a restart (files are loaded at start).
 * The data dir is bounded too — at most `maxDiskRuns` files and `maxDiskBytes` bytes, the oldest (by last
 * write) removed first, never the file of a live run — since uploads and producers choose run ids freely.
 *
 * Events can arrive out of order (several processes, reconnects, events before their run.start): each
 * run's events are kept ordered by `t`, ties in arrival order.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../src/errors.js';
import { JsonlSink, readTrace } from '../../src/trace/jsonl-sink.js';
import type { TraceEvent } from '../../src/trace/schema.js';
import { emptyFacts, noteEvent, type MediaFacts } from '../web/data/run-identity.js';
import type { RunSource, RunSummary } from './protocol.js';
import { listRunFiles, pruneRunFiles, runFileName } from './run-files.js';
import { RunNames } from './run-names.js';

type RunStart = Extract<TraceEvent, { type: 'run.start' }>;

export type { RunSource, RunSummary } from './protocol.js';
export { runFileName } from './run-files.js';

export interface RunStoreOptions {
  /** Where runs are appended as JSONL and loaded from at start; none: memory only. */
  dataDir?: string;
  maxRuns?: number;
  maxEventsPerRun?: number;
  /** Estimated in-memory size of all stored events (default 1 GiB). */
  maxBytes?: number;
  /** Most run files kept in the data dir (default 500). */
  maxDiskRuns?: number;
  /** Most bytes of run files kept in the data dir (default 2 GiB). */
  maxDiskBytes?: number;
  /** Problems that do not stop the server (an unreadable data file, a failed append). */
  log?: (message: string) => void;
}

/** Who delivers a live run's events; a run stays live while one of its producers is connected. */
export type Producer = object;

export interface RunStoreListener {
  /** A run appeared, got its run.start, or changed liveness. */
  run(summary: RunSummary): void;
  evicted(run: string): void;
}

interface StoredRun {
  id: string;
  events: TraceEvent[];
  bytes: number;
  start: RunStart | null;
  started: number;
  turns: number;
  lastT: number;
  source: RunSource;
  truncated: number;
  producers: Set<Producer>;
  /** Appends this run's live events to the data dir (open while live). */
  file: JsonlSink | null;
  /** An upload of this run is being written to the data dir. */
  saving: boolean;
  /** Its media and first question, folded as events arrive (the run list's labels). */
  media: MediaFacts;
}

export class RunStore {
  private readonly runs = new Map<string, StoredRun>();
  private readonly listeners: RunStoreListener[] = [];
  private readonly maxRuns: number;
  private readonly maxEventsPerRun: number;
  private readonly maxBytes: number;
  private readonly maxDiskRuns: number;
  private readonly maxDiskBytes: number;
  private readonly dataDir: string | undefined;
  private readonly log: (message: string) => void;
  private readonly names: RunNames;
  private totalBytes = 0;

  constructor(options: RunStoreOptions = {}) {
    this.maxRuns = options.maxRuns ?? 50;
    this.maxEventsPerRun = options.maxEventsPerRun ?? 200_000;
    this.maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
    this.maxDiskRuns = options.maxDiskRuns ?? 500;
    this.maxDiskBytes = options.maxDiskBytes ?? 2 * 1024 * 1024 * 1024;
    this.dataDir = options.dataDir === undefined ? undefined : path.resolve(options.dataDir);
    this.log = options.log ?? (() => undefined);
    if (this.dataDir) fs.mkdirSync(this.dataDir, { recursive: true });
    this.names = new RunNames(this.dataDir, this.log);
  }

  listen(listener: RunStoreListener): void {
    this.listeners.push(listener);
  }

  get size(): number {
    return this.runs.size;
  }

  /** Load the newest `maxRuns` JSONL files of the data dir (unreadable or invalid ones are logged and skipped). */
  async loadDataDir(): Promise<string[]> {
    if (!this.dataDir) return [];
    this.pruneDisk();
    const all = listRunFiles(this.dataDir, this.log);
    for (const f of all) if (!f.isFile) this.log(`profiler: skipping ${f.file}: not a file`);
    const files = all.filter((f) => f.isFile).slice(-this.maxRuns); // oldest first, so the newest are the last evicted
    const loaded: string[] = [];
    for (const { file, mtime } of files) {
      try {
        loaded.push(...this.load(await readTrace(file), { persist: false, recordedAt: mtime }));
      } catch (err) {
        this.log(`profiler: skipping ${file}: ${(err as Error).message}`);
      }
    }
    return loaded;
  }

  /** Remove the oldest run files past the disk bounds; files of live runs (and uploads being written) stay. */
  private pruneDisk(): void {
    if (!this.dataDir) return;
    const keep = new Set<string>();
    for (const run of this.runs.values()) if (run.file || run.saving) keep.add(runFileName(run.id));
    pruneRunFiles(this.dataDir, { maxRuns: this.maxDiskRuns, maxBytes: this.maxDiskBytes }, keep, this.log);
  }

  /** Runs among `ids` that a producer is still feeding: an upload must not replace them. */
  liveRuns(ids: Iterable<string>): string[] {
    return [...ids].filter((id) => (this.runs.get(id)?.producers.size ?? 0) > 0);
  }

  /**
   * Load a saved trace (one or more runs) as 'file' runs, replacing runs with the same ids. With
   * `persist` each run is written to the data dir (uploads, so they survive a restart).
   */
  load(events: readonly TraceEvent[], options: { persist: boolean; recordedAt?: number }): string[] {
    const byRun = new Map<string, TraceEvent[]>();
    for (const e of events) {
      let list = byRun.get(e.run);
      if (!list) byRun.set(e.run, (list = []));
      list.push(e);
    }
    const live = this.liveRuns(byRun.keys());
    if (live.length) {
      // Replacing would truncate the run's data-dir file under its producer.
      throw new InputError('OPTION_INVALID', `run ${JSON.stringify(live[0])} is live (a producer is streaming it): upload it under another run id`, {
        subject: live[0],
      });
    }
    for (const [id, list] of byRun) {
      if (this.runs.has(id)) this.evict(id);
      const lastT = list.reduce((m, e) => Math.max(m, e.t), 0);
      const run = this.create(id, 'file', options.recordedAt === undefined ? Date.now() : options.recordedAt - lastT);
      for (const e of list) {
        noteEvent(run.media, e);
        this.store(run, e);
      }
      if (options.persist && this.dataDir) this.persistWhole(run, list);
      this.emitRun(run);
    }
    return [...byRun.keys()];
  }

  /** Live events from a producer (an ingest connection, or the in-process `ingest`). */
  add(events: readonly TraceEvent[], producer: Producer): void {
    const changed = new Set<StoredRun>();
    for (const e of events) {
      let run = this.runs.get(e.run);
      if (!run) {
        run = this.create(e.run, 'live', Date.now());
        changed.add(run);
      }
      if (!run.producers.has(producer)) {
        run.producers.add(producer);
        changed.add(run);
      }
      if (e.type === 'run.start' && !run.start) changed.add(run);
      // The run list learns a live run's question and media kind at once; its frame count when it ends.
      const kindBefore = run.media.images > 0;
      if (noteEvent(run.media, e) && (e.type === 'turn.start' || !kindBefore)) changed.add(run);
      this.store(run, e);
      this.append(run, e);
    }
    for (const run of changed) this.emitRun(run);
  }

  /** A producer went away: its runs are no longer live (once no other producer feeds them). */
  detach(producer: Producer): void {
    for (const run of this.runs.values()) {
      if (!run.producers.delete(producer)) continue;
      if (run.producers.size === 0) {
        this.closeFile(run);
        this.emitRun(run);
      }
    }
  }

  /** Names a run (null clears its name), kept beside the data dir's runs; the new summary, or undefined for an unknown run. */
  rename(id: string, name: string | null): RunSummary | undefined {
    const run = this.runs.get(id);
    if (!run) return undefined;
    this.names.set(id, name);
    this.emitRun(run);
    return this.summarize(run);
  }

  summaries(): RunSummary[] {
    return [...this.runs.values()].map((r) => this.summarize(r)).sort((a, b) => b.started - a.started);
  }

  summary(id: string): RunSummary | undefined {
    const run = this.runs.get(id);
    return run && this.summarize(run);
  }

  /** The run's stored events, ordered by t (the store's own array: do not modify). */
  events(id: string): readonly TraceEvent[] | undefined {
    return this.runs.get(id)?.events;
  }

  async close(): Promise<void> {
    await Promise.all([...this.runs.values()].map((r) => this.closeFile(r)));
  }

  private create(id: string, source: RunSource, started: number): StoredRun {
    const run: StoredRun = {
      id,
      events: [],
      bytes: 0,
      start: null,
      started,
      turns: 0,
      lastT: 0,
      source,
      truncated: 0,
      producers: new Set(),
      file: null,
      saving: false,
      media: emptyFacts(),
    };
    this.runs.set(id, run);
    while (this.runs.size > this.maxRuns) {
      const victim = this.oldestEvictable(run);
      if (!victim) break;
      this.evict(victim.id);
    }
    return run;
  }

  /** The oldest run other than `keep`, preferring runs that are not live. */
  private oldestEvictable(keep: StoredRun): StoredRun | undefined {
    let best: StoredRun | undefined;
    for (const r of this.runs.values()) {
      if (r === keep) continue;
      if (!best) {
        best = r;
        continue;
      }
      const idle = r.producers.size === 0;
      if (idle !== (best.producers.size === 0)) {
        if (idle) best = r;
      } else if (r.started < best.started) best = r;
    }
    return best;
  }

  private evict(id: string): void {
    const run = this.runs.get(id);
    if (!run) return;
    this.runs.delete(id);
    this.totalBytes -= run.bytes;
    void this.closeFile(run);
    for (const l of this.listeners) l.evicted(id);
  }

  private store(run: StoredRun, e: TraceEvent): void {
    if (e.type === 'run.start' && !run.start) run.start = e;
    if (e.type === 'turn.start') run.turns++;
    if (e.t > run.lastT) run.lastT = e.t;
    if (run.events.length >= this.maxEventsPerRun) {
      run.truncated++;
      return;
    }
    const bytes = estimateBytes(e);
    while (this.totalBytes + bytes > this.maxBytes) {
      const victim = this.oldestEvictable(run);
      if (!victim) break;
      this.evict(victim.id);
    }
    if (this.totalBytes + bytes > this.maxBytes) {
      run.truncated++;
      return;
    }
    insertByT(run.events, e);
    run.bytes += bytes;
    this.totalBytes += bytes;
  }

  private append(run: StoredRun, e: TraceEvent): void {
    if (!this.dataDir) return;
    if (!run.file) {
      run.file = new JsonlSink(path.join(this.dataDir, runFileName(run.id)));
      this.pruneDisk(); // a new file: the bound may now be passed
    }
    run.file.write(e);
  }

  private persistWhole(run: StoredRun, events: readonly TraceEvent[]): void {
    const sink = new JsonlSink(path.join(this.dataDir!, runFileName(run.id)), { truncate: true });
    for (const e of events) sink.write(e);
    run.saving = true;
    void sink.close().then(() => {
      run.saving = false;
      if (sink.error) this.log(`profiler: could not save run ${run.id}: ${sink.error.message}`);
      this.pruneDisk();
    });
  }

  private async closeFile(run: StoredRun): Promise<void> {
    const file = run.file;
    run.file = null;
    if (!file) return;
    await file.close();
    this.pruneDisk(); // the finished run's file has its final size
    if (file.error || file.dropped) {
      this.log(`profiler: ${file.file}: ${file.dropped} events not written${file.error ? ` (${file.error.message})` : ''}`);
    }
  }

  private emitRun(run: StoredRun): void {
    if (!this.runs.has(run.id)) return;
    const summary = this.summarize(run);
    for (const l of this.listeners) l.run(summary);
  }

  private summarize(run: StoredRun): RunSummary {
    return summarize(run, this.names.get(run.id));
  }
}

function summarize(run: StoredRun, name: string | null): RunSummary {
  return {
    run: run.id,
    model: run.start?.model.dir ?? null,
    vision: run.start?.model.vision ?? null,
    text: run.start?.model.text ?? null,
    policy: run.start?.policy ?? null,
    label: run.start?.label ?? null,
    name,
    media: { ...run.media, files: [...run.media.files] },
    started: run.started,
    events: run.events.length,
    turns: run.turns,
    lastT: run.lastT,
    live: run.producers.size > 0,
    source: run.source,
    truncated: run.truncated,
  };
}

/** Insert keeping `t` order; ties keep arrival order. Events mostly arrive in order, so look from the end. */
function insertByT(events: TraceEvent[], e: TraceEvent): void {
  const n = events.length;
  if (n === 0 || events[n - 1]!.t <= e.t) {
    events.push(e);
    return;
  }
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.t <= e.t) lo = mid + 1;
    else hi = mid;
  }
  events.splice(lo, 0, e);
}

/** A rough in-memory size: arrays of numbers at 8 bytes, token ids as small objects, strings at 2 bytes a char. */
export function estimateBytes(e: TraceEvent): number {
  let bytes = 200;
  switch (e.type) {
    case 'salience':
      bytes += e.scores.length * 8;
      break;
    case 'kept':
      bytes += e.kept.length * 8;
      break;
    case 'retrieval':
      bytes += e.candidates.length * 56 + e.scores.length * 8 + e.retrieved.length * 8;
      break;
    case 'image':
      bytes += e.jpeg.length * 2;
      break;
    case 'token':
    case 'turn.start':
      bytes += e.text.length * 2;
      break;
    case 'turn.end':
      bytes += e.answer.length * 2;
      break;
    default:
      break;
  }
  return bytes;
}
