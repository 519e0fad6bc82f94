import { describe, expect, it } from 'vitest';
import { InputError } from '../dist/src/errors.js';
import { TRACE_SCHEMA_VERSION, type TraceEvent } from '../dist/src/trace/index.js';
import { base64ToBytes, bytesToBase64, decodeBatch, encodeBatch } from '../dist/src/trace/wire.js';

const f32 = (x: number): number => Math.fround(x);

function sampleEvents(): TraceEvent[] {
  const run = 'r1';
  return [
    {
      run,
      t: 0,
      type: 'run.start',
      version: TRACE_SCHEMA_VERSION,
      model: { dir: '/m', vision: 'siglip', text: 'qwen2', layers: 2, heads: 4, kvHeads: 2, imageTokens: 16 },
      policy: { method: 'dense' },
      options: { maxNewTokens: 3 },
    },
    { run, t: 1, type: 'salience', turn: 0, image: 0, source: 'cls', grid: { rows: 2, cols: 3 }, leading: 0, scores: [0.1, 0.25, -3.5, 1e-7, 0, 42.42] },
    { run, t: 2, type: 'kept', turn: 0, image: 0, total: 6, kept: [0, 2, 5] },
    {
      run,
      t: 3,
      type: 'retrieval',
      turn: 0,
      layer: 1,
      candidates: [
        { image: 0, token: 0 },
        { image: 0, token: 2 },
        { image: 1, token: 5 },
      ],
      scores: [0.3, 0.2, 0.5],
      retrieved: [2, 0],
    },
    { run, t: 4, type: 'token', turn: 0, step: 0, id: 7, text: 'hé"\n' },
    { run, t: 5, type: 'kept', turn: 0, image: 1, total: 0, kept: [] },
  ] as TraceEvent[];
}

describe('wire format', () => {
  it('base64 matches Node for every remainder length', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      const b64 = bytesToBase64(bytes);
      expect(b64).toBe(Buffer.from(bytes).toString('base64'));
      expect(Array.from(base64ToBytes(b64))).toEqual(Array.from(bytes));
    }
    const big = Uint8Array.from({ length: 100_001 }, (_, i) => (i * 7) & 255);
    expect(bytesToBase64(big)).toBe(Buffer.from(big).toString('base64'));
  });

  it('round-trips events (floats at Float32 precision) and accepts plain arrays too', () => {
    const events = sampleEvents();
    const text = encodeBatch(events);
    expect(text).toContain('"$f32"');
    expect(text).toContain('"$i32"');
    expect(text).toContain('"$pairs"');
    const back = decodeBatch(text);
    const expected = structuredClone(events) as any[];
    expected[1].scores = expected[1].scores.map(f32);
    expected[3].scores = expected[3].scores.map(f32);
    expect(back).toEqual(expected);
    // Unpacked batches are valid wire text as well.
    expect(decodeBatch(JSON.stringify({ v: 1, events }))).toEqual(events);
  });

  it("run.start's policy label is optional: kept when there, absent when the writer had none", () => {
    const [start] = sampleEvents();
    const labelled = { ...start!, label: 'dense' } as TraceEvent;
    expect(decodeBatch(encodeBatch([labelled]))).toEqual([labelled]);
    expect(decodeBatch(encodeBatch([start!]))[0]).not.toHaveProperty('label');
  });

  it('packs typed arrays', () => {
    const e = { ...sampleEvents()[1], scores: Float32Array.from([1.5, 2.5]) } as unknown as TraceEvent;
    expect((decodeBatch(encodeBatch([e]))[0] as any).scores).toEqual([1.5, 2.5]);
  });

  it('is several times smaller than JSON for a 4096-token salience event', () => {
    let seed = 1;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const scores = Array.from({ length: 4096 }, () => rand() * 1e-3);
    const event = { run: 'r', t: 1.5, type: 'salience', turn: 0, image: 0, source: 'summary', grid: { rows: 64, cols: 64 }, leading: 0, scores } as TraceEvent;
    const packed = encodeBatch([event]).length;
    const json = JSON.stringify({ v: 1, events: [event] }).length;
    expect(json / packed).toBeGreaterThan(3);
    const back = decodeBatch(encodeBatch([event]))[0] as Extract<TraceEvent, { type: 'salience' }>;
    expect(back.scores).toEqual(scores.map(f32));
  });

  it('rejects bad batches with InputError naming the problem', () => {
    const bad = (text: string, pattern: RegExp): void => {
      let err: unknown;
      try {
        decodeBatch(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).code).toBe('OPTION_INVALID');
      expect((err as Error).message).toMatch(pattern);
    };
    bad('{not json', /not valid JSON/);
    bad('[]', /expected a JSON object/);
    bad('{"v":2,"events":[]}', /wire version 2/);
    bad('{"v":1}', /'events' must be an array/);
    bad('{"v":1,"events":[3]}', /event 0: expected an object/);
    bad('{"v":1,"events":[{"type":"nope","run":"r","t":0}]}', /unknown event type "nope"/);
    bad('{"v":1,"events":[{"type":"token","t":0}]}', /no string 'run'/);
    bad('{"v":1,"events":[{"type":"token","run":"r","t":"0"}]}', /finite number 't'/);
    bad('{"v":1,"events":[{"type":"run.start","run":"r","t":0,"version":99}]}', /schema version 99/);
    bad('{"v":1,"events":[{"type":"run.start","run":"r","t":0,"version":1,"policy":{"method":"dense"},"label":null}]}', /'label' must be a string, got null/);
    bad('{"v":1,"events":[{"type":"kept","run":"r","t":0,"kept":{"$i32":"AAA"}}]}', /kept\.kept: base64 length/);
    bad('{"v":1,"events":[{"type":"kept","run":"r","t":0,"kept":{"$i32":"AA=="}}]}', /not a multiple of 4/);
    bad('{"v":1,"events":[{"type":"salience","run":"r","t":0,"scores":{"$f32":"!!!!"}}]}', /invalid base64/);
    bad('{"v":1,"events":[{"type":"salience","run":"r","t":0,"scores":"x"}]}', /salience\.scores: expected an array/);
  });
});
