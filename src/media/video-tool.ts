/**
 * Runs ffmpeg / ffprobe (Debian's `ffmpeg` package) as child processes and streams their stdout. One
 * generator owns each child from spawn to reaping: whatever ends the iteration — the tool finishing, a
 * timeout, a failed exit, or the consumer stopping early (`break`, a thrown error) — its `finally` kills the
 * child if it still runs and waits for its 'close' event, so no process outlives the call and none is left
 * a zombie.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { InputError, SparseVilaError } from '../errors.js';

/** Where to find the tools; default: `ffmpeg` / `ffprobe` on PATH. */
export interface VideoTools {
  ffmpeg?: string;
  ffprobe?: string;
}

export interface ToolRunOptions {
  /** The video the run is about: errors name it. */
  file: string;
  /** Kill the tool after this long (ms), with a VIDEO_TIMEOUT error naming the file. */
  timeoutMs: number;
  /** What the run does, for messages ("probing", "decoding 8 frames of"). */
  doing: string;
}

export const FFMPEG_INSTALL_HINT =
  "install Debian's ffmpeg package (`apt-get install ffmpeg`; `npm test` does it through scripts/system-deps.sh), " +
  'or point the `tools` option at ffmpeg and ffprobe binaries';

/**
 * A file name as ffmpeg / ffprobe must see it: ffmpeg reads a leading `-` as an option (`-report` writes a
 * log into the cwd) and `name:` as a protocol (`concat:a.mp4|b.mp4` reads other files; `meeting:notes.mp4`
 * fails as an unknown protocol). The `file:` protocol with an absolute path is always the plain file
 * (ffmpeg's doc/protocols.texi, "file").
 */
export function ffmpegInput(file: string): string {
  return `file:${path.resolve(file)}`;
}

/** Only the end of stderr is kept: ffmpeg's last lines say why it failed. */
const STDERR_KEEP = 4096;

/** stdout of `command args…`, chunk by chunk; throws a typed error when the tool is missing, fails or times out. */
export async function* toolOutput(command: string, args: readonly string[], options: ToolRunOptions): AsyncGenerator<Buffer, void> {
  const { file, timeoutMs, doing } = options;
  if (!(timeoutMs > 0))
    throw new InputError('OPTION_INVALID', `timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`, { subject: 'timeoutMs' });
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  let spawnError: NodeJS.ErrnoException | undefined;
  child.once('error', (err) => (spawnError = err));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => (stderr = (stderr + text).slice(-STDERR_KEEP)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const { code, signal } = await closed;
    if (spawnError) {
      if (spawnError.code === 'ENOENT') {
        throw new SparseVilaError(
          'DEPENDENCY_MISSING',
          `cannot run ${command} for ${doing} ${file}: it is not installed (not found on PATH); ${FFMPEG_INSTALL_HINT}`,
          {
            subject: command,
            cause: spawnError,
          },
        );
      }
      throw new SparseVilaError('DEPENDENCY_MISSING', `cannot run ${command} for ${doing} ${file}: ${spawnError.message}`, {
        subject: command,
        cause: spawnError,
      });
    }
    if (timedOut) {
      throw new InputError('VIDEO_TIMEOUT', `${doing} ${file} took longer than ${timeoutMs} ms; ${command} was stopped. Raise timeoutMs for long videos`, {
        subject: file,
      });
    }
    if (code !== 0) {
      const why = stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${code ?? signal}`;
      throw new InputError('VIDEO_UNREADABLE', `${file} is not a readable video (${command} failed ${doing} it: ${why})`, { subject: file });
    }
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed;
  }
}

/** The whole stdout of a short tool run (ffprobe's JSON), as text. */
export async function toolText(command: string, args: readonly string[], options: ToolRunOptions): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of toolOutput(command, args, options)) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
