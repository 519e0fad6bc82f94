/**
 * `npm run kernel:install`: installs a tslab kernelspec into a project-local Jupyter prefix (`.jupyter/`,
 * gitignored), without prompting and without touching the user's own Jupyter setup. The spec starts a
 * small wrapper that runs this checkout's tslab with this Node and `node_modules/.bin` on PATH, so the
 * kernel starts however Jupyter was launched (tslab's own installer writes a bare `tslab` command, which
 * needs tslab on PATH).
 *
 *   node dist/kernel/install.js [--prefix DIR] [--name NAME]
 *   JUPYTER_PATH=$PWD/.jupyter/share/jupyter jupyter lab notebooks/
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { repoRoot } from './paths.js';

export interface KernelspecOptions {
  /** Jupyter prefix; the spec goes to `<prefix>/share/jupyter/kernels/<name>/`. Default `<repo>/.jupyter`. */
  prefix?: string;
  /** Kernelspec name (default `tslab`, the name the notebooks' metadata asks for). */
  name?: string;
  /** Node binary the kernel runs on (default: the one running this installer). */
  node?: string;
}

export interface InstalledKernelspec {
  /** The kernelspec folder. */
  dir: string;
  /** What to put in JUPYTER_PATH so Jupyter finds it. */
  jupyterPath: string;
  kernel: { argv: string[]; display_name: string; language: string };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function installKernelspec(options: KernelspecOptions = {}): InstalledKernelspec {
  const prefix = path.resolve(options.prefix ?? path.join(repoRoot, '.jupyter'));
  const name = options.name ?? 'tslab';
  if (!/^[a-zA-Z0-9._-]+$/.test(name)) throw new Error(`kernelspec name ${JSON.stringify(name)} may only hold letters, digits, '.', '_' and '-'`);
  const node = options.node ?? process.execPath;
  let tslabBin: string;
  try {
    const pkg = createRequire(path.join(repoRoot, 'package.json')).resolve('tslab/package.json');
    tslabBin = path.join(path.dirname(pkg), 'bin', 'tslab');
  } catch {
    throw new Error(`tslab is not installed in ${repoRoot}/node_modules: run \`npm install\` first`);
  }
  const jupyterPath = path.join(prefix, 'share', 'jupyter');
  const dir = path.join(jupyterPath, 'kernels', name);
  fs.mkdirSync(dir, { recursive: true });

  const wrapper = path.join(dir, 'tslab-kernel');
  fs.writeFileSync(
    wrapper,
    [
      '#!/bin/sh',
      "# Written by `npm run kernel:install` (kernel/install.ts): runs this checkout's tslab on the Node that",
      '# installed it (or the one on PATH, if that one is gone), with node_modules/.bin on PATH.',
      `REPO=${shellQuote(repoRoot)}`,
      `NODE=${shellQuote(node)}`,
      '[ -x "$NODE" ] || NODE="$(command -v node)"',
      // Parameter expansion, not dirname: the kernel must start even when PATH is bare.
      'PATH="$REPO/node_modules/.bin:${NODE%/*}:$PATH"',
      'export PATH',
      `exec "$NODE" ${shellQuote(tslabBin)} "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  fs.chmodSync(wrapper, 0o755);

  const kernel = {
    argv: [wrapper, 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript (tslab, sparsevila-ts)',
    language: 'typescript',
  };
  fs.writeFileSync(path.join(dir, 'kernel.json'), `${JSON.stringify(kernel, null, 2)}\n`);
  return { dir, jupyterPath, kernel };
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: { prefix: { type: 'string' }, name: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(
      'Usage: npm run kernel:install [-- --prefix DIR] [--name NAME]\nInstalls a tslab kernelspec into DIR/share/jupyter/kernels/NAME (default .jupyter/, kernel "tslab").',
    );
    return;
  }
  const spec = installKernelspec({ prefix: values.prefix, name: values.name });
  const rel = spec.jupyterPath;
  console.log(`installed the tslab kernelspec in ${spec.dir}`);
  console.log(`open the notebooks:   JUPYTER_PATH=${rel} jupyter lab notebooks/`);
  console.log(
    `or run one headless:  JUPYTER_PATH=${rel} python3 -m jupyter nbconvert --to notebook --execute notebooks/01-quickstart.ipynb --output /tmp/01.ipynb`,
  );
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'kernel', 'index.js')))
    console.log('(notebooks import sparsevila-ts/kernel, built into dist/kernel/index.js: run `npm install` or `npm run build` first)');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`kernel:install: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
