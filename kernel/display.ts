/**
 * Inline display through tslab's display API (`display.html`, `display.svg`, …). Inside a tslab kernel the
 * cells' `require` (globalThis.__tslab__.require) hands out the running kernel's own tslab module, whose
 * display is wired to the Jupyter connection — so this works whichever tslab install runs the kernel.
 * Outside a kernel (tests, scripts) nothing is displayed and the show functions still return normally.
 */
import { createRequire } from 'node:module';

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

/** Shows markup inline; false when there is no notebook to show it in. */
export function show(kind: keyof Display, markup: string): boolean {
  const display = override === undefined ? tslabDisplay() : override;
  if (!display) return false;
  try {
    display[kind](markup);
    return true;
  } catch {
    // tslab's display throws "Not ready" outside a running kernel.
    return false;
  }
}
