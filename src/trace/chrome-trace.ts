/**
 * Trace events as a Chrome trace (the JSON object format Perfetto and chrome://tracing open).
 *
 * Layout: one process per run (pid 1, 2, … in order of first appearance), with named threads:
 *   tid 1 "stages"       — `span` events as complete events (ph 'X'): name = stage, args = {turn, ...detail}
 *   tid 2 "decode steps" — `decode.step` as complete events; a step is emitted when it ends, so it spans
 *                          [t − ms, t]
 *   tid 3 "turns"        — `turn.start` / `turn.end` instants (ph 'i')
 *   tid 4 "tokens"       — `token` instants
 *   tid 5 "sparsity"     — `salience`, `kept`, `retrieval` instants with counts, never whole arrays
 *   tid 6 "quality"      — `fidelity` instants
 * `ts` / `dur` are microseconds (trace times are ms since the run started, so 0 µs is the run's start).
 * Args count turns and images from 1, as the chat template ("Frame 1: <image>") and the CLI do, for a
 * person reading them in the viewer; the trace's own `turn` and `image` are indices from 0.
 *
 * onnxruntime session profiles (`enableProfiling`: a JSON array of Chrome trace events, `ts` in µs since
 * ORT's profiler started — at session creation) each go on their own process (pid 1001, 1002, …), shifted
 * by an offset: merged ts = ORT ts + offsetMs × 1000. The offset is the run time at which ORT's clock
 * reads 0. Give it per profile (`offsetMs`) or let it be chosen by alignment: the anchor ORT event is
 * placed at the start of the first span of `alignTo` (default 'prefill') of the first run that has one.
 * The default anchor is the profile's first `model_run` event (its first inference), falling back to its
 * first event when it has no runs; `anchor: 'first-event'` uses the first event of any kind — usually
 * `model_loading_uri`, which happened when the session was created, long before the run. Without any span
 * to align to, the offset is 0. ORT events before the anchor (model loading, initialisation) can land
 * at negative times.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import { TRACE_SCHEMA_VERSION, type Stage, type TraceEvent, type TraceSink } from './schema.js';

export interface ChromeTraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  /** Instant scope: 't' thread, 'p' process, 'g' global. */
  s?: 't' | 'p' | 'g';
  args?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface OrtProfileInfo {
  /** The file it came from, or '<events>' for events passed in. */
  source: string;
  pid: number;
  offsetMs: number;
  /** How the offset was chosen. */
  alignment: string;
  events: number;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: 'ms';
  metadata: {
    generator: 'sparsevila-ts';
    traceSchemaVersion: number;
    runs: { run: string; pid: number; model?: string; policy?: string }[];
    ortProfiles: OrtProfileInfo[];
  };
}

export interface OrtProfileSpec {
  /** A profile file written by onnxruntime, or its events already parsed. */
  file?: string;
  events?: ChromeTraceEvent[];
  /** Process name in the viewer (default: "onnxruntime <file name>"). */
  name?: string;
  /** Run time (ms) at which the profile's ts 0 falls; skips alignment. */
  offsetMs?: number;
  /** Stage whose first span the anchor is aligned with (default 'prefill'). */
  alignTo?: Stage;
  /** Which ORT event is the anchor (default 'first-run'). */
  anchor?: 'first-run' | 'first-event';
}

export interface ChromeTraceOptions {
  /** onnxruntime profiles to merge: file paths, or specs. */
  ortProfiles?: (string | OrtProfileSpec)[];
}

const TID = { stages: 1, decode: 2, turns: 3, tokens: 4, sparsity: 5, quality: 6 } as const;
const THREAD_NAMES: Record<number, string> = {
  [TID.stages]: 'stages',
  [TID.decode]: 'decode steps',
  [TID.turns]: 'turns',
  [TID.tokens]: 'tokens',
  [TID.sparsity]: 'sparsity',
  [TID.quality]: 'quality',
};
const ORT_PID_BASE = 1000;

