/**
 * The bound on onnxruntime's thread counts. ORT starts every thread it is asked for, each with its own
 * stack and arena: `--threads 100000` never finishes starting and grows memory without end. Threads past the
 * cores only contend for them; up to THREADS_PER_CORE per core is allowed so oversubscription can still be
 * measured.
 */
import os from 'node:os';
import { InputError } from '../errors.js';

export const THREADS_PER_CORE = 2;

/** The most threads one session may ask for on this machine. */
export function maxThreads(): number {
  return os.availableParallelism() * THREADS_PER_CORE;
}

/** Checks a thread count (a positive integer within maxThreads()); `subject` is the option or flag that gave it. */
export function checkThreads(n: number | undefined, subject: string): number | undefined {
  if (n === undefined) return undefined;
  if (!(Number.isInteger(n) && n >= 1)) throw new InputError('OPTION_INVALID', `${subject} must be a positive integer, got ${n}`, { subject });
  const max = maxThreads();
  if (n > max) {
    throw new InputError(
      'OPTION_INVALID',
      `${subject} is ${n}, more than this machine allows (${max}: ${THREADS_PER_CORE} × its ${os.availableParallelism()} cores); ` +
        `threads past the cores only contend for them. Leave it unset for all cores`,
      { subject },
    );
  }
  return n;
}
