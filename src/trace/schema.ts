/**
 * The trace schema: one typed, versioned stream of what a run did — stage spans, salience, kept tokens,
 * retrieval sets, decode steps, tokens and metrics. The engine emits it whether or not anyone listens;
 * sinks (memory, JSON lines, Chrome trace, the profiler) consume it. Times are milliseconds since the
 * run started.
 *
 * Visual tokens are named by a `VisualTokenId`: image (or frame) index within the chat, then the token's
 * index within that image's LLM tokens — stable across turns, whatever the cache row.
 */
export const TRACE_SCHEMA_VERSION = 1;

/**
 * A sparsity policy as the trace records it: a plain, serialisable value whose `method` names the method
 * and whose other fields are that method's budgets and settings. The trace sits below the sparsity methods
 * (src/sparsity defines the values it writes), so readers know no method's fields: they print the
 * `label` the engine wrote beside it.
 */
export type PolicyValue = { method: string } & Record<string, unknown>;

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
      /**
       * `imageTokens`: LLM tokens per image, or 0 where each image has its own count (native-resolution towers).
       * `provider`: the execution provider the run's graphs ran on (cpu, webgpu, cuda), `device` what it ran on and
       * `deviceMemoryBytes` that device's memory where known; absent in older traces.
       */
      model: {
        dir: string;
        vision: string;
        text: string;
        layers: number;
        heads: number;
        kvHeads: number;
        imageTokens: number;
        provider?: string;
        device?: string;
        deviceMemoryBytes?: number;
      };
      policy: PolicyValue;
      /**
       * A short human label of the policy, written by its sparsity method ("SparseVILA keep 50% · retrieve
       * 25%", "FastV K=2 R=50%", "dense"). Optional to read: traces of this schema version may lack it, and
       * readers then print the policy value itself.
       */
      label?: string;
      options: Record<string, unknown>;
    })
  | (Base & { type: 'turn.start'; turn: number; text: string; images: number })
  /** What the vision tower saw (preprocessed, denormalised), as a small JPEG: retention maps are drawn over it. */
  | (Base & {
      type: 'image';
      turn: number;
      image: number;
      width: number;
      height: number;
      jpeg: string;
      /**
       * Where the image is video, the time in the video (seconds) of each frame it shows: one for a frame the
       * family encodes as its own image, every frame for a video encoded as one media (Qwen2-VL's slices).
       * Optional to read: traces of this schema version may lack it.
       */
      timestamps?: number[];
      /**
       * The base name of the file the image (or the video the frame) came from, where the input was a path; absent
       * for bytes, and in older traces. The profiler names runs by it (profiler-ui/web/data/run-identity.js).
       */
      file?: string;
    })
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
      /**
       * Absent: the turn's question chose the sets, for its decode from step 1. A refresh (a policy whose
       * retrieval follows the answer) sets it: decode step `step` (as `decode.step` numbers them) attended every
       * retained token, its attention (blended with the question's) chose these sets, and steps `step + 1` on
       * read them; `scores` are the blend. A turn then has one event per layer per refresh, in step order.
       */
      step?: number;
    })
  | (Base & {
      type: 'decode.step';
      turn: number;
      step: number;
      ms: number;
      attended: number;
      visualAttended: number;
      /** On a GPU provider: the bytes the step moved to and from the device. */
      hostToDeviceBytes?: number;
      deviceToHostBytes?: number;
    })
  | (Base & { type: 'token'; turn: number; step: number; id: number; text: string })
  | (Base & { type: 'turn.end'; turn: number; answer: string; stopReason: 'eos' | 'length'; metrics: Record<string, number> })
  | (Base & { type: 'fidelity'; turn: number; metrics: Record<string, number | number[] | null> });

export type TraceEventType = TraceEvent['type'];

/**
 * Every event type of this schema version: readers refuse others. Written as a record so that a type added
 * to `TraceEvent` fails the build here until it is listed.
 */
export const TRACE_EVENT_TYPES: ReadonlySet<TraceEventType> = new Set(
  Object.keys({
    'run.start': true,
    'turn.start': true,
    image: true,
    span: true,
    salience: true,
    kept: true,
    retrieval: true,
    'decode.step': true,
    token: true,
    'turn.end': true,
    fidelity: true,
  } satisfies Record<TraceEventType, true>) as TraceEventType[],
);

/**
 * What is wrong with a parsed `run.start` object, or null: readers refuse other schema versions, and a
 * label, where there is one, must be text. Shared by the JSON-lines reader and the wire decoder.
 */
export function runStartProblem(e: Readonly<Record<string, unknown>>): string | null {
  if (e.version !== TRACE_SCHEMA_VERSION) {
    return `run.start has trace schema version ${JSON.stringify(e.version)}; this reader understands version ${TRACE_SCHEMA_VERSION}`;
  }
  if (e.label !== undefined && typeof e.label !== 'string') return `run.start 'label' must be a string, got ${JSON.stringify(e.label)}`;
  return null;
}

/** Where trace events go. `write` must not throw or block: sinks buffer or drop. */
export interface TraceSink {
  write(event: TraceEvent): void;
  close?(): void | Promise<void>;
}
