import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as trace from '../dist/src/trace/index.js';
import type { ChromeTraceEvent, TraceEvent } from '../dist/src/trace/index.js';
import { engine, tempDir } from './helpers/engine.js';

const RUN = 'run-a';

/** A small synthetic run: one turn, one image, three decode steps. Times in ms since the run started. */
function syntheticRun(run = RUN): TraceEvent[] {
  const base = { run };
  return [
    {
      ...base,
      t: 0,
      type: 'run.start',
      version: trace.TRACE_SCHEMA_VERSION,
      model: { dir: '/models/tiny', vision: 'clip', text: 'llama', layers: 2, heads: 4, kvHeads: 2, imageTokens: 16 },
      policy: { method: 'dense' },
      options: { maxNewTokens: 3 },
    },
    { ...base, t: 0.5, type: 'turn.start', turn: 0, text: 'What is in the image?', images: 1 },
    { ...base, t: 3, type: 'span', turn: 0, stage: 'images', start: 1, duration: 2, detail: { images: 1 } },
    { ...base, t: 8.25, type: 'span', turn: 0, stage: 'encode', start: 3, duration: 5.25, detail: { tokens: 16 } },
    { ...base, t: 8.5, type: 'kept', turn: 0, image: 0, total: 16, kept: [0, 1, 2, 5, 7, 8, 9, 12] },
    { ...base, t: 20, type: 'span', turn: 0, stage: 'prefill', start: 8.5, duration: 11.5, detail: { tokens: 40, chunks: 1 } },
    {
      ...base,
      t: 20.5,
      type: 'retrieval',
      turn: 0,
      layer: 1,
      candidates: Array.from({ length: 8 }, (_, i) => ({ image: 0, token: i })),
      scores: [0.1, 0.3, 0.2, 0.05, 0.15, 0.1, 0.05, 0.05],
      retrieved: [1, 2, 4],
    },
    { ...base, t: 22, type: 'decode.step', turn: 0, step: 0, ms: 1.5, attended: 41, visualAttended: 3 },
    { ...base, t: 22.1, type: 'token', turn: 0, step: 0, id: 42, text: 'A' },
    { ...base, t: 23.5, type: 'decode.step', turn: 0, step: 1, ms: 1.25, attended: 42, visualAttended: 3 },
    { ...base, t: 23.6, type: 'token', turn: 0, step: 1, id: 43, text: ' cat' },
    { ...base, t: 25, type: 'decode.step', turn: 0, step: 2, ms: 1.1, attended: 43, visualAttended: 3 },
    { ...base, t: 25.1, type: 'token', turn: 0, step: 2, id: 2, text: '' },
    { ...base, t: 25.2, type: 'span', turn: 0, stage: 'decode', start: 20.5, duration: 4.7, detail: { steps: 3 } },
    { ...base, t: 25.3, type: 'turn.end', turn: 0, answer: 'A cat', stopReason: 'eos', metrics: { prefillMs: 11.5, tokens: 3 } },
  ] as TraceEvent[];
}

