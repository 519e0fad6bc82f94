/**
 * A tune streams to the profiler as it goes: every trial is one run, labelled with the trial and its workload, and
 * the sweep view — open in a browser before the tune starts — gains each sparse trial's point as the trial ends
 * (the dense trials are its reference lines). The tune runs one trial per call (`maxTrials: 1`), resuming from its
 * log, so the page is checked after every trial.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProfiler } from '../dist/profiler-ui/server/server.js';
import { WebSocketSink } from '../dist/src/trace/index.js';
import { launchBrowser, saveScreenshot } from './helpers/browser.js';
import { REPO_ROOT } from './helpers/checkpoint-writer.js';
import { engine, tempDir } from './helpers/engine.js';

const DEMO = path.join(REPO_ROOT, 'src/models/sparsevila-demo');

describe('profiler sweep view during a tune', () => {
  it("shows each trial's point live, labelled with the trial and the workload", async () => {
    const [model, server, browser] = await Promise.all([
      engine.loadModel(DEMO, { cacheDir: tempDir('tune-ui-graphs'), threads: 1 }),
      startProfiler({ log: () => undefined }),
      launchBrowser(),
    ]);
    const sink = new WebSocketSink(server.ingestUrl);
    try {
      const { page, errors } = await browser.page();
      await page.goto(`${server.url}#/sweep`);
      await page.waitForFunction(`document.querySelector('#status')?.dataset.state === 'live' && !!document.querySelector('.sweep-view')`);
      const workload = await engine.demoWorkload('demo:image-questions', DEMO, 8, 64);
      const out = tempDir('tune-ui');
      let sparse = 0;
      let trials = 0;
      for (;;) {
        const r = await engine.tune(model, workload, { objective: 'kv-bytes', floor: 'agreement=0.9', candidates: 4, out, maxTrials: 1, sink });
        if (r.complete) break;
        const last = fs.readFileSync(path.join(out, 'trials.jsonl'), 'utf8').trim().split('\n').at(-1)!;
        trials++;
        if (JSON.parse(last).policy.method !== 'dense') sparse++;
        await page.waitForFunction(`Number(document.querySelector('.sweep-view')?.dataset.points) === ${sparse}`, undefined, { timeout: 20_000 });
      }
      expect(trials).toBeGreaterThan(4);
      // The streamed runs carry the tune's labels: trial number, trial id and workload.
      await page.waitForFunction(`Number(document.querySelector('.sweep-view')?.dataset.points) === ${sparse}`);
      const labels = server.runs().map((r) => r.label ?? '');
      expect(labels.filter((l) => /^trial \d+ \([a-z0-9-]+\) · demo:image-questions · SparseVILA/.test(l))).toHaveLength(sparse);
      expect(await page.$eval('.sweep-view', (v) => v.textContent ?? '')).toContain('demo:image-questions');
      await saveScreenshot(page, 'sweep-tune', { fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await sink.close();
      await model.close();
      await browser.close();
      await server.close();
    }
  });
});
