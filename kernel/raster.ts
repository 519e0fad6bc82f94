/**
 * SVG → PNG, synchronously, for the show functions (render/figure.ts says why notebooks get PNGs). The show
 * functions stay synchronous — a cell may call them in a `forEach`, and tslab does not await a promise a
 * cell leaves behind — while sharp is asynchronous only: a worker thread runs sharp, and this thread waits
 * on a shared flag (Atomics.wait) for its answer, then takes it off the port (receiveMessageOnPort).
 * The worker starts at the first figure and is unref'd, so it never keeps a kernel or script alive.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { RasterAnswer, RasterRequest } from './raster-worker.js';

/** How long one figure may take (a 64-frame map takes well under a second). */
const TIMEOUT_MS = 30_000;

let channel: { worker: Worker; port: MessagePort } | null = null;

function start(): { worker: Worker; port: MessagePort } {
  const worker = new Worker(new URL('./raster-worker.js', import.meta.url));
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ port: port2 }, [port2]);
  worker.unref();
  port1.unref();
  // A worker that dies (sharp failing to load) is started again at the next figure.
  worker.once('exit', () => {
    if (channel?.worker === worker) channel = null;
  });
  worker.once('error', () => undefined);
  return { worker, port: port1 };
}

/** The SVG drawn at `scale` device pixels per unit, as PNG bytes; throws with sharp's message if it cannot be drawn. */
export function rasterise(svg: string, scale = 1): Uint8Array {
  channel ??= start();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  channel.port.postMessage({ svg, scale, flag } satisfies RasterRequest);
  const waited = Atomics.wait(flag, 0, 0, TIMEOUT_MS);
  const answer = receiveMessageOnPort(channel.port)?.message as RasterAnswer | undefined;
  if (!answer) {
    // Timed out, or the worker died: a fresh worker for the next figure.
    void channel.worker.terminate();
    channel = null;
    throw new Error(`rasterising a figure ${waited === 'timed-out' ? `took over ${TIMEOUT_MS / 1000} s` : 'failed: the worker stopped'}`);
  }
  if ('error' in answer) throw new Error(`rasterising a figure failed: ${answer.error}`);
  return answer.png;
}
