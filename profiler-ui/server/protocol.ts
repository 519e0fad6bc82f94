/**
 * The shapes the profiler server and its page exchange (profiler-ui/protocol.md): what `/api/runs` lists,
 * and the messages of `/ws/live`. Types only and no Node module, so the page's JSDoc imports them as the
 * server does (profiler-ui/web/tsconfig.json).
 */
import type { PolicyValue } from '../../src/trace/schema.js';
import type { MediaFacts } from '../web/data/run-identity.js';
import type { WireBatch } from '../../src/trace/wire.js';

export type RunSource = 'live' | 'file';

/** What `/api/runs` lists and `/ws/live` announces. */
export interface RunSummary {
  run: string;
  model: string | null;
  vision: string | null;
  text: string | null;
  policy: PolicyValue | null;
  /** The policy's label from run.start (null: none yet, or a trace written without one). */
  label: string | null;
  /** The name a person gave the run (`PUT /api/runs/:run/name`); null: none. */
  name: string | null;
  /** What the run looked at so far: image and frame counts, file names, the first question. */
  media: MediaFacts;
  /** Epoch ms when the server first saw the run (or, for a file, about when it was recorded). */
  started: number;
  events: number;
  turns: number;
  lastT: number;
  live: boolean;
  source: RunSource;
  /** Events not kept in memory (caps); a live run's data-dir file still has them. */
  truncated: number;
}

/** Server → page on `/ws/live`. */
export type LiveMessage =
  | { kind: 'hello'; runs: RunSummary[] }
  | { kind: 'run'; summary: RunSummary }
  | { kind: 'evicted'; run: string }
  | { kind: 'events' | 'replay'; run: string; batch: WireBatch }
  | { kind: 'dropped'; count: number; runs: string[] }
  | { kind: 'error'; message: string; run?: string };

/** Page → server on `/ws/live`. */
export type LiveRequest = { kind: 'replay'; run: string };
