/**
 * The tune's trial log, `trials.jsonl`: a header line naming the tune's settings, then one line per trial,
 * appended as each trial ends. A tune started again on the same folder reads it and skips every trial
 * already logged, so an interrupted tune goes on where it stopped. A last line cut short by the
 * interruption is dropped (its trial runs again); any other unreadable line is an error naming it.
 */
import fs from 'node:fs';
import { InputError } from '../errors.js';
import type { PolicyValue } from '../sparsity/method.js';
import type { ConversationMeasure } from './trial.js';
import { canonicalJson } from './space.js';

export const LOG_VERSION = 1;

/** What a trial log belongs to: a tune resumes only a log of the same settings. */
export interface LogHeader {
  tune: typeof LOG_VERSION;
  workload: string;
  method: string;
  objective: string;
  floor: string;
  seed: number;
  candidates: number;
  heldOutShare: number;
  maxNewTokens: number;
  conversations: string[];
}

export interface TrialRecord {
  /** `c<candidate>-r<rung>`, `dense-tuning`, `heldout-c<candidate>`, `heldout-dense`: unique in the log. */
  trial: string;
  /** Order of the trial in the tune (resumed trials keep theirs). */
  n: number;
  policy: PolicyValue;
  label: string;
  /** Which conversations this trial ran (ids), in order, and what each measured. */
  conversations: ConversationMeasure[];
  seconds: number;
}

export class TrialLog {
  readonly trials = new Map<string, TrialRecord>();

  private constructor(readonly file: string) {}

  /** Opens `file` for `header`: reads its trials when it is this tune's log, starts it otherwise. */
  static open(file: string, header: LogHeader): TrialLog {
    const log = new TrialLog(file);
    if (!fs.existsSync(file) || fs.statSync(file).size === 0) {
      fs.writeFileSync(file, JSON.stringify(header) + '\n');
      return log;
    }
    const text = fs.readFileSync(file, 'utf8');
    // Every whole line ends with a newline; what follows the last one (nothing, or a line cut short mid-write)
    // is dropped from the file, so the trial it was runs again and the next append starts a clean line.
    const complete = text.split('\n').slice(0, -1);
    if (!text.endsWith('\n')) fs.truncateSync(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
    const parsed = complete.map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch (cause) {
        throw new InputError('WORKLOAD_INVALID', `${file}:${i + 1}: not a JSON line of a trial log (${(cause as Error).message})`, {
          subject: `${file}:${i + 1}`,
          cause,
        });
      }
    });
    const found = parsed[0] as Partial<LogHeader> | undefined;
    if (!found || canonicalJson(found) !== canonicalJson(header)) {
      throw new InputError(
        'OPTION_INVALID',
        `${file} is the log of another tune (${found ? `workload ${found.workload}, ${found.method}, objective ${found.objective}, floor ${found.floor}, seed ${found.seed}` : 'no header'}); ` +
          `pick another --out folder, or delete the log to start over`,
        { subject: file },
      );
    }
    parsed.slice(1).forEach((r, i) => {
      const t = r as TrialRecord;
      if (typeof t?.trial !== 'string' || !Array.isArray(t.conversations))
        throw new InputError('WORKLOAD_INVALID', `${file}:${i + 2}: not a trial record (needs "trial" and "conversations")`, { subject: `${file}:${i + 2}` });
      log.trials.set(t.trial, t);
    });
    return log;
  }

  append(record: TrialRecord): void {
    fs.appendFileSync(this.file, JSON.stringify(record) + '\n');
    this.trials.set(record.trial, record);
  }
}
