/**
 * The trace schema: one typed, versioned stream of what a run did — stage spans, salience, kept tokens,
 * retrieval sets, decode steps, tokens and metrics. The engine emits it whether or not anyone listens;
 * sinks (memory, JSON lines, Chrome trace, the profiler) consume it. Times are milliseconds since the
 * run started.
 *
 * Visual tokens are named by a `VisualTokenId`: image (or frame) index within the chat, then the token's
 * index within that image's LLM tokens — stable across turns, whatever the cache row.
 */

/** A sparsity policy as the trace records it: a plain, serializable value naming its method. */
export type PolicyValue = { readonly method: string } & { readonly [field: string]: unknown };

export const TRACE_SCHEMA_VERSION = 1;

export interface VisualTokenId {
  image: number;
  token: number;
}

/** Pipeline stages; 'fidelity' is the dense twin's work when requested (not part of the turn's time). */
export type Stage = 'images' | 'encode' | 'prune' | 'prefill' | 'retrieve' | 'decode' | 'fidelity';

interface Base {
  run: string;
  /** ms since the run started. */
  t: number;
}

export type TraceEvent =
  | (Base & {
      type: 'run.start';
      version: typeof TRACE_SCHEMA_VERSION;
      model: { dir: string; vision: string; text: string; layers: number; heads: number; kvHeads: number; imageTokens: number };
      policy: PolicyValue;
      /** The policy's short human label, written by its sparsity method (absent in older traces). */
      label?: string;
      options: Record<string, unknown>;
    })
  | (Base & { type: 'turn.start'; turn: number; text: string; images: number })
  /** What the vision tower saw (preprocessed, denormalised), as a small JPEG: retention maps are drawn over it. */
  | (Base & { type: 'image'; turn: number; image: number; width: number; height: number; jpeg: string })
  | (Base & { type: 'span'; turn: number; stage: Stage; start: number; duration: number; detail?: Record<string, number> })
  | (Base & {
      type: 'salience';
      turn: number;
      image: number;
      source: 'cls' | 'received' | 'summary';
      grid: { rows: number; cols: number };
      leading: number;
      scores: number[];
    })
  | (Base & { type: 'kept'; turn: number; image: number; total: number; kept: number[] })
  | (Base & {
      type: 'retrieval';
      turn: number;
      layer: number;
      /** Every retained visual token (the candidates), in cache order. */
      candidates: VisualTokenId[];
      /** Score per candidate: question attention mass summed over heads. */
      scores: number[];
      /** Indices into `candidates` of the retrieved tokens. */
      retrieved: number[];
    })
  | (Base & { type: 'decode.step'; turn: number; step: number; ms: number; attended: number; visualAttended: number })
  | (Base & { type: 'token'; turn: number; step: number; id: number; text: string })
  | (Base & { type: 'turn.end'; turn: number; answer: string; stopReason: 'eos' | 'length'; metrics: Record<string, number> })
  | (Base & { type: 'fidelity'; turn: number; metrics: Record<string, number | number[] | null> });

export type TraceEventType = TraceEvent['type'];

/** Every event type of this schema version: readers refuse others. */
export const TRACE_EVENT_TYPES: ReadonlySet<TraceEventType> = new Set<TraceEventType>([
  'run.start',
  'turn.start',
  'image',
  'span',
  'salience',
  'kept',
  'retrieval',
  'decode.step',
  'token',
  'turn.end',
  'fidelity',
]);

/** Where trace events go. `write` must not throw or block: sinks buffer or drop. */
export interface TraceSink {
  write(event: TraceEvent): void;
  close?(): void | Promise<void>;
}
