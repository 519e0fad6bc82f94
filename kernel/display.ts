/**
 * Inline display through tslab's display API (`display.html`, `display.svg`, …). Inside a tslab kernel the
 * cells' `require` (globalThis.__tslab__.require) hands out the running kernel's own tslab module, whose
 * display is wired to the Jupyter connection — so this works whichever tslab install runs the kernel.
 * Outside a kernel (tests, scripts) nothing is displayed and the show functions still return normally.
 */
import { createRequire } from 'node:module';
import { rasterise } from './raster.js';
import { figureHtml, type Figure } from './render/figure.js';

export interface Display {
  html(s: string): void;
  svg(s: string): void;
  markdown(s: string): void;
}

let override: Display | null | undefined;

/** Route displays somewhere else (e.g. a global tslab's `display`, or a collector in tests); null turns them off. */
export function useDisplay(display: Display | null | undefined): void {
  override = display;
}

function tslabDisplay(): Display | null {
  const hooked = (globalThis as { __tslab__?: { require?: (id: string) => unknown } }).__tslab__?.require;
  for (const req of [hooked, createRequire(import.meta.url)]) {
    try {
      const mod = req?.('tslab') as { display?: Display } | undefined;
      if (mod?.display) return mod.display;
    } catch {
      // tslab not installed here: try the next, else display nothing.
    }
  }
  return null;
}

function currentDisplay(): Display | null {
  return override === undefined ? tslabDisplay() : override;
}

/** Shows markup inline; false when there is no notebook to show it in. */
export function show(kind: keyof Display, markup: string): boolean {
  const display = currentDisplay();
  if (!display) return false;
  try {
    display[kind](markup);
    return true;
  } catch {
    // tslab's display throws "Not ready" outside a running kernel.
    return false;
  }
}

/** Figures up to this many CSS pixels are drawn at 2 device pixels per pixel (sharp on high-DPI screens); larger ones at 1. */
const HIGH_DPI_MAX_AREA = 400_000;

/**
 * Shows a figure as a PNG in HTML (render/figure.ts says why), drawn only when there is a notebook to show
 * it in. Should the PNG fail, the SVG is shown instead: right in Jupyter, blank in an nbconvert export.
 */
export function showFigure(figure: Figure, className: string): boolean {
  if (!currentDisplay()) return false;
  let png: Uint8Array;
  try {
    png = rasterise(figure.svg, figure.width * figure.height <= HIGH_DPI_MAX_AREA ? 2 : 1);
  } catch (err) {
    process.stderr.write(`sparsevila-ts/kernel: ${(err as Error).message}; showing the SVG instead (an HTML export will not keep it)\n`);
    return show('svg', figure.svg);
  }
  return show('html', figureHtml(figure, png, className));
}
