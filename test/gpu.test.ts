/**
 * The GPU tier: the engine on onnxruntime-node's WebGPU provider. With no GPU here (nor in CI) it runs on
 * Mesa's lavapipe, a software Vulkan adapter (scripts/system-deps.sh installs it from Debian backports): its
 * speed means nothing, its numbers do. On `webgpu`, the reference fixtures give transformers' numbers, and the
 * engine's equivalences hold as they do on the CPU — chunked prefill equals one-shot, incremental decode equals
 * recomputation, a retrieval decode equals a masked dense decode, keep / retrieve 100% equals dense — and int4
 * (MatMulNBits) stays as close to fp32 as on the CPU.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_FIXTURE, FIXTURES_DIR, SIGLIP_FIXTURE } from './helpers/checkpoint-writer.js';
import { engine, maxAbsDiff, tempDir } from './helpers/engine.js';
import { noisePng } from './helpers/images.js';
import { openCheckpoint } from '../dist/src/families/registry.js';
import { expectIncrementalEqualsRecompute, expectRetrievalEqualsMaskedDense } from './helpers/qwen-equivalence.js';
import { writeTinyQwenVL } from '../dist/src/testing.js';
import { foldEvents } from '../dist/profiler-ui/web/data/run-model.js';

type Model = Awaited<ReturnType<typeof engine.loadModel>>;
/** The tier's provider: webgpu (lavapipe here and in CI); scripts/device-check.sh runs it on cuda. */
const PROVIDER = (process.env.SPARSEVILA_GPU_PROVIDER ?? 'webgpu') as 'webgpu' | 'cuda';
const WEBGPU = { provider: PROVIDER, threads: 1 };
/** How onnxruntime's profile names the provider. */
const PROVIDER_NAME = { webgpu: 'WebGpuExecutionProvider', cuda: 'CUDAExecutionProvider' }[PROVIDER];

interface Expected {
  question: string;
  input_ids: number[];
  last_logits: number[];
  greedy_ids: number[];
}

describe.each([
  ['llava-clip-llama-tiny', CLIP_FIXTURE],
  ['llava-siglip-qwen2-tiny', SIGLIP_FIXTURE],
  ['qwen2_5_vl-tiny', path.join(FIXTURES_DIR, 'qwen2_5_vl-tiny')],
  ['qwen2_vl-tiny', path.join(FIXTURES_DIR, 'qwen2_vl-tiny')],
])(`on ${PROVIDER}, %s matches transformers`, (_name, dir) => {
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  let model: Model;
  beforeAll(async () => {
    model = await engine.loadModel(dir, { ...WEBGPU, cacheDir: tempDir('gpu-graphs') });
  });
  afterAll(() => model?.close());

  it('gives the prompt ids, last logits within 1e-3 and the greedy ids', async () => {
    const answer = await model.chat({ maxNewTokens: expected.greedy_ids.length }).ask({ images: [path.join(dir, 'image.png')], text: expected.question });
    expect(answer.promptTokenIds).toEqual(expected.input_ids);
    expect(maxAbsDiff(answer.lastPromptLogits, expected.last_logits)).toBeLessThan(1e-3);
    expect(answer.tokenIds).toEqual(expected.greedy_ids);
  });
});

