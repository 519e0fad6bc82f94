/**
 * `npm run bench:engine:quick` (scripts/bench-engine.mjs --quick): llama.cpp runs beside our engine at every context —
 * the same ids, batch, decode steps and threads, as many rounds as ours — and the peer table, written into the
 * engine section of the doc through the bench-doc machinery, puts each measure and ours ÷ llama.cpp side by side.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';
import { tempDir } from './helpers/engine.js';

interface Measures {
  prefillTokensPerSecond: number;
  decodeMsPerToken: number;
  peakRssMiB: number;
  repeats: { prefill: number; decodeSteps: number };
}
interface EngineReport {
  quick: boolean;
  threads: number;
  llm: {
    peer: { engine: string; threads: number; gguf: { file: string; type: string; bytes: number } };
    text: { numLayers: number; numKvHeads: number; headDim: number; hiddenSize: number; vocabSize: number };
    build: { decoderWeightBytes: number };
    decodeSteps: number;
    contexts: (Measures & {
      tokens: number;
      chunk: number;
      peer: Measures & { context: { contextSize: number; batchSize: number } };
      bandwidth: { ortReduceSumGBs: number; jsSumGBs: number; jsParallelSumGBs: number };
    })[];
  };
  kvPrecision: {
    contexts: {
      tokens: number;
      steps: number;
      bandwidth: { ortReduceSumGBs: number; jsSumGBs: number; jsParallelSumGBs: number };
      precisions: { kvCache: string; weightBytes: number; msPerToken: number; samples: number[] }[];
    }[];
  };
}

describe('bench-engine --quick', () => {
  it('measures llama.cpp beside ours at every context and writes the ours ÷ llama.cpp table into the doc section', async () => {
    const dir = tempDir('bench-engine');
    const out = path.join(dir, 'engine.json');
    const doc = path.join(dir, 'benchmarks.md');
    const { stdout } = await promisify(execFile)('node', ['scripts/bench-engine.mjs', '--quick', '--threads', '1', '--out', out, '--doc', doc], {
      cwd: REPO_ROOT,
      maxBuffer: 1 << 26,
    });
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as EngineReport;
    expect(report.quick).toBe(true);
    expect(report.threads).toBe(1);
    const { peer, contexts } = report.llm;
    expect(peer.engine).toMatch(/^llama\.cpp \(node-llama-cpp [\d.]+'s prebuilt CPU binary/);
    expect(peer.threads).toBe(1);
    expect(peer.gguf.type).toBe('Q4_0');
    expect(fs.statSync(path.join(REPO_ROOT, peer.gguf.file)).size).toBe(peer.gguf.bytes);
    expect(contexts.map((c) => c.tokens)).toEqual([256, 1024]);
    for (const c of contexts) {
      // The same rounds on both sides: as many prefills, as many decode steps, a context that holds them, our chunk as its batch.
      expect(c.peer.repeats).toEqual(c.repeats);
      expect(c.peer.context.contextSize).toBeGreaterThan(c.tokens + c.repeats.decodeSteps / c.repeats.prefill);
      expect(c.peer.context.batchSize).toBe(c.chunk);
      for (const m of [c, c.peer]) {
        expect(m.prefillTokensPerSecond).toBeGreaterThan(0);
        expect(m.decodeMsPerToken).toBeGreaterThan(0);
        expect(m.peakRssMiB).toBeGreaterThan(0);
      }
    }

    const header =
      '| context | prefill tok/s: ours | llama.cpp | ours ÷ llama.cpp | decode ms/token: ours | llama.cpp | ours ÷ llama.cpp | peak RSS MiB: ours | llama.cpp | ours ÷ llama.cpp |';
    const lines = stdout.split('\n');
    const at = lines.indexOf(header);
    expect(at).toBeGreaterThan(0);
    expect(lines[at - 2]).toMatch(/^llama\.cpp .* 1 thread, on the same checkpoint as a Q4_0 GGUF/);
    contexts.forEach((c, i) => {
      const cells = lines[at + 2 + i]!.split('|').map((x) => x.trim());
      expect(cells.length).toBe(header.split('|').length);
      expect(cells[1]).toBe(String(c.tokens));
      expect(cells[4]).toBe(`${(c.prefillTokensPerSecond / c.peer.prefillTokensPerSecond).toFixed(2)}×`);
      expect(cells[7]).toBe(`${(c.decodeMsPerToken / c.peer.decodeMsPerToken).toFixed(2)}×`);
      expect(cells[10]).toBe(`${(c.peakRssMiB / c.peer.peakRssMiB).toFixed(2)}×`);
    });

    // The doc's engine section holds the same table under the run's stamp.
    const section = fs.readFileSync(doc, 'utf8');
    expect(section).toMatch(/<!-- bench:engine:start -->\n[^]*- command: `node scripts\/bench-engine\.mjs --quick --threads 1 /);
    expect(section).toContain(`### llama.cpp beside us\n`);
    expect(section).toContain(`${header}\n`);

    // Decode against the memory-bandwidth bound: each engine's bytes per step (its weights, its KV rows: fp32 ours,
    // f16 llama.cpp's) at the bandwidth measured right after that context's rounds.
    const { text: t, build, decodeSteps } = report.llm;
    expect(build.decoderWeightBytes).toBeGreaterThan(0);
    const boundHeader = lines.findIndex((l) => l.startsWith('| context | bandwidth GB/s: ORT / JS / JS all cores |'));
    expect(lines[boundHeader - 4]).toBe('### Decode against memory bandwidth');
    contexts.forEach((c, i) => {
      const { ortReduceSumGBs, jsSumGBs, jsParallelSumGBs } = c.bandwidth;
      const gbs = Math.max(ortReduceSumGBs, jsSumGBs, jsParallelSumGBs);
      expect(Math.min(ortReduceSumGBs, jsSumGBs, jsParallelSumGBs)).toBeGreaterThan(0);
      const cells = lines[boundHeader + 2 + i]!.split('|').map((x) => x.trim());
      const rows = c.tokens + (decodeSteps + 1) / 2;
      const bytes = (weights: number, element: number) =>
        weights + t.numLayers * 2 * t.numKvHeads * t.headDim * element * rows + 4 * (t.hiddenSize + t.vocabSize);
      const boundMs = (b: number) => b / (gbs * 1e6);
      expect(Number(cells[3])).toBe(Math.round(rows));
      expect(cells[10]).toBe(`${(c.decodeMsPerToken / boundMs(bytes(build.decoderWeightBytes, 4))).toFixed(2)}×`);
      expect(cells[11]).toBe(`${(c.peer.decodeMsPerToken / boundMs(bytes(peer.gguf.bytes, 2))).toFixed(2)}×`);
    });

    // The KV cache precision table: the same decoder with an fp32 and an fp16 cache at each context, as many steps
    // each, each against its own bytes (half the K and V under fp16).
    const kvHeader = lines.findIndex((l) => l.startsWith('| context | bandwidth GB/s | fp32 KV ms/token | fp16 KV ms/token |'));
    expect(lines[kvHeader - 4]).toBe('### KV cache precision');
    expect(report.kvPrecision.contexts.map((c) => c.tokens)).toEqual([256, 1024]);
    report.kvPrecision.contexts.forEach((c, i) => {
      const [f32, f16] = c.precisions;
      expect([f32!.kvCache, f16!.kvCache]).toEqual(['fp32', 'fp16']);
      for (const p of c.precisions) expect(p.samples.length).toBe(decodeSteps);
      const gbs = Math.max(c.bandwidth.ortReduceSumGBs, c.bandwidth.jsSumGBs, c.bandwidth.jsParallelSumGBs);
      const rows = c.tokens + (c.steps + 3) / 2;
      const bound = (p: typeof f32, element: number) =>
        (p!.weightBytes + t.numLayers * 2 * t.numKvHeads * t.headDim * element * rows + 4 * (t.hiddenSize + t.vocabSize)) / (gbs * 1e6);
      const cells = lines[kvHeader + 2 + i]!.split('|').map((x) => x.trim());
      expect(cells[1]).toBe(String(c.tokens));
      expect(cells[5]).toBe(`${(f16!.msPerToken / f32!.msPerToken).toFixed(2)}×`);
      expect(cells[7]).toBe(`${(f32!.msPerToken / bound(f32, 4)).toFixed(2)}× / ${(f16!.msPerToken / bound(f16, 2)).toFixed(2)}×`);
    });
    expect(section).toContain('### KV cache precision\n');
  }, 300_000);
});
