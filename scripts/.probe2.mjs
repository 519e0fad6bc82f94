import * as engine from 'sparsevila-ts';
const dir = 'src/models/sparsevila-demo';
const model = await engine.loadModel(dir, { threads: 1 });
const t = performance.now();
const w = await engine.demoWorkload('demo:image-questions', dir, 16, model.spec.vision.imageSize);
console.log('workload', (performance.now() - t).toFixed(0), w.conversations.length);
const r = await engine.tune(model, w, { objective: 'kv-bytes', floor: 'agreement=0.9', candidates: 8, seed: 1, out: '/tmp/tune-probe', onTrial: (rec, resumed) => console.log(rec.n, rec.trial, rec.label, rec.conversations.length, resumed ? 'resumed' : rec.seconds.toFixed(2)) });
console.log((performance.now() - t).toFixed(0), 'ms', r.label, r.confirmed, JSON.stringify(r.heldOut.choice.agreement), r.heldOut.costRatio, r.heldOut.meetsFloor);
await model.close();
