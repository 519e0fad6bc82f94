/**
 * Paths notebooks need, resolved from this module's own location rather than the kernel's working
 * directory: the repository, the bundled models (the trained demo model, the random tiny one and its image),
 * the reference fixtures.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the nearest folder above this module with sparsevila-ts's package.json (src or dist). */
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'sparsevila-ts') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`sparsevila-ts's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const repoRoot = findRoot();

export const paths = {
  repo: repoRoot,
  /**
   * The trained demo model (CLIP 8×8 grid = 64 image tokens, LLaMA 4 layers; it knows src/world's coloured
   * shapes on a 3×3 grid). Its held-out examples: `demoImageExample()`.
   */
  demoModel: path.join(repoRoot, 'src/models/sparsevila-demo'),
  /** The bundled random-weight checkpoint (SigLIP 4×4 grid = 16 image tokens, Qwen2 2 layers): the pipeline, no meaning. */
  bundledModel: path.join(repoRoot, 'src/models/tiny-random-llava'),
  bundledImage: path.join(repoRoot, 'src/models/tiny-random-llava/image.png'),
  /** The reference fixtures beside the repository (present in the development checkout, not in a package). */
  fixture: (name: 'llava-clip-llama-tiny' | 'llava-siglip-qwen2-tiny') => path.resolve(repoRoot, '../shared/fixtures', name),
  notebooks: path.join(repoRoot, 'notebooks'),
};
