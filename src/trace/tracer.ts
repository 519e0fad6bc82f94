/**
 * The tracer a chat emits through. With no sink attached `enabled` is false and callers skip building
 * payloads, so tracing costs nothing measurable.
 */
import crypto from 'node:crypto';
import type { TraceEvent, TraceSink } from './schema.js';

type Payload<E> = E extends TraceEvent ? Omit<E, 'run' | 't'> : never;

export class Tracer {
  readonly run: string;
  private readonly sinks: TraceSink[] = [];
  private readonly started = performance.now();

  constructor(sinks: TraceSink[] = [], run: string = crypto.randomUUID()) {
    this.run = run;
    this.sinks.push(...sinks);
  }

  get enabled(): boolean {
    return this.sinks.length > 0;
  }

  attach(sink: TraceSink): void {
    this.sinks.push(sink);
  }

  /** ms since the run started. */
  now(): number {
    return performance.now() - this.started;
  }

  emit(event: Payload<TraceEvent>): void {
    if (!this.sinks.length) return;
    const full = { ...event, run: this.run, t: this.now() } as TraceEvent;
    for (const sink of this.sinks) sink.write(full);
  }

  async close(): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.close?.()));
  }
}

/** Keeps every event in memory (tests, notebooks, small runs). */
export class MemorySink implements TraceSink {
  readonly events: TraceEvent[] = [];
  write(event: TraceEvent): void {
    this.events.push(event);
  }
  of<T extends TraceEvent['type']>(type: T): Extract<TraceEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<TraceEvent, { type: T }> => e.type === type);
  }
}
