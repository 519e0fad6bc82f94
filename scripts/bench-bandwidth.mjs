#!/usr/bin/env node
/**
 * This machine's memory read bandwidth now (bench-common.mjs `memoryBandwidth`), as one line of JSON on stdout. A
 * bench runs it as a child process beside each measurement it bounds: the machine is shared, its bandwidth moves
 * with its neighbours, and the probe's buffers (2 GiB) stay out of the bench's own peak RSS.
 *
 * Prints `contention` when other processes took more than 10% of the CPUs meanwhile.
 *
 * Usage: node scripts/bench-bandwidth.mjs [--mib 1024] [--repeats 7] [--threads N]
 */
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { contention, measured, memoryBandwidth, positiveInt } from './bench-common.mjs';

const { values: args } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, repeats: { type: 'string', default: '7' }, threads: { type: 'string' } },
  strict: true,
});
const { OnnxGraphBuilder } = await import('../dist/src/graph/onnx-builder.js');
const [bw, load] = await measured(() =>
  memoryBandwidth(ort, OnnxGraphBuilder, {
    mib: positiveInt(args.mib, '--mib'),
    repeats: positiveInt(args.repeats, '--repeats'),
    threads: args.threads === undefined ? undefined : positiveInt(args.threads, '--threads'),
  }),
);
// `contention`: how much of the machine other processes took during the probe (its own CPU excluded).
console.log(JSON.stringify({ ...bw, contention: contention(load) || undefined }));
