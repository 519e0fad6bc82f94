#!/usr/bin/env node
/**
 * Checks that imports run one way through the pipeline's stages (STYLE.md, "Folders are the pipeline's
 * stages"): a file imports only from its own folder or from a folder of lower or equal rank in LAYERS, no
 * files import each other in a cycle, and no folders do. Every relative `import … from`, `export … from`,
 * side-effect `import '…'` and dynamic `import('…')` counts, type-only ones too: a type import still ties
 * the importer to the module's meaning.
 *
 *   node scripts/check-layers.mjs [--root DIR]
 *
 * Prints each violation as `file:line` and exits 1 if there is any. `--root` checks another tree laid out
 * as this repository (the test plants violations in a copy).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The stages, lowest first. A folder may import from its own rank and below; folders of one rank are
 * peers (their imports may not form a cycle, which the folder-level check catches). A key is a folder or
 * a single file, relative to the repository root; a file belongs to the longest key its path starts with.
 */
export const LAYERS = {
  // A leaf: every layer throws the typed errors (a code and a subject).
  'src/errors.ts': 0,
  // A leaf: the seeded generator token sampling and random pruning both draw from.
  'src/seeded-random.ts': 0,
  // A leaf: Float32Array helpers every stage uses.
  'src/arrays.ts': 0,
  // What a model reads, each independent of the model: tensors and config.json from disk (checkpoint),
  // prompts and the chat template (text), pixels from images and video (media), and the synthetic scenes
  // and conversations the demo and the AWQ calibration draw on (world). The session turns their outputs
  // into graph inputs; they import nothing of the model above them.
  'src/checkpoint': 1,
  'src/text': 1,
  'src/media': 1,
  'src/world': 1,
  // Checkpoint tensors → the weights a graph stores: int4 packing, AutoAWQ repacking, AWQ plans applied.
  'src/weights': 2,
  // Weights → ONNX graphs, built and cached.
  'src/graph': 3,
  // Model families (a folder each): config and key layout, processor, vision graph, LLM hooks, position rule.
  // They build graphs, so they sit with the graph stage; the registry is how everything above finds them.
  'src/families': 3,
  // Graphs → onnxruntime sessions, the worker, the KV cache.
  'src/runtime': 4,
  // The trace's event schema and sinks: written by the session and the sparsity methods, read by the
  // profiler and the kernel, so it sits below all of them.
  'src/trace': 5,
  // Peers the session drives: the sparsity methods (what to prune and retrieve), and the AWQ search
  // (calibration runs on the runtime, then the scale and clip search that writes a plan for src/weights).
  'src/sparsity': 6,
  'src/quant': 6,
  // A model and its chats: encode → prune → prefill → retrieve → decode.
  'src/session': 7,
  // The budget tuner: runs the session's chats on a workload against a dense twin, searches a method's space.
  'src/tune': 7,
  // The package's public surface.
  'src/index.ts': 8,
  // The `./testing` entry: checkpoint writers and the synthetic world, for tests, benchmarks and notebooks.
  'src/testing.ts': 8,
  // What people run: the CLI, the profiler's server (the CLI's `profile` starts it), the notebook kernel.
  'src/cli': 9,
  'profiler-ui/server': 9,
  kernel: 9,
};

/**
 * Known violations, `from → to` (files relative to the root), each one skipped by every check. Only the
 * session / sparsity / trace layers may appear here, while their restructuring is under way; it is to be
 * emptied, not added to. An entry that no longer matches an import fails the check, so the list stays exact.
 */
export const ALLOWED = [];

/** The only folders whose imports ALLOWED may list. */
const ALLOWED_FROM = ['src/session', 'src/sparsity', 'src/trace'];

/** The trees checked, relative to the root. */
export const ROOTS = ['src', 'kernel', 'profiler-ui/server'];

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Blanks comments (keeping newlines, so offsets and line numbers hold) and leaves strings as they are. */
function stripComments(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') ((out += ' '), i++);
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c && !(c !== '`' && text[j] === '\n')) j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

