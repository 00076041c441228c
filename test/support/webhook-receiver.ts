// A notification receiver for tests: a loopback HTTP server that records every POST (path, headers, JSON body) and
// can refuse the first few (503 by default, as a receiver that is briefly down would).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  raw: string;
  /** The status it was answered with. */
  status: number;
}

export interface WebhookReceiver {
  url: (path: string) => string;
  received: Received[];
  /** Those answered 2xx. */
  accepted: (path: string) => Received[];
  close: () => Promise<void>;
}

export async function startWebhookReceiver(opts: { refuseFirst?: number; refuseWith?: number } = {}): Promise<WebhookReceiver> {
  const received: Received[] = [];
  let refuse = opts.refuseFirst ?? 0;
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        // recorded as is
      }
      const status = req.method !== 'POST' ? 405 : refuse-- > 0 ? (opts.refuseWith ?? 503) : 200;
      received.push({ path: req.url ?? '', headers: req.headers, body, raw, status });
      res.writeHead(status).end(status === 200 ? 'ok' : 'unavailable');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    accepted: (path) => received.filter((r) => r.path === path && r.status === 200),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
