/**
 * A running profiler, named by the URL `sparsevila profile` printed (`http://host:port/?token=T`) or by its
 * ingest URL (`ws://host:port/ws/ingest?token=T`): the page, ingest and health endpoints it implies
 * (profiler-ui/protocol.md), and a check that a profiler answers there and takes the token — so a producer
 * can refuse to start rather than stream into nothing (a WebSocketSink never fails; it drops and retries).
 */
import { InputError } from '../errors.js';

export interface ProfilerEndpoints {
  /** The page, with the token. */
  page: string;
  /** Where a `WebSocketSink` connects, with the token. */
  ingest: string;
  /** `GET /api/health`, without the token (send it as a Bearer header). */
  health: string;
  token?: string;
  /** The URL as given, its token masked: what messages name. */
  shown: string;
}

/** The endpoints of the profiler at `url` (page or ingest form); `token` when the URL has none. `subject` names where the URL came from. */
export function profilerEndpoints(url: string, token?: string, subject = 'url'): ProfilerEndpoints {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError(
      'OPTION_INVALID',
      `profiler URL ${JSON.stringify(url)} is not a URL: give the one \`sparsevila profile\` printed (http://HOST:PORT/?token=…)`,
      {
        subject,
      },
    );
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw new InputError('OPTION_INVALID', `profiler URL ${url} must start with http://, https://, ws:// or wss:// (the one \`sparsevila profile\` printed)`, {
      subject,
    });
  }
  const t = token ?? u.searchParams.get('token') ?? undefined;
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  const page = new URL(`${secure ? 'https' : 'http'}://${u.host}/`);
  const ingest = new URL(`${secure ? 'wss' : 'ws'}://${u.host}/ws/ingest`);
  if (t) {
    page.searchParams.set('token', t);
    ingest.searchParams.set('token', t);
  }
  // Messages name the URL without its secret: the token shown as "…".
  const masked = new URL(u);
  if (masked.searchParams.has('token')) masked.searchParams.set('token', 'TOKEN');
  const shown = masked.toString().replace('token=TOKEN', 'token=…');
  return { page: page.toString(), ingest: ingest.toString(), health: `${page.origin}/api/health`, token: t, shown };
}

/**
 * Resolves when a profiler answers `GET /api/health` at the endpoints with the token; otherwise throws an
 * InputError naming the URL and why: nothing listening, no answer in time, a refused token, not a profiler.
 */
export async function checkProfiler(ends: ProfilerEndpoints, options: { timeoutMs?: number; subject?: string } = {}): Promise<void> {
  const subject = options.subject ?? 'url';
  const fail = (why: string, cause?: unknown) => new InputError('OPTION_INVALID', `no profiler at ${ends.shown}: ${why}`, { subject, cause });
  let res: Response;
  try {
    res = await fetch(ends.health, {
      headers: ends.token ? { authorization: `Bearer ${ends.token}` } : {},
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      redirect: 'error',
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError'
        ? `no answer in ${(options.timeoutMs ?? 5000) / 1000} s`
        : e.cause?.code === 'ECONNREFUSED'
          ? 'nothing is listening there (start one with `sparsevila profile`)'
          : (e.cause?.message ?? e.message);
    throw fail(why, err);
  }
  if (res.status === 401)
    throw fail(ends.token ? 'it refused the token (HTTP 401): give the URL it printed' : 'the URL has no ?token= and the profiler wants one (HTTP 401)');
  if (res.status === 403) throw fail(`it refused the request (HTTP 403: ${await errorOf(res)})`);
  const body = res.ok ? ((await res.json().catch(() => null)) as { ok?: unknown } | null) : null;
  if (body?.ok !== true) throw fail(`that is not a sparsevila profiler (GET /api/health answered HTTP ${res.status})`);
}

async function errorOf(res: Response): Promise<string> {
  const body = (await res.json().catch(() => null)) as { error?: unknown } | null;
  return typeof body?.error === 'string' ? body.error : res.statusText;
}