// Static forms begin a line (so a string that mentions an import is not one); `import('…')` may be anywhere.
const STATIC = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?(['"])(\.{1,2}\/[^'"]+)\1/gm;
const DYNAMIC = /\bimport\s*\(\s*(['"])(\.{1,2}\/[^'"]+)\1\s*\)/g;

/** The relative imports of one file: the imported file (relative to the root) and the line of the import. */
export function importsOf(root, file) {
  const text = stripComments(fs.readFileSync(path.join(root, file), 'utf8'));
  const found = [];
  for (const re of [STATIC, DYNAMIC]) {
    for (const m of text.matchAll(re)) {
      const target = path.posix.join(path.posix.dirname(file), m[2].replace(/\.js$/, '.ts'));
      found.push({ to: target, line: text.slice(0, m.index).split('\n').length });
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

function listTs(root, dir) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return listTs(root, rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** The LAYERS key a file belongs to (the longest that its path starts with), or undefined. */
export function layerOf(file) {
  let best;
  for (const key of Object.keys(LAYERS)) {
    if ((file === key || file.startsWith(`${key}/`)) && (!best || key.length > best.length)) best = key;
  }
  return best;
}

/** Strongly connected components with more than one member (or a self-loop), by Tarjan's algorithm. */
function cycles(nodes, edges) {
  let index = 0;
  const stack = [];
  const info = new Map();
  const found = [];
  const visit = (v) => {
    const me = { index, low: index, onStack: true };
    index++;
    info.set(v, me);
    stack.push(v);
    for (const w of edges.get(v) ?? []) {
      if (!info.has(w)) {
        visit(w);
        me.low = Math.min(me.low, info.get(w).low);
      } else if (info.get(w).onStack) me.low = Math.min(me.low, info.get(w).index);
    }
    if (me.low !== me.index) return;
    const scc = [];
    let w;
    do {
      w = stack.pop();
      info.get(w).onStack = false;
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (edges.get(v) ?? new Set()).has(v)) found.push(scc.sort());
  };
  for (const v of nodes) if (!info.has(v)) visit(v);
  return found;
}

/** Every violation under `root`, as printable lines (empty when the layering holds). */
export function checkLayers(root = path.join(HERE, '..')) {
  const files = ROOTS.flatMap((r) => listTs(root, r)).sort();
  const known = new Set(files);
  const allowed = new Set(ALLOWED);
  const used = new Set();
  const problems = [];
  const where = (e) => `${e.from}:${e.line}`;

  const edges = [];
  for (const from of files) {
    if (!layerOf(from)) problems.push(`${from}: its folder has no rank in LAYERS (scripts/check-layers.mjs); add one`);
    for (const { to, line } of importsOf(root, from)) {
      if (!known.has(to)) continue; // a JSON file, or outside the checked trees
      const key = `${from} → ${to}`;
      if (allowed.has(key)) {
        used.add(key);
        continue;
      }
      edges.push({ from, to, line });
    }
  }
  for (const key of allowed) {
    if (!ALLOWED_FROM.includes(layerOf(key.split(' → ')[0]))) problems.push(`ALLOWED lists ${key}: only ${ALLOWED_FROM.join(', ')} may have entries`);
    else if (!used.has(key)) problems.push(`ALLOWED lists ${key}, which no file imports any more: remove the entry`);
  }

  // (b) upward imports
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a === undefined || b === undefined || a === b) continue;
    if (LAYERS[b] > LAYERS[a]) problems.push(`${where(e)}: upward import: ${a} (rank ${LAYERS[a]}) imports ${e.to} of ${b} (rank ${LAYERS[b]})`);
  }

  // (c) file-level cycles
  const fileEdges = new Map();
  for (const e of edges) (fileEdges.get(e.from) ?? fileEdges.set(e.from, new Set()).get(e.from)).add(e.to);
  for (const scc of cycles(files, fileEdges)) {
    const members = new Set(scc);
    const inside = edges.filter((e) => members.has(e.from) && members.has(e.to));
    problems.push(`file-level import cycle among ${scc.join(', ')}:\n${inside.map((e) => `    ${where(e)} imports ${e.to}`).join('\n')}`);
  }

  // (d) folder-level cycles
  const folderEdges = new Map();
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a && b && a !== b) (folderEdges.get(a) ?? folderEdges.set(a, new Set()).get(a)).add(b);
  }
  for (const scc of cycles([...folderEdges.keys()].sort(), folderEdges)) {
    const members = new Set(scc);
    const across = edges.filter((e) => {
      const a = layerOf(e.from);
      const b = layerOf(e.to);
      return a !== b && members.has(a) && members.has(b);
    });
    problems.push(`folder-level import cycle among ${scc.join(', ')}:\n${across.map((e) => `    ${where(e)} imports ${e.to}`).join('\n')}`);
  }
  return problems;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--root');
  const root = at >= 0 ? path.resolve(process.argv[at + 1] ?? '.') : path.join(HERE, '..');
  const problems = checkLayers(root);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} violation${problems.length === 1 ? '' : 's'} (layer order: LAYERS in scripts/check-layers.mjs)`);
    process.exit(1);
  }
  console.log('check-layers: imports run one way, no cycles');
}
