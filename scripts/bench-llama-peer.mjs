/**
 * llama.cpp as the benches' peer engine: what a CPU user would otherwise run, through node-llama-cpp's prebuilt CPU
 * binary (`getLlama({ gpu: false, build: 'never' })`: nothing is downloaded or compiled at run time).
 *
 * The peer runs in a child process of its own (`fork`, commands over IPC), so its peak RSS is its own process's
 * VmHWM — reset (clear_refs) when a context is created, with the model already loaded and resident, as the benches
 * reset ours once our runtime is up — and its threads never share a process with ours. The benches interleave
 * rounds (ours, peer, ours, peer …): each call here runs one round and returns.
 *
 * A round is one prefill of the given token ids in batches of `batchSize` (our prefill's chunk) and `steps`
 * greedy decode steps, each timed alone. node-llama-cpp's `controlledEvaluate` feeds ids directly (no tokenizer,
 * no stop tokens: a random model may well pick its end-of-text token). KV cache: llama.cpp's default (f16), flash
 * attention on — how a llama.cpp user runs it; ours keeps a float32 cache.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mb, ms, peakRssMiB, resetPeak, systemCpu } from './bench-common.mjs';
import { checkpointToGguf } from './gguf.mjs';

const SELF = fileURLToPath(import.meta.url);
/** Bump when scripts/gguf.mjs writes different bytes for the same checkpoint, so a stale cached GGUF is not reused. */
const GGUF_VERSION = 1;

/**
 * The checkpoint's text model as a Q4_0 GGUF beside it (written once; the checkpoint dir is keyed by its
 * contents). Returns { file, cached, seconds, bytes }.
 */
export function ensureGguf(checkpointDir, type = 'Q4_0') {
  const file = path.join(checkpointDir, `llm-${type.toLowerCase()}-v${GGUF_VERSION}.gguf`);
  if (fs.existsSync(file)) return { file, cached: true, bytes: fs.statSync(file).size };
  const t0 = ms();
  const { bytes } = checkpointToGguf(checkpointDir, file, { type });
  return { file, cached: false, seconds: (ms() - t0) / 1000, bytes };
}

/**
 * Starts the peer on a GGUF with `threads` threads. Returns { info, context(size, batchSize), round(ids, steps),
 * close() }; `info` names the binary (llama.cpp release, node-llama-cpp version) and the model's load time.
 */
export async function startLlamaPeer({ file, threads }) {
  const child = fork(SELF, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = [];
  child.on('message', (m) => pending.shift()?.(m));
  child.on('exit', (code) => {
    for (const settle of pending.splice(0)) settle({ error: `llama.cpp peer exited (${code})` });
  });
  const call = (message) =>
    new Promise((resolve, reject) => {
      pending.push((m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      child.send(message);
    });
  let info;
  try {
    info = await call({ op: 'load', file, threads });
  } catch (e) {
    child.kill();
    throw e;
  }
  return {
    info,
    /** A fresh context of `size` tokens; resets the peer's peak RSS. */
    context: (size, batchSize) => call({ op: 'context', size, batchSize, threads }),
    /**
     * One prefill of `ids` and `steps` decode steps: { prefillMs, decodeMs[], peakRssMiB, load }, `load` as
     * bench-common's `measured` gives ours: the peer's peak RSS since its context was made, and the CPU seconds
     * processes other than the peer and this one took meanwhile.
     */
    round: async (ids, steps) => {
      const cpu0 = systemCpu();
      const own0 = process.cpuUsage();
      const t0 = ms();
      const r = await call({ op: 'round', ids, steps });
      const wallSeconds = (ms() - t0) / 1000;
      const cpu1 = systemCpu();
      const own = process.cpuUsage(own0);
      r.load = { peakRssMiB: r.peakRssMiB, wallSeconds };
      if (cpu0 && cpu1) {
        r.load.otherCpuSeconds = Math.max(0, cpu1.busy - cpu0.busy - r.cpuSeconds - (own.user + own.system) / 1e6);
        r.load.stealSeconds = cpu1.steal - cpu0.steal;
      }
      return r;
    },
    close: async () => {
      await call({ op: 'close' }).catch(() => {});
      child.kill();
    },
  };
}

// ------------------------------------------------------------------------------------------ the child

async function serve() {
  const { getLlama } = await import('node-llama-cpp');
  // The package's exports map hides its package.json: read it beside dist/.
  const version = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.resolve('node-llama-cpp')), 'utf8')).version;
  let llama;
  let model;
  let context;
  let sequence;
  const ops = {
    async load({ file, threads }) {
      const t0 = ms();
      llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: threads });
      model = await llama.loadModel({ modelPath: file });
      return {
        engine: `llama.cpp (node-llama-cpp ${version}'s ${llama.buildType} CPU binary, llama.cpp release tag ${llama.llamaCppRelease.release})`,
        loadSeconds: (ms() - t0) / 1000,
        rssAfterLoadMiB: mb(process.memoryUsage().rss),
      };
    },
    async context({ size, batchSize, threads }) {
      await context?.dispose();
      context = undefined;
      resetPeak();
      context = await model.createContext({ contextSize: size, batchSize, threads, flashAttention: true, ignoreMemorySafetyChecks: true });
      sequence = context.getSequence();
      return { contextSize: context.contextSize, batchSize: context.batchSize, flashAttention: context.flashAttention };
    },
    async round({ ids, steps }) {
      await sequence.clearHistory();
      const cpu0 = process.cpuUsage();
      const t0 = ms();
      const first = await sequence.controlledEvaluate([...ids.slice(0, -1), [ids.at(-1), { generateNext: { token: true } }]]);
      const prefillMs = ms() - t0;
      let token = first.at(-1).next.token;
      const decodeMs = [];
      for (let i = 0; i < steps; i++) {
        const s0 = ms();
        const out = await sequence.controlledEvaluate([[token, { generateNext: { token: true } }]]);
        decodeMs.push(ms() - s0);
        token = out[0].next.token;
      }
      const cpu = process.cpuUsage(cpu0);
      return { prefillMs, decodeMs, peakRssMiB: peakRssMiB(), cpuSeconds: (cpu.user + cpu.system) / 1e6 };
    },
    async close() {
      await context?.dispose();
      await model?.dispose();
      await llama?.dispose();
      return {};
    },
  };
  process.on('message', async (m) => {
    try {
      process.send(await ops[m.op](m));
    } catch (e) {
      process.send({ error: e?.stack ?? String(e) });
    }
    if (m.op === 'close') process.exit(0);
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF && process.argv.includes('--serve')) await serve();
