/**
 * JSON lines: one trace event per line, appended to a file as the run goes. `write` never blocks and
 * never throws — lines go into a Node write stream, and an event that cannot be written (the stream
 * failed, the sink is closed, the event does not serialise, or too much is already waiting for the disk)
 * is dropped and counted. `readTrace` reads a file back, checking every line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { TraceEvent, TraceSink } from './schema.js';
import { boundsProblem, commonProblem, fieldsProblem } from './validate.js';

export interface JsonlSinkOptions {
  /** Start the file afresh instead of appending to it (default: append; the file is created if missing). */
  truncate?: boolean;
  /** Drop events rather than buffer more than this many bytes not yet on disk (default 64 MiB). */
  maxBufferedBytes?: number;
}

/** JSON.stringify replacer: typed arrays as plain arrays, bigints as numbers. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? Number(x) : x));
  }
  if (typeof value === 'bigint') return Number(value);
  return value;
}

/** One event as its JSON line (without the newline): typed arrays become arrays. */
export function serializeEvent(event: TraceEvent): string {
  return JSON.stringify(event, replacer);
}

export class JsonlSink implements TraceSink {
  readonly file: string;
  private readonly stream: fs.WriteStream;
  private readonly maxBuffered: number;
  private droppedCount = 0;
  private writtenCount = 0;
  private closing: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(file: string, options: JsonlSinkOptions = {}) {
    this.file = file;
    this.maxBuffered = options.maxBufferedBytes ?? 64 * 1024 * 1024;
    try {
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    } catch {
      // The stream's open reports the problem (as an error, and events counted as dropped).
    }
    this.stream = fs.createWriteStream(file, { flags: options.truncate ? 'w' : 'a', encoding: 'utf8' });
    this.stream.on('error', (err) => {
      this.failure ??= err;
    });
  }

  /** Events that were not written: the stream failed, the sink was closed, or an event did not serialise. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Events known to be on their way to disk (their write completed). */
  get written(): number {
    return this.writtenCount;
  }

  /** The stream's first error, if it failed. */
  get error(): Error | null {
    return this.failure;
  }

  write(event: TraceEvent): void {
    if (this.closing || this.failure || this.stream.destroyed || this.stream.writableLength > this.maxBuffered) {
      this.droppedCount++;
      return;
    }
    let line: string;
    try {
      line = serializeEvent(event) + '\n';
    } catch {
      this.droppedCount++; // cycles and the like: the event cannot be a JSON line
      return;
    }
    try {
      this.stream.write(line, (err) => {
        if (err) this.droppedCount++;
        else this.writtenCount++;
      });
    } catch {
      this.droppedCount++;
    }
  }

  /** Flush everything and close the file; resolves once the file is complete (or the stream has failed). */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const stream = this.stream;
      if (stream.closed || stream.destroyed) {
        resolve();
        return;
      }
      const done = (): void => {
        stream.off('close', done);
        stream.off('error', done);
        resolve();
      };
      stream.once('close', done);
      stream.once('error', done);
      stream.end();
    });
    return this.closing;
  }
}

function lineError(file: string, line: number, message: string, cause?: unknown): InputError {
  return new InputError('OPTION_INVALID', `trace ${file}, line ${line}: ${message}`, {
    subject: `${file}:${line}`,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Check one parsed line against the schema (src/trace/validate.ts); returns it as an event or throws naming the file and line. */
export function validateTraceLine(value: unknown, file: string, line: number): TraceEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw lineError(file, line, 'expected a JSON object per line');
  }
  const e = value as Record<string, unknown>;
  const problem = boundsProblem(e) ?? commonProblem(e);
  if (problem) throw lineError(file, line, problem);
  const fields = fieldsProblem(e);
  if (fields) throw lineError(file, line, `'${String(e.type)}' event: ${fields}`);
  return e as unknown as TraceEvent;
}

/** Parse JSONL text (blank lines are skipped); `file` names the source in errors. */
export function parseTrace(text: string, file = '<trace>'): TraceEvent[] {
  const events: TraceEvent[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw) continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw lineError(file, i + 1, `not valid JSON (${(err as Error).message})`, err);
    }
    events.push(validateTraceLine(value, file, i + 1));
  }
  return events;
}

/** Read a JSONL trace written by `JsonlSink`, validating every line. */
export async function readTrace(file: string): Promise<TraceEvent[]> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (err) {
    throw new InputError('OPTION_INVALID', `cannot read trace ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  return parseTrace(text, file);
}