describe(`on ${PROVIDER}, fp16 computes in half`, () => {
  it("keeps every fixture's greedy ids, with last-prompt logits within 0.3 of transformers' float32 numbers, and halves the KV bytes", async () => {
    for (const dir of [CLIP_FIXTURE, SIGLIP_FIXTURE, path.join(FIXTURES_DIR, 'qwen2_5_vl-tiny'), path.join(FIXTURES_DIR, 'qwen2_vl-tiny')]) {
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
      const ask = async (precision: 'fp32' | 'fp16') => {
        const model = await engine.loadModel(dir, { ...WEBGPU, precision, cacheDir: tempDir('gpu-graphs') });
        try {
          return await model.chat({ maxNewTokens: expected.greedy_ids.length }).ask({ images: [path.join(dir, 'image.png')], text: expected.question });
        } finally {
          await model.close();
        }
      };
      const [full, half] = [await ask('fp32'), await ask('fp16')];
      const error = maxAbsDiff(half.lastPromptLogits, expected.last_logits);
      console.log(`${path.basename(dir)} fp16: max |Δ last logits| ${error.toExponential(2)}`);
      expect(half.tokenIds, path.basename(dir)).toEqual(expected.greedy_ids);
      expect(error).toBeGreaterThan(0);
      expect(error).toBeLessThan(0.3);
      // The past uploaded once a turn: keys and values in half, the bias in float32.
      const ck = openCheckpoint(dir);
      const t = ck.spec.text;
      ck.close();
      const rows = full.promptTokenIds.length;
      expect(full.timings.deviceTransfer!.pastUploadBytes - half.timings.deviceTransfer!.pastUploadBytes).toBe(
        rows * t.numLayers * 2 * t.numKvHeads * t.headDim * 2,
      );
    }
  });
});

describe(`on ${PROVIDER}, operator placement`, () => {
  /** The operators each provider ran in one int4 SparseVILA turn of the Qwen2.5-VL fixture (ORT's own profile). */
  async function placement(): Promise<Map<string, Set<string>>> {
    const dir = path.join(FIXTURES_DIR, 'qwen2_5_vl-tiny');
    const prefix = path.join(tempDir('gpu-profile'), 'turn');
    const model = await engine.loadModel(dir, { ...WEBGPU, precision: 'int4', blockSize: 16, cacheDir: tempDir('gpu-graphs'), ortProfilePrefix: prefix });
    let files: string[];
    try {
      const policy = { method: 'sparsevila', keep: { budget: { ratio: 0.5 } }, retrieve: { budget: { ratio: 0.5 } } };
      await model.chat({ policy, maxNewTokens: 3 }).ask({ images: [path.join(dir, 'image.png')], text: 'What is shown?' });
      files = await model.runtime.endProfiling();
    } finally {
      await model.close();
    }
    const byProvider = new Map<string, Set<string>>();
    for (const f of files) {
      for (const e of JSON.parse(fs.readFileSync(f, 'utf8')) as { cat: string; name: string; args?: { op_name?: string; provider?: string } }[]) {
        if (e.cat !== 'Node' || !e.args?.op_name || !e.name.endsWith('_kernel_time')) continue;
        const provider = e.args.provider!;
        if (!byProvider.has(provider)) byProvider.set(provider, new Set());
        byProvider.get(provider)!.add(e.args.op_name);
      }
    }
    return byProvider;
  }

  it('runs every heavy operator on the GPU; the CPU keeps only shape arithmetic (the README lists it)', async () => {
    const ops = await placement();
    const gpu = ops.get(PROVIDER_NAME) ?? new Set();
    const cpu = ops.get('CPUExecutionProvider') ?? new Set();
    console.log(`${PROVIDER}: ${[...gpu].sort().join(' ')}\ncpu fallbacks: ${[...cpu].sort().join(' ')}`);
    for (const heavy of ['MatMul', 'MatMulNBits', 'Gemm', 'Softmax', 'Exp', 'ReduceSum', 'SimplifiedLayerNormalization', 'Gather']) {
      expect(gpu.has(heavy), `${heavy} on the GPU`).toBe(true);
      expect(cpu.has(heavy), `${heavy} not on the CPU`).toBe(false);
    }
    // No com.microsoft CPU fusion in a GPU graph, and what stays on the CPU is shape arithmetic ORT places there.
    expect(cpu.has('FusedMatMul')).toBe(false);
    expect([...cpu].filter((op) => !['Cast', 'Concat', 'Equal', 'Shape', 'Slice', 'Squeeze', 'Unsqueeze', 'Reshape'].includes(op))).toEqual([]);
  });
});