describe('JsonlSink and readTrace', () => {
  it('round-trips events; typed arrays come back as plain arrays', async () => {
    const file = path.join(tempDir('trace'), 'nested', 'run.jsonl');
    const sink = new trace.JsonlSink(file, { truncate: true });
    const events = syntheticRun();
    const salience = {
      run: RUN,
      t: 7,
      type: 'salience',
      turn: 0,
      image: 0,
      source: 'cls',
      grid: { rows: 2, cols: 2 },
      leading: 0,
      scores: new Float32Array([0.5, 0.25, 0.125, 0.125]),
    } as unknown as TraceEvent;
    const kept = { run: RUN, t: 7.5, type: 'kept', turn: 0, image: 0, total: 4, kept: Int32Array.from([0, 2]) } as unknown as TraceEvent;
    const all = [...events, salience, kept];
    const tracer = new trace.Tracer([sink], RUN);
    expect(tracer.enabled).toBe(true);
    for (const e of all) sink.write(e);
    await tracer.close();
    expect(sink.dropped).toBe(0);
    expect(sink.written).toBe(all.length);

    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(all.length);
    const back = await trace.readTrace(file);
    const plain = JSON.parse(JSON.stringify(events)) as unknown[];
    expect(back.slice(0, events.length)).toEqual(plain);
    const s = back[events.length] as Extract<TraceEvent, { type: 'salience' }>;
    expect(Array.isArray(s.scores)).toBe(true);
    expect(s.scores).toEqual([0.5, 0.25, 0.125, 0.125]);
    const k = back[events.length + 1] as Extract<TraceEvent, { type: 'kept' }>;
    expect(Array.isArray(k.kept)).toBe(true);
    expect(k.kept).toEqual([0, 2]);
  });

  it('appends by default and writes through a Tracer', async () => {
    const file = path.join(tempDir('trace'), 'append.jsonl');
    for (const run of ['r1', 'r2']) {
      const sink = new trace.JsonlSink(file);
      const tracer = new trace.Tracer([sink], run);
      tracer.emit({ type: 'turn.start', turn: 0, text: 'hi', images: 0 });
      tracer.emit({ type: 'token', turn: 0, step: 0, id: 1, text: 'x' });
      await tracer.close();
    }
    const back = await trace.readTrace(file);
    expect(back.map((e) => `${e.run}:${e.type}`)).toEqual(['r1:turn.start', 'r1:token', 'r2:turn.start', 'r2:token']);
    expect(back.every((e) => typeof e.t === 'number' && e.t >= 0)).toBe(true);
  });

  it('never throws from write: a failed stream counts dropped events and close still resolves', async () => {
    const dir = tempDir('trace');
    fs.writeFileSync(path.join(dir, 'not-a-dir'), '');
    const sink = new trace.JsonlSink(path.join(dir, 'not-a-dir', 'run.jsonl'));
    const events = syntheticRun();
    for (const e of events) expect(() => sink.write(e)).not.toThrow();
    await sink.close();
    expect(sink.error).toBeInstanceOf(Error);
    expect(sink.dropped).toBe(events.length);
    expect(() => sink.write(events[0]!)).not.toThrow();
    expect(sink.dropped).toBe(events.length + 1);
  });

  it('drops (and counts) an event that cannot be serialised, keeping the rest', async () => {
    const file = path.join(tempDir('trace'), 'cyclic.jsonl');
    const sink = new trace.JsonlSink(file);
    const cyclic: Record<string, unknown> = { run: RUN, t: 1, type: 'turn.start', turn: 0, text: 'x', images: 0 };
    cyclic.self = cyclic;
    sink.write(syntheticRun()[1]!);
    sink.write(cyclic as unknown as TraceEvent);
    await sink.close();
    expect(sink.dropped).toBe(1);
    expect(await trace.readTrace(file)).toHaveLength(1);
  });

  it.each([
    ['bad JSON', '{"run":"r","t":1,"type":"token"', /not valid JSON/],
    ['an unknown type', '{"run":"r","t":1,"type":"tokens"}', /unknown event type "tokens"/],
    ['a wrong run.start version', '{"run":"r","t":0,"type":"run.start","version":99}', /schema version 99/],
    [
      'a run.start label that is not text',
      '{"run":"r","t":0,"type":"run.start","version":1,"policy":{"method":"dense"},"label":7}',
      /'label' must be a string/,
    ],
  ])('rejects %s with a typed error naming the file and line', async (_what, badLine, message) => {
    const file = path.join(tempDir('trace'), 'bad.jsonl');
    const good = syntheticRun()
      .slice(0, 3)
      .map((e) => JSON.stringify(e));
    // Line 5: three good lines, a blank line (skipped but counted), then the bad one.
    fs.writeFileSync(file, [...good, '', badLine, JSON.stringify(syntheticRun()[3])].join('\n') + '\n');
    const err = await trace.readTrace(file).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(engine.SparseVilaError);
    const e = err as InstanceType<typeof engine.SparseVilaError>;
    expect(e.code).toBe('OPTION_INVALID');
    expect(e.message).toContain(file);
    expect(e.message).toContain('line 5');
    expect(e.message).toMatch(message);
    expect(e.subject).toBe(`${file}:5`);
  });
});

const byName = (events: ChromeTraceEvent[], name: string, ph?: string): ChromeTraceEvent[] =>
  events.filter((e) => e.name === name && (ph === undefined || e.ph === ph));

