/**
 * A headless Chromium for the profiler page tests: Debian's chromium driven by playwright-core (no browser
 * download), in a fresh temporary profile, with every background service that would phone home turned off.
 * Also where screenshots go: `test-artifacts/profiler-ui/` (gitignored).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT } from './checkpoint-writer.js';
import { tempDir } from './engine.js';

export const CHROMIUM_PATH = process.env.SPARSEVILA_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export const ARTIFACTS_DIR = path.join(REPO_ROOT, 'test-artifacts', 'profiler-ui');

export interface TestBrowser {
  context: BrowserContext;
  /** A new page that records console errors and uncaught exceptions in `errors`. */
  page(viewport?: { width: number; height: number }): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const context = await chromium.launchPersistentContext(tempDir('chromium'), {
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1500, height: 1000 },
    acceptDownloads: true,
  });
  return {
    context,
    async page(viewport) {
      const page = await context.newPage();
      if (viewport) await page.setViewportSize(viewport);
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
      });
      return { page, errors };
    },
    close: () => context.close(),
  };
}

/** Save a screenshot of the page (or of one element) under test-artifacts/profiler-ui/NAME.png; returns its path. */
export async function saveScreenshot(page: Page, name: string, options: { selector?: string; fullPage?: boolean } = {}): Promise<string> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  if (options.selector) await page.locator(options.selector).first().screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: options.fullPage ?? false });
  return file;
}

/** Wait for a condition inside the page (polling, with a message naming what was awaited and a screenshot of the page). */
export async function until(page: Page, what: string, fn: string, timeout = 20_000): Promise<void> {
  try {
    await page.waitForFunction(fn, undefined, { timeout, polling: 50 });
  } catch (err) {
    const shot = await saveScreenshot(page, `failed-${what.replace(/[^a-z0-9]+/gi, '-')}`, { fullPage: true }).catch(() => 'no screenshot');
    throw new Error(`timed out waiting for ${what} (page: ${shot}): ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Open a run in the Run view (`extra`: the hash's query, e.g. `?turn=3`) and wait until it is drawn. */
export async function gotoRun(page: Page, run: string, extra = ''): Promise<void> {
  await page.evaluate(([r, q]) => (location.hash = `#/run/${encodeURIComponent(r!)}${q}`), [run, extra]);
  await until(page, `run ${run} drawn`, `document.querySelector('.run-view')?.dataset.run === ${JSON.stringify(run)}`);
}
