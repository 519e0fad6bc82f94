import { loadModel } from 'sparsevila-ts';
import { syntheticImage, benchTokenizer } from './bench-common.mjs';
import sharp from 'sharp';
const dir = process.argv[2];
benchTokenizer(dir, 151936);
let t0 = performance.now();
const model = await loadModel(dir, {
  precision: 'int4',
  blockSize: 32,
  cacheDir: '/tmp/qw-graphs',
  onProgress: (e) => e.phase === 'done' && console.log(e.graph, e.seconds),
});
console.log('load', (performance.now() - t0) / 1000);
const img = await syntheticImage(sharp, 1, 672, 448);
const chat = model.chat({ maxNewTokens: 8, minNewTokens: 8 });
t0 = performance.now();
const a = await chat.ask({ images: [img], text: 'Describe.' });
console.log('ask', (performance.now() - t0) / 1000, a.timings, a.sparsity.turnImageTokens);
await chat.close();
await model.close();