describe('Chrome trace', () => {
  it('turns a run into complete, instant and metadata events with µs timings', () => {
    const events = syntheticRun();
    const chrome = trace.toChromeTrace(events);
    expect(chrome.displayTimeUnit).toBe('ms');
    expect(chrome.metadata.runs).toEqual([{ run: RUN, pid: 1, model: '/models/tiny', policy: 'dense' }]);
    const te = chrome.traceEvents;
    expect(new Set(te.map((e) => e.pid))).toEqual(new Set([1]));

    // One complete event per span, on the stages thread, name = stage, ts/dur in µs, args = detail (+ turn, counted from 1).
    const spans = events.filter((e): e is Extract<TraceEvent, { type: 'span' }> => e.type === 'span');
    const stageEvents = te.filter((e) => e.ph === 'X' && e.cat === 'stage');
    expect(stageEvents).toHaveLength(spans.length);
    const stagesTid = stageEvents[0]!.tid;
    for (const s of spans) {
      const [x] = stageEvents.filter((e) => e.name === s.stage);
      expect(x).toMatchObject({ ph: 'X', ts: s.start * 1000, dur: s.duration * 1000, tid: stagesTid, args: { turn: 1, ...s.detail } });
    }
    expect(byName(te, 'encode', 'X')[0]).toMatchObject({ ts: 3000, dur: 5250 });

    // Decode steps: complete events on their own track, ending at the event's time.
    const steps = byName(te, 'decode.step', 'X');
    expect(steps).toHaveLength(3);
    expect(new Set(steps.map((e) => e.tid)).size).toBe(1);
    expect(steps[0]!.tid).not.toBe(stagesTid);
    expect(steps[0]).toMatchObject({ ts: 20500, dur: 1500, args: { step: 0, attended: 41, visualAttended: 3 } });
    expect(steps[1]).toMatchObject({ ts: 22250, dur: 1250 });

    // Instants with compact args.
    for (const name of ['token', 'turn.start', 'turn.end', 'kept', 'retrieval']) {
      const inst = byName(te, name);
      expect(inst.length, name).toBeGreaterThan(0);
      for (const e of inst) expect(e.ph, name).toBe('i');
    }
    expect(byName(te, 'token').map((e) => e.ts)).toEqual([22100, 23600, 25100]);
    expect(byName(te, 'token')[1]!.args).toMatchObject({ text: ' cat', id: 43, step: 1 });
    expect(byName(te, 'kept')[0]!.args).toEqual({ turn: 1, image: 1, total: 16, kept: 8 });
    expect(byName(te, 'retrieval')[0]!.args).toEqual({ turn: 1, layer: 1, candidates: 8, retrieved: 3 });
    expect(byName(te, 'turn.end')[0]!.args).toMatchObject({ stopReason: 'eos', answer: 'A cat', prefillMs: 11.5, tokens: 3 });
    for (const e of te) for (const v of Object.values(e.args ?? {})) expect(Array.isArray(v)).toBe(false);

    // One process per run, threads named by metadata events.
    const procs = byName(te, 'process_name', 'M');
    expect(procs).toHaveLength(1);
    expect(procs[0]!.args!.name).toContain(RUN);
    const threads = new Map(byName(te, 'thread_name', 'M').map((e) => [e.tid, e.args!.name]));
    expect(threads.get(stagesTid)).toBe('stages');
    expect(threads.get(steps[0]!.tid)).toBe('decode steps');

    // Valid JSON for the viewers.
    expect(JSON.parse(JSON.stringify(chrome))).toEqual(chrome);
  });

  it("names a run's policy by the label the engine wrote, else by its method", () => {
    const labelled = syntheticRun('a').map((e) =>
      e.type === 'run.start' ? { ...e, policy: { method: 'fastv', layer: 2, dropRatio: 0.5 }, label: 'FastV K=2 R=50%' } : e,
    );
    const chrome = trace.toChromeTrace([...labelled, ...syntheticRun('b')]);
    expect(chrome.metadata.runs.map((r) => r.policy)).toEqual(['FastV K=2 R=50%', 'dense']);
  });

  it('puts each run on its own process', () => {
    const chrome = trace.toChromeTrace([...syntheticRun('a'), ...syntheticRun('b')]);
    expect(chrome.metadata.runs.map((r) => [r.run, r.pid])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(byName(chrome.traceEvents, 'process_name', 'M')).toHaveLength(2);
    expect(chrome.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'stage' && e.pid === 2)).toHaveLength(4);
  });

  /** Shaped like onnxruntime's enableProfiling output: ts in µs since ORT's profiler started. */
  const ortProfile = (): ChromeTraceEvent[] => [
    { cat: 'Session', pid: 4242, tid: 4242, dur: 381, ts: 3, ph: 'X', name: 'model_loading_uri', args: {} },
    { cat: 'Session', pid: 4242, tid: 4242, dur: 7234, ts: 404, ph: 'X', name: 'session_initialization', args: {} },
    { cat: 'Session', pid: 4242, tid: 4242, dur: 9000, ts: 50000, ph: 'X', name: 'model_run', args: {} },
    { cat: 'Node', pid: 4242, tid: 4242, dur: 52, ts: 50016, ph: 'X', name: '/model/MatMul_kernel_time', args: { op_name: 'MatMul' } },
    { cat: 'Session', pid: 4242, tid: 4242, dur: 900, ts: 60000, ph: 'X', name: 'model_run', args: {} },
  ];

  it('merges an ORT profile on its own pid, aligning its first run with the first prefill span', () => {
    const dir = tempDir('trace');
    const file = path.join(dir, 'onnxruntime_profile.json');
    // ORT writes one event per line with a trailing newline; accept its file as is.
    fs.writeFileSync(
      file,
      '[\n' +
        ortProfile()
          .map((e) => JSON.stringify(e))
          .join(',\n') +
        '\n]\n',
    );
    const chrome = trace.toChromeTrace(syntheticRun(), { ortProfiles: [file] });
    const [info] = chrome.metadata.ortProfiles;
    // First model_run (ts 50000 µs) lands at the prefill start (8.5 ms): offset = 8.5 − 50 ms.
    expect(info!.offsetMs).toBeCloseTo(8.5 - 50, 9);
    expect(info!.source).toBe(file);
    const runPids = new Set(chrome.metadata.runs.map((r) => r.pid));
    expect(runPids.has(info!.pid)).toBe(false);
    const ort = chrome.traceEvents.filter((e) => e.pid === info!.pid);
    expect(byName(ort, 'process_name', 'M')[0]!.args!.name).toContain('onnxruntime_profile.json');
    const timed = ort.filter((e) => e.ph === 'X');
    expect(timed).toHaveLength(5);
    const src = ortProfile();
    timed.forEach((e, i) => {
      expect(e.ts).toBeCloseTo(src[i]!.ts! + info!.offsetMs * 1000, 6);
      expect(e.dur).toBe(src[i]!.dur);
    });
    expect(byName(ort, 'model_run')[0]!.ts).toBeCloseTo(8500, 6);
    // No ORT event left on its original pid, and no run event moved.
    expect(chrome.traceEvents.some((e) => e.pid === 4242)).toBe(false);
    expect(byName(chrome.traceEvents, 'prefill', 'X')[0]).toMatchObject({ pid: 1, ts: 8500 });
  });

  it('can align the first ORT event instead, or take an explicit offset', () => {
    const first = trace.toChromeTrace(syntheticRun(), { ortProfiles: [{ events: ortProfile(), anchor: 'first-event' }] });
    expect(first.metadata.ortProfiles[0]!.offsetMs).toBeCloseTo(8.5 - 0.003, 9);
    expect(byName(first.traceEvents, 'model_loading_uri')[0]!.ts).toBeCloseTo(8500, 6);

    const given = trace.toChromeTrace(syntheticRun(), {
      ortProfiles: [
        { events: ortProfile(), offsetMs: 2 },
        { events: ortProfile(), alignTo: 'encode' },
      ],
    });
    const [a, b] = given.metadata.ortProfiles;
    expect(a!.offsetMs).toBe(2);
    expect(byName(given.traceEvents, 'model_run').filter((e) => e.pid === a!.pid)[0]!.ts).toBe(52000);
    expect(b!.pid).not.toBe(a!.pid);
    expect(b!.offsetMs).toBeCloseTo(3 - 50, 9);
  });

  it('rejects an ORT profile that is not JSON with a typed error naming the file', () => {
    const file = path.join(tempDir('trace'), 'broken.json');
    fs.writeFileSync(file, '[{"ph": "X", "ts": 1');
    expect(() => trace.toChromeTrace(syntheticRun(), { ortProfiles: [file] })).toThrow(engine.SparseVilaError);
    expect(() => trace.toChromeTrace(syntheticRun(), { ortProfiles: [file] })).toThrow(file);
  });

  it('ChromeTraceSink writes the trace file on close', async () => {
    const file = path.join(tempDir('trace'), 'out', 'run.trace.json');
    const sink = new trace.ChromeTraceSink(file);
    sink.addOrtProfile({ events: ortProfile(), name: 'decoder' });
    const tracer = new trace.Tracer([sink], RUN);
    for (const e of syntheticRun()) sink.write(e);
    tracer.emit({ type: 'token', turn: 0, step: 3, id: 7, text: '!' });
    await tracer.close();
    const written = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(written.displayTimeUnit).toBe('ms');
    expect(written).toEqual(trace.toChromeTrace(sink.events, { ortProfiles: [{ events: ortProfile(), name: 'decoder' }] }));
    expect(written.traceEvents.filter((e: ChromeTraceEvent) => e.name === 'token')).toHaveLength(4);
  });
});

