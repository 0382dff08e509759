/**
 * Request targets (RFC 9112 §3.2): origin-form (`/x?q`), which is what meshlet sends upstream,
 * absolute-form (`http://researcher/x`), which HTTP_PROXY clients send and any server must accept, and
 * asterisk-form (`OPTIONS *`), which meshlet answers itself.
 */
import { MeshletError } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';

/** What `OPTIONS *` is told: the methods meshlet forwards. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';

/**
 * The upstream name and origin-form path of a request target (RFC 9112 §3.2). An absolute-form
 * target overrides Host. `path` is null for absolute URIs meshlet cannot proxy (https://, others).
 */
export function targetOf(url: string, host: string | undefined): { name: string; path: string | null } {
  if (url.charCodeAt(0) === 47 /* / */ || url === '*') return { name: hostName(host ?? ''), path: url };
  const scheme = url.indexOf('://');
  if (scheme === -1 || url.slice(0, scheme).toLowerCase() !== 'http') return { name: hostName(host ?? ''), path: null };
  const authorityStart = scheme + 3;
  let pathStart = url.indexOf('/', authorityStart);
  const queryStart = url.indexOf('?', authorityStart);
  if (queryStart !== -1 && (pathStart === -1 || queryStart < pathStart)) pathStart = queryStart;
  const authority = pathStart === -1 ? url.slice(authorityStart) : url.slice(authorityStart, pathStart);
  let path = pathStart === -1 ? '/' : url.slice(pathStart);
  if (path.charCodeAt(0) === 63 /* ? */) path = `/${path}`;
  return { name: hostName(authority), path };
}

/** The host name of a CONNECT's authority-form target (RFC 9112 §3.2.3): `researcher:80` -> `researcher`. */
export function authorityName(authority: string): string {
  return hostName(authority);
}

/** `Researcher:8080` -> `researcher`; `user@host` userinfo is dropped; `[::1]:80` -> `[::1]`. */
function hostName(authority: string): string {
  const at = authority.lastIndexOf('@');
  const hostPort = at === -1 ? authority : authority.slice(at + 1);
  const end = hostPort.charCodeAt(0) === 91 /* [ */ ? hostPort.indexOf(']') + 1 : hostPort.lastIndexOf(':');
  return (end <= 0 ? hostPort : hostPort.slice(0, end)).toLowerCase();
}

/**
 * `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7), here meshlet: it answers 200 with
 * `Allow`, since a request line of `*` cannot be sent on through undici. `*` with any other method is
 * malformed (RFC 9112 §3.2.4).
 */
export function answerAsteriskForm(ex: Exchange): Promise<void> {
  if (ex.req.method !== 'OPTIONS') return Promise.reject(new MeshletError('bad_request', 'the asterisk-form target (*) is only for OPTIONS'));
  const res = ex.res;
  if (res === null) return Promise.reject(new MeshletError('bad_request', 'OPTIONS * cannot be an upgrade'));
  ex.status = 200;
  res.writeHead(200, { allow: ALLOW, 'content-length': 0, 'x-request-id': ex.requestId });
  res.end();
  return Promise.resolve();
}