describe(`on ${PROVIDER}, a written Qwen2.5-VL checkpoint`, () => {
  let model: Model;
  let images: string[];
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('gpu-qwen');
    writeTinyQwenVL(dir, { version: '2.5', seed: 5, std: 0.2, maxPixels: 112 * 112, maxPositionEmbeddings: 16384 });
    const pics = tempDir('gpu-images');
    images = await Promise.all([noisePng(path.join(pics, 'a.png'), 112, 56, 1), noisePng(path.join(pics, 'b.png'), 56, 84, 2)]);
    model = await engine.loadModel(dir, { ...WEBGPU, cacheDir: tempDir('gpu-graphs') });
  });
  afterAll(() => model?.close());

  it('chunked prefill equals one-shot, and incremental decode equals recomputing the sequence', async () => {
    const ask = (chunk: number) => model.chat({ maxNewTokens: 4, prefillChunk: chunk }).ask({ images, text: 'Describe both.' });
    const [whole, chunked] = [await ask(512), await ask(5)];
    expect(maxAbsDiff(chunked.lastPromptLogits, whole.lastPromptLogits)).toBeLessThan(1e-4);
    expect(chunked.tokenIds).toEqual(whole.tokenIds);
    await expectIncrementalEqualsRecompute(model, images, 'Describe both.');
  });

  it('keep 100% and retrieve 100% reproduce dense', async () => {
    const ask = (policy: object) => model.chat({ policy, maxNewTokens: 4 }).ask({ images, text: 'What differs?' });
    const dense = await ask({ method: 'dense' });
    const full = await ask({ method: 'sparsevila', keep: { budget: { ratio: 1 } }, retrieve: { budget: { ratio: 1 } } });
    expect(full.tokenIds).toEqual(dense.tokenIds);
    expect(maxAbsDiff(full.lastPromptLogits, dense.lastPromptLogits)).toBeLessThan(1e-4);
  });

  it('a retrieval decode equals a dense decode masked to the same per-layer subsets', async () => {
    await expectRetrievalEqualsMaskedDense(model, images, 'Where is the bright patch?');
  });

  it('keeps the past on the device while decoding: a step moves the same bytes at 1k and 8k cached tokens — its id, positions and biases up, its logits down', async () => {
    const t = model.spec.text;
    const decode = async (tokens: number) => {
      const chat = model.chat({ maxNewTokens: 4, minNewTokens: 4, prefillChunk: 1024 });
      const answer = await chat.ask({ text: 'a'.repeat(tokens) });
      return { transfer: answer.timings.deviceTransfer!, cached: answer.promptTokenIds.length };
    };
    const [short, long] = [await decode(1000), await decode(8000)];
    expect(long.cached).toBeGreaterThan(8000);
    expect(long.transfer.hostToDeviceBytesPerStep).toBe(short.transfer.hostToDeviceBytesPerStep);
    expect(long.transfer.deviceToHostBytesPerStep).toBe(short.transfer.deviceToHostBytesPerStep);
    // Up: the token id, its three M-RoPE positions, a new-column bias per layer (its embedding stays on the device).
    expect(short.transfer.hostToDeviceBytesPerStep).toBe(8 + 3 * 8 + t.numLayers * 4);
    // Down: its logits. Its new KV rows stay on the device until the host needs them (the next turn's prefill).
    expect(short.transfer.deviceToHostBytesPerStep).toBe(t.vocabSize * 4);
    // Once a turn: the first step uploads the past the prefill left on the host, keys, values and bias of every row.
    const kvRow = t.numLayers * (2 * t.numKvHeads * t.headDim * 4 + 4);
    expect(short.transfer.pastUploadBytes).toBe(kvRow * short.cached);
    expect(long.transfer.pastUploadBytes).toBe(kvRow * long.cached);
  });

  it('a three-turn chat matches the CPU turn by turn: rows decoded on the device reach the host cache before the next turn reads it', async () => {
    const turns = [{ images, text: 'What is this?' }, { text: 'And then?' }, { images: images.slice(0, 1), text: 'Again?' }];
    const run = async (m: Model) => {
      const chat = m.chat({
        maxNewTokens: 5,
        minNewTokens: 5,
        policy: { method: 'sparsevila', keep: { budget: { ratio: 0.75 } }, retrieve: { budget: { ratio: 0.5 } } },
      });
      const answers = [];
      for (const t of turns) answers.push(await chat.ask(t));
      return answers;
    };
    const cpu = await engine.loadModel(dir, { threads: 1, cacheDir: tempDir('gpu-graphs') });
    try {
      const [onCpu, onGpu] = [await run(cpu), await run(model)];
      onGpu.forEach((a, i) => {
        expect(a.timings.cachedTokens, `turn ${i + 1}`).toBe(onCpu[i]!.timings.cachedTokens);
        expect(a.tokenIds, `turn ${i + 1}`).toEqual(onCpu[i]!.tokenIds);
        expect(maxAbsDiff(a.lastPromptLogits, onCpu[i]!.lastPromptLogits), `turn ${i + 1}`).toBeLessThan(1e-3);
      });
    } finally {
      await cpu.close();
    }
  });

  it("traces the provider in the run header and each decode step's bytes, which the profiler's fold keeps", async () => {
    const sink = new engine.MemorySink();
    const answer = await model.chat({ maxNewTokens: 3, tracer: new engine.Tracer([sink]) }).ask({ text: 'Hi.' });
    const start = sink.events.find((e) => e.type === 'run.start') as { model: { provider?: string; device?: string } };
    expect(start.model.provider).toBe(PROVIDER);
    // No GPU device node here: the adapter can only be lavapipe, and the header says so.
    if (PROVIDER === 'webgpu' && !fs.existsSync('/dev/dri')) expect(start.model.device).toMatch(/lavapipe/);
    const steps = sink.events.filter((e) => e.type === 'decode.step') as { hostToDeviceBytes?: number; deviceToHostBytes?: number }[];
    expect(steps).toHaveLength(2);
    expect(steps[1]!.hostToDeviceBytes).toBe(answer.timings.deviceTransfer!.hostToDeviceBytesPerStep);
    expect(steps[0]!.hostToDeviceBytes! - steps[1]!.hostToDeviceBytes!).toBe(answer.timings.deviceTransfer!.pastUploadBytes);
    const runs = foldEvents(sink.events);
    const turn = [...[...runs.values()][0]!.turns.values()][0]!;
    expect(turn.steps.map((s) => s.hostToDeviceBytes)).toEqual(steps.map((s) => s.hostToDeviceBytes));
  });

  it(`int4 (MatMulNBits) on ${PROVIDER} stays as close to fp32 as int4 on the CPU`, async () => {
    const logits = async (provider: 'cpu' | typeof PROVIDER, precision: 'fp32' | 'int4') => {
      const m = await engine.loadModel(dir, { provider, threads: 1, precision, cacheDir: tempDir('gpu-graphs') });
      try {
        return (await m.chat({ maxNewTokens: 1 }).ask({ images, text: 'Describe both.' })).lastPromptLogits;
      } finally {
        await m.close();
      }
    };
    const fp32 = await logits('cpu', 'fp32');
    const [cpu4, gpu4] = [await logits('cpu', 'int4'), await logits(PROVIDER, 'int4')];
    const scale = maxAbsDiff(fp32, new Float32Array(fp32.length));
    const cpuError = maxAbsDiff(cpu4, fp32) / scale;
    const gpuError = maxAbsDiff(gpu4, fp32) / scale;
    console.log(`int4 vs fp32, max |Δlogit| / max |logit|: cpu ${cpuError.toExponential(2)}, ${PROVIDER} ${gpuError.toExponential(2)}`);
    expect(gpuError).toBeGreaterThan(0);
    expect(gpuError).toBeLessThan(Math.max(2 * cpuError, 0.05));
  });
});
