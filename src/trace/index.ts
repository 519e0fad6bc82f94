/** Tracing: the event schema, the tracer, and the sinks (memory, JSON lines, Chrome trace). */
export * from './schema.js';
export * from './tracer.js';
export * from './jsonl-sink.js';
export * from './chrome-trace.js';
export * from './wire.js';
export * from './ws-sink.js';
