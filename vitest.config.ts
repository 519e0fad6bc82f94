import { defineConfig } from 'vitest/config';

/**
 * The fast tier (`npm run test:fast`): the engine's own tests — loading, graphs, runtime, the session and
 * every sparsity method, the trace, the layering, the fuzz suites of the loaders and the profiler's readers —
 * on the tiny fixture checkpoints. Left to `npm test`:
 * the browser (Chromium), notebooks (Jupyter), video (ffmpeg), the CLI's subprocess runs, the synthetic
 * world's pixel checks, AWQ's searches and the benchmarks.
 */
export const FAST = [
  'test/bench-doc.test.ts',
  'test/check-layers.test.ts',
  'test/checkpoint-config.test.ts',
  'test/checkpoint.test.ts',
  'test/efficiency-decode.test.ts',
  'test/fixtures.test.ts',
  'test/format.test.ts',
  'test/gguf.test.ts',
  'test/hostile-input.test.ts',
  'test/loader-fuzz.test.ts',
  'test/media.test.ts',
  'test/profiler-fuzz.test.ts',
  'test/qwen-llm.test.ts',
  'test/qwen-vision.test.ts',
  'test/qwen-writer.test.ts',
  'test/retrieval-refresh.test.ts',
  'test/runtime.test.ts',
  'test/session.test.ts',
  'test/session-settings.test.ts',
  'test/session-faults.test.ts',
  'test/sparsity.test.ts',
  'test/sparsity-methods.test.ts',
  'test/text.test.ts',
  'test/trace.test.ts',
  'test/wire.test.ts',
  'test/demo-model/engine-matches-pytorch.test.ts',
];

export default defineConfig({
  test: {
    include: process.env.SPARSEVILA_TEST_TIER === 'fast' ? FAST : ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: two test files at a time, each running ORT on one thread (see test/helpers/engine.ts).
    maxWorkers: 2,
  },
});
