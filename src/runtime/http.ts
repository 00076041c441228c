// Outbound HTTP to endpoints users name (Prometheus, web metrics, notification webhooks): one request, a timeout,
// a size limit on the answer, no redirects followed (a 3xx is an answer, so a server cannot send Slipway to an
// address nobody configured), optional CAs to trust instead of the system's, and credentials only as headers.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Credentials {
  /** `Authorization: Bearer …` */
  token?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** PEM: the CAs to trust for https instead of the system's. */
  ca?: string | undefined;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

export class HttpError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** The origin of a URL, for messages and logs: never its path, query or userinfo (a Slack URL's path is its secret). */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(an invalid URL)';
  }
}

export function authorization(c: Credentials | undefined): Record<string, string> {
  if (c?.token) return { authorization: `Bearer ${c.token}` };
  if (c?.username !== undefined && c.password !== undefined) return { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` };
  return {};
}

export function send(method: 'GET' | 'POST', url: string, opts: { headers?: Record<string, string>; body?: string; credentials?: Credentials | undefined; timeoutMs?: number; maxBytes?: number } = {}): Promise<HttpAnswer> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new HttpError('not a valid URL'));
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.reject(new HttpError(`${u.protocol} is not http or https`));
  if (u.username || u.password) return Promise.reject(new HttpError('credentials in the URL are refused: put them in the Secret'));
  const maxBytes = opts.maxBytes ?? 4 << 20;
  const headers: Record<string, string> = { 'user-agent': 'slipway', ...authorization(opts.credentials), ...opts.headers };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const make = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = make(u, { method, headers, timeout: opts.timeoutMs ?? 10_000, ...(u.protocol === 'https:' && opts.credentials?.ca ? { ca: opts.credentials.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          req.destroy(new HttpError(`the answer is larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new HttpError(`no answer within ${opts.timeoutMs ?? 10_000} ms`, 'ETIMEDOUT')));
    req.on('error', (err: Error & { code?: string }) => reject(err instanceof HttpError ? err : new HttpError(err.code ?? err.message, err.code)));
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}