/** ms → µs, kept to ns precision (avoids 1100.0000000000002). */
function us(ms: number): number {
  return Math.round(ms * 1e6) / 1e3;
}

function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function compactMetrics(metrics: Record<string, number | number[] | null>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metrics)) {
    if (v !== null && typeof v === 'object') out[`${k}.length`] = (v as ArrayLike<number>).length;
    else out[k] = v;
  }
  return out;
}

/** The label the engine wrote, else the method's name (traces without a label). */
function policyLabel(e: Extract<TraceEvent, { type: 'run.start' }>): string | undefined {
  if (typeof e.label === 'string') return e.label;
  if (!e.policy || typeof e.policy !== 'object') return undefined;
  return String(e.policy.method ?? '');
}

/** Read an onnxruntime profile: a JSON array of Chrome trace events. */
export function readOrtProfile(file: string): ChromeTraceEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError('OPTION_INVALID', `cannot read onnxruntime profile ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (first) {
    // Be lenient with a trailing comma or a missing closing bracket (a profile cut short).
    const repaired = text.trimEnd().replace(/,\s*(\]?)$/, '$1');
    try {
      value = JSON.parse(repaired.endsWith(']') ? repaired : `${repaired}]`);
    } catch {
      throw new InputError('OPTION_INVALID', `onnxruntime profile ${file} is not valid JSON: ${(first as Error).message}`, {
        subject: file,
        cause: first,
      });
    }
  }
  const events = Array.isArray(value) ? value : (value as { traceEvents?: unknown } | null)?.traceEvents;
  if (!Array.isArray(events) || events.some((e) => typeof e !== 'object' || e === null || typeof (e as ChromeTraceEvent).ph !== 'string')) {
    throw new InputError('OPTION_INVALID', `onnxruntime profile ${file} is not an array of Chrome trace events`, { subject: file });
  }
  return events as ChromeTraceEvent[];
}

function firstSpanStart(events: readonly TraceEvent[], stage: Stage): number | undefined {
  let run: string | undefined;
  let best: number | undefined;
  for (const e of events) {
    if (e.type !== 'span' || e.stage !== stage) continue;
    if (run === undefined) run = e.run;
    if (e.run === run && (best === undefined || e.start < best)) best = e.start;
  }
  return best;
}

function mergeOrtProfile(spec: OrtProfileSpec, index: number, events: readonly TraceEvent[]): { traceEvents: ChromeTraceEvent[]; info: OrtProfileInfo } {
  const source = spec.file ?? '<events>';
  const ortEvents = spec.events ?? (spec.file ? readOrtProfile(spec.file) : []);
  const pid = ORT_PID_BASE + index + 1;

  let offsetMs: number;
  let alignment: string;
  if (spec.offsetMs !== undefined) {
    offsetMs = spec.offsetMs;
    alignment = 'given';
  } else {
    const timed = ortEvents.filter((e) => e.ph !== 'M' && typeof e.ts === 'number');
    const earliest = (list: ChromeTraceEvent[]): ChromeTraceEvent | undefined =>
      list.reduce<ChromeTraceEvent | undefined>((a, e) => (a === undefined || e.ts! < a.ts! ? e : a), undefined);
    const anchorKind = spec.anchor ?? 'first-run';
    let anchor = anchorKind === 'first-run' ? earliest(timed.filter((e) => e.name === 'model_run')) : undefined;
    const anchorName = anchor ? 'first model_run' : 'first event';
    anchor ??= earliest(timed);
    const stage = spec.alignTo ?? 'prefill';
    const target = firstSpanStart(events, stage);
    if (anchor && target !== undefined) {
      offsetMs = target - anchor.ts! / 1000;
      alignment = `${anchorName} at the first '${stage}' span`;
    } else {
      offsetMs = 0;
      alignment = target === undefined ? `no '${stage}' span to align to` : 'empty profile';
    }
  }

  const shift = us(offsetMs);
  const name = spec.name ?? `onnxruntime ${spec.file ? path.basename(spec.file) : `profile ${index + 1}`}`;
  const out: ChromeTraceEvent[] = [
    { name: 'process_name', ph: 'M', pid, tid: 0, args: { name } },
    { name: 'process_sort_index', ph: 'M', pid, tid: 0, args: { sort_index: pid } },
    { name: 'process_labels', ph: 'M', pid, tid: 0, args: { labels: `offset ${offsetMs.toFixed(3)} ms (${alignment})` } },
  ];
  const tids = new Set<number>();
  for (const e of ortEvents) {
    const moved: ChromeTraceEvent = { ...e, pid };
    if (e.ph !== 'M' && typeof e.ts === 'number') moved.ts = Math.round((e.ts + shift) * 1e3) / 1e3;
    if (typeof e.tid === 'number') tids.add(e.tid);
    out.push(moved);
  }
  for (const tid of tids) out.push({ name: 'thread_name', ph: 'M', pid, tid, args: { name: `ort thread ${tid}` } });
  return { traceEvents: out, info: { source, pid, offsetMs, alignment, events: ortEvents.length } };
}

/** Convert trace events (any number of runs) to a Chrome trace, merging onnxruntime profiles if given. */
export function toChromeTrace(events: readonly TraceEvent[], options: ChromeTraceOptions = {}): ChromeTrace {
  const pids = new Map<string, number>();
  const runs: ChromeTrace['metadata']['runs'] = [];
  const meta: ChromeTraceEvent[] = [];
  const body: ChromeTraceEvent[] = [];

  const pidOf = (run: string): number => {
    let pid = pids.get(run);
    if (pid === undefined) {
      pid = pids.size + 1;
      pids.set(run, pid);
      runs.push({ run, pid });
      meta.push({ name: 'process_name', ph: 'M', pid, tid: 0, args: { name: `sparsevila run ${run}` } });
      meta.push({ name: 'process_sort_index', ph: 'M', pid, tid: 0, args: { sort_index: pid } });
      for (const [tid, name] of Object.entries(THREAD_NAMES)) {
        meta.push({ name: 'thread_name', ph: 'M', pid, tid: Number(tid), args: { name } });
        meta.push({ name: 'thread_sort_index', ph: 'M', pid, tid: Number(tid), args: { sort_index: Number(tid) } });
      }
    }
    return pid;
  };
  const instant = (e: TraceEvent, tid: number, cat: string, name: string, args: Record<string, unknown>): void => {
    body.push({ name, cat, ph: 'i', s: 't', ts: us(e.t), pid: pidOf(e.run), tid, args });
  };

  for (const e of events) {
    const pid = pidOf(e.run);
    switch (e.type) {
      case 'run.start': {
        const run = runs[pid - 1]!;
        run.model = e.model?.dir;
        run.policy = policyLabel(e);
        meta.push({
          name: 'process_labels',
          ph: 'M',
          pid,
          tid: 0,
          args: { labels: [e.model?.text, e.model?.vision, run.policy].filter(Boolean).join(', ') },
        });
        instant(e, TID.turns, 'run', 'run.start', {
          model: e.model?.dir,
          layers: e.model?.layers,
          imageTokens: e.model?.imageTokens,
          policy: run.policy,
        });
        break;
      }
      case 'span':
        body.push({
          name: e.stage,
          cat: 'stage',
          ph: 'X',
          ts: us(e.start),
          dur: us(e.duration),
          pid,
          tid: TID.stages,
          args: { turn: e.turn + 1, ...(e.detail ?? {}) },
        });
        break;
      case 'decode.step':
        body.push({
          name: 'decode.step',
          cat: 'decode',
          ph: 'X',
          ts: us(e.t - e.ms),
          dur: us(e.ms),
          pid,
          tid: TID.decode,
          args: { turn: e.turn + 1, step: e.step, attended: e.attended, visualAttended: e.visualAttended },
        });
        break;
      case 'token':
        instant(e, TID.tokens, 'token', 'token', { turn: e.turn + 1, step: e.step, id: e.id, text: e.text });
        break;
      case 'turn.start':
        instant(e, TID.turns, 'turn', 'turn.start', { turn: e.turn + 1, images: e.images, text: clip(e.text) });
        break;
      case 'turn.end':
        instant(e, TID.turns, 'turn', 'turn.end', {
          turn: e.turn + 1,
          stopReason: e.stopReason,
          answer: clip(e.answer),
          ...compactMetrics(e.metrics),
        });
        break;
      case 'kept':
        instant(e, TID.sparsity, 'sparsity', 'kept', { turn: e.turn + 1, image: e.image + 1, total: e.total, kept: e.kept.length });
        break;
      case 'retrieval':
        instant(e, TID.sparsity, 'sparsity', 'retrieval', {
          turn: e.turn + 1,
          layer: e.layer,
          candidates: e.candidates.length,
          retrieved: e.retrieved.length,
          ...(e.step !== undefined && { step: e.step }),
        });
        break;
      case 'salience':
        instant(e, TID.sparsity, 'sparsity', 'salience', {
          turn: e.turn + 1,
          image: e.image + 1,
          source: e.source,
          rows: e.grid.rows,
          cols: e.grid.cols,
          leading: e.leading,
          scores: e.scores.length,
        });
        break;
      case 'fidelity':
        instant(e, TID.quality, 'quality', 'fidelity', { turn: e.turn + 1, ...compactMetrics(e.metrics) });
        break;
      case 'image':
        instant(e, TID.sparsity, 'sparsity', 'image', {
          turn: e.turn + 1,
          image: e.image + 1,
          width: e.width,
          height: e.height,
          ...(e.timestamps?.length ? { seconds: e.timestamps.length === 1 ? e.timestamps[0] : `${e.timestamps[0]}–${e.timestamps.at(-1)}` } : {}),
        });
        break;
    }
  }

  const ortProfiles: OrtProfileInfo[] = [];
  const ortEvents: ChromeTraceEvent[] = [];
  (options.ortProfiles ?? []).forEach((p, i) => {
    const merged = mergeOrtProfile(typeof p === 'string' ? { file: p } : p, i, events);
    ortProfiles.push(merged.info);
    ortEvents.push(...merged.traceEvents);
  });

  return {
    traceEvents: [...meta, ...body, ...ortEvents],
    displayTimeUnit: 'ms',
    metadata: { generator: 'sparsevila-ts', traceSchemaVersion: TRACE_SCHEMA_VERSION, runs, ortProfiles },
  };
}

export interface ChromeTraceSinkOptions extends ChromeTraceOptions {
  /** Indent the JSON (default: compact). */
  pretty?: boolean;
}

/** Collects events in memory and writes the Chrome trace to `file` on `close()`. */
export class ChromeTraceSink implements TraceSink {
  readonly file: string;
  readonly events: TraceEvent[] = [];
  private readonly options: ChromeTraceSinkOptions;
  private readonly profiles: (string | OrtProfileSpec)[];
  private closing: Promise<void> | null = null;

  constructor(file: string, options: ChromeTraceSinkOptions = {}) {
    this.file = file;
    this.options = options;
    this.profiles = [...(options.ortProfiles ?? [])];
  }

  write(event: TraceEvent): void {
    if (!this.closing) this.events.push(event);
  }

  /** Add an onnxruntime profile to merge (ORT writes it when the session ends, often late in the run). */
  addOrtProfile(profile: string | OrtProfileSpec): void {
    this.profiles.push(profile);
  }

  /** Build the trace and write it; resolves when the file is complete. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const trace = toChromeTrace(this.events, { ortProfiles: this.profiles });
      await fs.promises.mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
      await fs.promises.writeFile(this.file, JSON.stringify(trace, null, this.options.pretty ? 1 : undefined));
    })();
    return this.closing;
  }
}