describe("an image event's video times (optional)", () => {
  const frame = (extra: Record<string, unknown>) =>
    ({ run: RUN, t: 1, type: 'image', turn: 0, image: 0, width: 32, height: 32, jpeg: 'QUJD', ...extra }) as unknown as TraceEvent;

  it('is read with or without times, and refused when they are not numbers', () => {
    expect(trace.validateEvent(frame({ timestamps: [0.5] }))).toMatchObject({ image: 0, timestamps: [0.5] });
    expect(trace.validateEvent(frame({})).timestamps).toBeUndefined();
    expect(() => trace.validateEvent(frame({ timestamps: ['0.5'] }))).toThrow(/timestamps/);
    expect(trace.decodeBatch(trace.encodeBatch([frame({ timestamps: [0, 2] })]))[0]).toMatchObject({ timestamps: [0, 2] });
  });

  it('the Chrome trace shows image index 0 of turn index 0 as image 1 of turn 1, at its time in the video', () => {
    const te = trace.toChromeTrace([...syntheticRun(), frame({ timestamps: [1.5] })]).traceEvents;
    expect(byName(te, 'image')[0]!.args).toEqual({ turn: 1, image: 1, width: 32, height: 32, seconds: 1.5 });
    expect(byName(te, 'turn.start')[0]!.args).toMatchObject({ turn: 1 });
  });
});

