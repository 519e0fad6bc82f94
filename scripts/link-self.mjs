#!/usr/bin/env node
/**
 * Links node_modules/sparsevila-ts to this checkout, as npm links a workspace package, so code inside the
 * repository imports the package by its name exactly as a user's code does. Node resolves a package's own
 * name through its `exports` map without this; the link is for resolvers that do not: tslab type-checks
 * notebook cells with TypeScript's Node10 resolution (tslab/dist/converter.js), which only looks in
 * node_modules (it reads `typesVersions` for the subpath entries). Run by `npm install` (`prepare`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { name } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const link = path.join(root, 'node_modules', name);
let current;
try {
  current = fs.readlinkSync(link);
} catch {
  current = undefined;
}
if (current === undefined || path.resolve(path.dirname(link), current) !== root) {
  fs.rmSync(link, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(path.relative(path.dirname(link), root), link, 'dir');
}
