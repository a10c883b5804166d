import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

// Who may talk to the viewer: the viewer holds the doctor's keys and answers
// with patients' images, so a web page the doctor happens to have open must
// not reach it. Every request carries the per-launch token (query `t` for
// navigations, EventSource and downloads; header x-fnn-token for the page's
// own fetches, and only that for anything that is not a GET, which a foreign
// form cannot set); its Host must be the address the viewer listens on (a
// DNS-rebound name is refused even with the port right); an Origin or
// Sec-Fetch-Site header, when the browser sends one, must say same-origin.

export const TOKEN_HEADER = 'x-fnn-token';

/** 32 random bytes as hex: a new one each launch, printed once in the URL. */
export const newToken = () => randomBytes(32).toString('hex');

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** The Host headers the viewer answers to once bound to host:port: for loopback, its usual names. */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = isLoopback(host)
    ? ['127.0.0.1', 'localhost', '[::1]', host.includes(':') ? `[${host}]` : host]
    : [host.includes(':') ? `[${host}]` : host];
  return new Set(names.map((n) => `${n.toLowerCase()}:${port}`));
}

export interface GuardRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  /** The query's `t`, if any. */
  queryToken?: string;
}

const header = (r: GuardRequest, name: string) => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Why a request is refused, in a line that names no secret; undefined when it may pass. */
export function refusal(r: GuardRequest, token: string, hosts: Set<string>): string | undefined {
  const host = header(r, 'host')?.toLowerCase();
  if (!host || !hosts.has(host)) return 'this viewer answers only at the address it printed';
  const origin = header(r, 'origin');
  if (origin !== undefined && !hosts.has(origin.toLowerCase().replace(/^http:\/\//, ''))) return 'requests from other sites are refused';
  if (origin !== undefined && !origin.toLowerCase().startsWith('http://')) return 'requests from other sites are refused';
  const site = header(r, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return 'requests from other sites are refused';
  const given = header(r, TOKEN_HEADER) ?? (r.method === 'GET' || r.method === 'HEAD' ? r.queryToken : undefined);
  if (!sameToken(given, token)) return 'open the viewer with the address it printed (its token is missing or wrong)';
  return undefined;
}