describe('Tracer', () => {
  it('with no sinks is disabled and emit does nothing', () => {
    const tracer = new trace.Tracer();
    expect(tracer.enabled).toBe(false);
    const spy = new trace.MemorySink();
    tracer.emit({ type: 'token', turn: 0, step: 0, id: 1, text: 'x' });
    expect(spy.events).toHaveLength(0);
    // Costs nothing: with no sink the payload is never read (no copy, no timestamp), whatever its size.
    const touched: (string | symbol)[] = [];
    const watched = new Proxy(
      { type: 'token', turn: 0, step: 0, id: 1, text: 'x' },
      {
        get: (target, key) => (touched.push(key), Reflect.get(target, key)),
        ownKeys: (target) => (touched.push('ownKeys'), Reflect.ownKeys(target)),
      },
    ) as Parameters<typeof tracer.emit>[0];
    tracer.emit(watched);
    expect(touched).toEqual([]);
    tracer.attach(spy);
    expect(tracer.enabled).toBe(true);
    tracer.emit(watched);
    expect(touched).toContain('ownKeys');
    spy.events.length = 0;
    tracer.emit({ type: 'token', turn: 0, step: 0, id: 1, text: 'x' });
    expect(spy.of('token')).toHaveLength(1);
    expect(spy.events[0]).toMatchObject({ run: tracer.run, type: 'token' });
  });
});
