/**
 * The profiler's access token, Jupyter-style: a random secret printed in the URL. Any local process or web
 * page could otherwise read traces (prompts, answers, images) or feed fake runs, so every route and
 * WebSocket upgrade checks it. It may come as `?token=`, `Authorization: Bearer`, or the cookie that a
 * query-token request sets (HttpOnly, SameSite=Strict) so the page's later requests need not repeat it.
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import { InputError } from '../../src/errors.js';

export type TokenSource = 'query' | 'header' | 'cookie';

export function randomToken(): string {
  return crypto.randomBytes(24).toString('base64url');
}

/** Shortest token accepted: 16 characters, about as hard to guess as 96 random bits of base64url. */
export const MIN_TOKEN_LENGTH = 16;

/** A chosen token must be long enough to be a secret: '' would make `?token=` a login. */
export function checkToken(token: string): void {
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new InputError('OPTION_INVALID', `--token must be at least ${MIN_TOKEN_LENGTH} characters (got ${token.length}); leave it out for a random one`, {
      subject: '--token',
    });
  }
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

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/** The wildcard binds: every interface. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.includes(host) || host.startsWith('127.') || host.endsWith('.localhost');
}

/** The addresses of this machine's interfaces that a wildcard bind serves (loopback first). */
export function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out.sort((a, b) => Number(isLoopback(b)) - Number(isLoopback(a)));
}

/**
 * The Host header, checked against the names this server is bound to, as Jupyter does: a DNS-rebinding page
 * (evil.example resolving to 127.0.0.1) sends its own name as Host, so it is refused even if it learned the
 * token. Allowed: loopback names, the bound host (for a wildcard bind, the machine's addresses and host
 * name), and `allowHosts` (`*` allows any, like Jupyter's allow_remote_access).
 */
export class HostCheck {
  private readonly names: Set<string>;
  private readonly any: boolean;

  constructor(boundHost: string, allowHosts: readonly string[] = []) {
    this.any = allowHosts.includes('*');
    const names = [...LOOPBACK_NAMES, boundHost, ...allowHosts];
    if (isWildcard(boundHost)) names.push(...interfaceAddresses(), os.hostname());
    this.names = new Set(names.map((n) => hostName(n)));
  }

  allows(req: IncomingMessage): boolean {
    if (this.any) return true;
    const header = req.headers.host;
    if (!header) return false;
    const name = hostName(header);
    return this.names.has(name) || name.endsWith('.localhost');
  }

  refusal(req: IncomingMessage): string {
    return `Host ${JSON.stringify(req.headers.host ?? '')} is not a name this profiler is bound to; open it by one of ${[...this.names].join(', ')}, or start it with --allow-host NAME`;
  }
}

/** The name part of a Host header or an address, lower case: `[::1]:80` → `::1`, `Example:80` → `example`. */
function hostName(value: string): string {
  const v = value.trim().toLowerCase();
  if (v.startsWith('[')) return v.slice(1, v.indexOf(']') < 0 ? undefined : v.indexOf(']'));
  const colons = v.split(':').length - 1;
  if (colons === 1) return v.slice(0, v.indexOf(':'));
  return v.replace(/\.$/, '');
}
