/**
 * A notebook's trace: keeps the events of its chats in memory (the show functions draw from them) and
 * forwards them to a live profiler when one is attached. Each `tracer()` is one run — one per chat — so the
 * profiler and the show functions can tell chats apart.
 */
import { Tracer, type TraceEvent, type TraceSink } from '../src/index.js';

export interface NotebookTraceOptions {
  /** Keep at most this many events in memory, dropping the oldest (default 200 000). */
  maxEvents?: number;
  /** Sinks every event is forwarded to (a profiler's). */
  forward?: TraceSink[];
}

export class NotebookTrace implements TraceSink {
  readonly events: TraceEvent[] = [];
  /** Events dropped from memory (the oldest) to stay under `maxEvents`. */
  dropped = 0;
  private readonly maxEvents: number;
  private readonly forward: TraceSink[];

  constructor(options: NotebookTraceOptions = {}) {
    this.maxEvents = options.maxEvents ?? 200_000;
    this.forward = options.forward ?? [];
  }

  /** A new tracer — one run — for one chat: `model.chat({ tracer: trace.tracer() })`. */
  tracer(): Tracer {
    return new Tracer([this]);
  }

  write(event: TraceEvent): void {
    this.events.push(event);
    if (this.events.length > this.maxEvents) {
      // Drop in slices so a long session does not shift the array on every event.
      const excess = this.events.length - Math.floor(this.maxEvents * 0.9);
      this.events.splice(0, excess);
      this.dropped += excess;
    }
    for (const sink of this.forward) {
      try {
        sink.write(event);
      } catch {
        // A sink must not throw (schema.ts); if one does, the chat still goes on.
      }
    }
  }

  of<T extends TraceEvent['type']>(type: T): Extract<TraceEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<TraceEvent, { type: T }> => e.type === type);
  }

  /** The runs seen, oldest first. */
  get runs(): string[] {
    return [...new Set(this.events.map((e) => e.run))];
  }

  clear(): void {
    this.events.length = 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.forward.map((s) => s.close?.()));
  }
}

/** A trace that only records (no profiler): pass `trace.tracer()` to each chat, then `show*(trace)`. */
export function recordTrace(options: Omit<NotebookTraceOptions, 'forward'> = {}): NotebookTrace {
  return new NotebookTrace(options);
}
