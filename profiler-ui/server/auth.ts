/**
 * The profiler's access token, Jupyter-style: a random secret printed in the URL. Any local process or web
 * page could otherwise read traces (prompts, answers, images) or feed fake runs, so every route and
 * WebSocket upgrade checks it. It may come as `?token=`, `Authorization: Bearer`, or the cookie that a
 * query-token request sets (HttpOnly, SameSite=Strict) so the page's later requests need not repeat it.
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type TokenSource = 'query' | 'header' | 'cookie';

export function randomToken(): string {
  return crypto.randomBytes(24).toString('base64url');
}

/** Cookies are per host, not per port: the port in the name keeps two profilers on one host apart. */
export function cookieName(port: number): string {
  return `sparsevila-profiler-${port}`;
}

export class TokenAuth {
  constructor(
    readonly token: string,
    readonly cookie: string,
  ) {}

  /** Where a valid token came from, or null when the request has none or a wrong one. */
  check(req: IncomingMessage): TokenSource | null {
    const url = new URL(req.url ?? '/', 'http://profiler.invalid');
    const query = url.searchParams.get('token');
    if (query !== null && this.matches(query)) return 'query';
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ') && this.matches(header.slice(7).trim())) return 'header';
    const cookie = parseCookies(req.headers.cookie)[this.cookie];
    if (cookie !== undefined && this.matches(cookie)) return 'cookie';
    return null;
  }

  /** The Set-Cookie value that lets the page's own requests through. */
  setCookieHeader(): string {
    return `${this.cookie}=${this.token}; HttpOnly; SameSite=Strict; Path=/`;
  }

  private matches(candidate: string): boolean {
    const a = Buffer.from(candidate);
    const b = Buffer.from(this.token);
    // Constant time, so the token cannot be guessed byte by byte from response timings.
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep it raw: a malformed cookie simply will not match
    }
    if (name && !(name in out)) out[name] = value;
  }
  return out;
}

/**
 * Browsers send `Origin` on WebSocket upgrades; a page from another site must not open our sockets even
 * if the cookie rode along. Non-browser clients (engine, kernels) send no Origin: allowed.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  if (!host) return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}
