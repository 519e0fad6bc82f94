/**
 * Where the profiler's files are: the page (`profiler-ui/web/`), the compiled trace modules the page
 * imports (`dist/src/trace/`), and the vendored chart libraries. Found from this module's own location
 * (the package root is the nearest folder up whose package.json is this package), so it works from
 * `dist/` and from an installed package alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProfilerPaths {
  root: string;
  web: string;
  /** Served at /lib/ (wire.js, schema.js, …). */
  lib: string;
  /** Served at /errors.js: /lib/wire.js imports '../errors.js'. */
  errors: string;
  d3: string;
  plotly: string;
}

export function packageRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'sparsevila-ts') return dir;
      } catch {
        // not ours: keep looking
      }
    }
    if (path.dirname(dir) === dir) throw new Error(`cannot find the sparsevila-ts package root above ${from}`);
  }
}

export function profilerPaths(overrides: Partial<ProfilerPaths> = {}): ProfilerPaths {
  const root = overrides.root ?? packageRoot();
  return {
    root,
    web: overrides.web ?? path.join(root, 'profiler-ui', 'web'),
    lib: overrides.lib ?? path.join(root, 'dist', 'src', 'trace'),
    errors: overrides.errors ?? path.join(root, 'dist', 'src', 'errors.js'),
    d3: overrides.d3 ?? path.join(root, 'node_modules', 'd3', 'dist', 'd3.min.js'),
    plotly: overrides.plotly ?? path.join(root, 'node_modules', 'plotly.js-dist-min', 'plotly.min.js'),
  };
}
