/**
 * One trial: a policy run on some of the workload's conversations, each a fresh chat (the same work for
 * every candidate), with a dense twin beside it (src/session/fidelity.ts) unless the policy is the dense
 * reference. What each turn measured is kept plain, as the trial log stores it.
 */
import type { Model } from '../session/model.js';
import type { Answer } from '../session/types.js';
import type { PolicyValue } from '../sparsity/method.js';
import type { TraceEvent, TraceSink } from '../trace/schema.js';
import { Tracer } from '../trace/tracer.js';
import { scoreTurn, type Workload, type WorkloadConversation } from './workload.js';

/** Tokens an answer may take when the workload says nothing: a short answer and its end. */
export const DEFAULT_MAX_NEW_TOKENS = 16;

/** What one turn measured. Costs are the sparse chat's own; the twin's work is not in them. */
export interface TurnMeasure {
  /** Decode steps compared with the dense twin, and how many chose the twin's token (absent: no twin). */
  steps?: number;
  agreed?: number;
  /** KL(dense ‖ sparse) per compared step. */
  kl?: number[];
  /** The answer's score in [0, 1] against the turn's reference, when there is one. */
  score?: number;
  text: string;
  /** Time to first token, s. */
  ttft: number;
  /** Decode steps after the first token, s, and how many. */
  decodeSeconds: number;
  decodeSteps: number;
  /** KV-cache bytes a decode step of this turn reads, over every layer (fp32 rows: text rows and attended visual rows). */
  kvBytes: number;
}

export interface ConversationMeasure {
  id: string;
  turns: TurnMeasure[];
}

/** Runs `policy` on `conversations`, a fresh chat each; `sink` gets the trial as one run labelled `label`. */
export async function runTrial(
  model: Model,
  workload: Workload,
  policy: PolicyValue,
  conversations: readonly WorkloadConversation[],
  trace?: { sink: TraceSink; label: string; workload: string },
): Promise<ConversationMeasure[]> {
  const tracer = trace ? new Tracer([new TrialRunSink(trace.sink, trace.label, trace.workload)]) : undefined;
  const out: ConversationMeasure[] = [];
  const dense = policy.method === 'dense';
  for (const c of conversations) {
    const chat = model.chat({ policy, fidelity: !dense, maxNewTokens: workload.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, tracer });
    const turns: TurnMeasure[] = [];
    try {
      for (const [i, turn] of c.turns.entries()) {
        const media = i > 0 ? {} : 'video' in c.media ? { video: c.media.video } : { images: c.media.images };
        const answer = await chat.ask({ ...media, text: turn.question });
        turns.push(measure(model, answer, scoreTurn(turn, answer.text)));
      }
    } finally {
      await chat.close();
    }
    out.push({ id: c.id, turns });
  }
  return out;
}

function measure(model: Model, a: Answer, score: number | undefined): TurnMeasure {
  const t = a.timings;
  const s = a.sparsity;
  const text = model.spec.text;
  // Rows a decode step reads per layer: the conversation's text rows, and the visual rows that layer attends.
  const textRows = t.cachedTokens + t.promptTokens - s.visualTokens;
  const bytesPerRow = 2 * text.numKvHeads * text.headDim * 4;
  const kvBytes = s.attendedVisualPerLayer.reduce((sum, visual) => sum + (textRows + visual) * bytesPerRow, 0);
  const f = a.fidelity;
  return {
    ...(f && { steps: f.steps, agreed: Math.round(f.tokenAgreement * f.steps), kl: f.klPerStep }),
    ...(score !== undefined && { score }),
    text: a.text,
    ttft: t.firstTokenSeconds,
    decodeSeconds: t.decodeSeconds,
    decodeSteps: Math.max(0, t.generatedTokens - 1),
    kvBytes,
  };
}

/**
 * A trial's chats as one profiler run: the first chat's run.start, relabelled with the trial and its workload,
 * then every chat's turns numbered on from the last. Per-image events (images, salience, kept tokens,
 * retrieval sets) are left out: their image indices restart with each chat, and a trial is judged by its turns'
 * timings, decode steps and fidelity — what the sweep view plots.
 */
export class TrialRunSink implements TraceSink {
  private started = false;
  private offset = 0;
  private turns = 0;

  constructor(
    private readonly sink: TraceSink,
    private readonly label: string,
    private readonly workload: string,
  ) {}

  write(e: TraceEvent): void {
    if (e.type === 'run.start') {
      if (!this.started) this.sink.write({ ...e, label: this.label, options: { ...e.options, workload: this.workload } });
      this.started = true;
      this.offset += this.turns;
      this.turns = 0;
      return;
    }
    if (e.type === 'image' || e.type === 'salience' || e.type === 'kept' || e.type === 'retrieval') return;
    this.turns = Math.max(this.turns, e.turn + 1);
    this.sink.write({ ...e, turn: e.turn + this.offset });
  }
}
