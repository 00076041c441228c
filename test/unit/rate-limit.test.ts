// The client-side rate limit: a burst goes at once, then requests are spaced at the sustained rate, in the order
// they asked, and a quiet period refills the bucket up to the burst; a reconcile's trace of its requests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer, type ServerResponse } from 'node:http';
import { ClientRateLimiter } from '../../src/kube/rate-limit.ts';
import { traced } from '../../src/kube/trace.ts';
import { eventually } from '../../local/eventually.ts';
import { clientFor } from '../support/fake-kubeconfig.ts';

test('a burst goes at once, then one request per 1/qps seconds, in order; quiet time refills up to the burst', () => {
  let now = 0;
  const limiter = new ClientRateLimiter({ qps: 10, burst: 3 }, () => now);
  assert.deepEqual([1, 2, 3].map(() => limiter.reserve()), [0, 0, 0], 'the burst');
  const waits = [1, 2, 3].map(() => Math.round(limiter.reserve()));
  assert.deepEqual(waits, [100, 200, 300], 'each later request waits one more interval: none overtakes another');
  now = 10_000; // long quiet: the bucket is full again, but no fuller than the burst
  assert.deepEqual([1, 2, 3, 4].map(() => Math.round(limiter.reserve())), [0, 0, 0, 100]);
});

test('over a long run the rate is the qps, whatever the burst', () => {
  let now = 0;
  const limiter = new ClientRateLimiter({ qps: 50, burst: 300 }, () => now);
  let sent = 0;
  // 10 s of a caller that always has work: each request goes when its wait is over.
  while (now < 10_000) {
    now += limiter.reserve();
    sent++;
  }
  assert.ok(sent >= 300 + 50 * 10 - 1 && sent <= 300 + 50 * 10 + 1, `${sent} requests in 10 s at qps 50 after a burst of 300`);
});

test('a limit needs a positive rate and a burst of at least one', () => {
  assert.throws(() => new ClientRateLimiter({ qps: 0, burst: 10 }), /qps > 0/);
  assert.throws(() => new ClientRateLimiter({ qps: 5, burst: 0 }), /burst >= 1/);
});

test('a reconcile\'s trace holds the requests it sent, with their waits for the rate limit; another reconcile\'s are not mixed in', async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as { port: number }).port;
    const client = await clientFor(port, { rateLimit: { qps: 20, burst: 1 } });
    const one = traced(true, async () => {
      await client.request({ method: 'GET', path: '/apis/apps/v1/namespaces/a/deployments/x' });
      await client.request({ method: 'PATCH', path: '/api/v1/namespaces/a/services/x', body: {} });
    });
    const other = traced(true, () => client.request({ method: 'GET', path: '/api/v1/namespaces/b/pods' }));
    await Promise.all([one.result, other.result]);
    assert.deepEqual(one.trace?.requests.map((r) => r.request), ['GET apps/v1/deployments/x', 'PATCH v1/services/x']);
    assert.deepEqual(other.trace?.requests.map((r) => r.request), ['GET v1/pods']);
    // Burst 1: of the three requests, the first went at once and the two others waited for their tokens.
    const waits = [...(one.trace?.requests ?? []), ...(other.trace?.requests ?? [])].map((r) => r.throttledMs).sort((a, b) => a - b);
    assert.equal(waits[0], 0);
    assert.ok((waits[1] ?? 0) > 0 && (waits[2] ?? 0) > 0, `waits ${waits.join(', ')}`);
    assert.equal(traced(false, () => Promise.resolve()).trace, undefined);
    client.close();
  } finally {
    server.close();
  }
});

test('watches do not take the sockets requests need: with every request socket\'s worth of watches open, a request still goes', async () => {
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    if (req.url?.includes('watch=true')) {
      res.write(''); // a watch: headers sent, the body stays open
      open.add(res);
      return;
    }
    res.end('{"kind":"Status"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as { port: number }).port;
    const client = await clientFor(port, { maxSockets: 4 });
    // Six watches on a pool of four request sockets (as 16 informers over 2 namespaces on 32).
    const watches = Array.from({ length: 6 }, (_, i) => client.stream({ path: `/api/v1/namespaces/n${i}/pods`, query: { watch: 'true' } }));
    // Every watch is open at the server before the request is sent (bounded: two seconds).
    await eventually('six watches open at the server', () => open.size === 6, { timeoutMs: 2000, intervalMs: 10 });
    assert.equal(open.size, 6, 'six watches open');
    const answer = await client.request<{ kind: string }>({ method: 'GET', path: '/api/v1/namespaces/a/pods/x', signal: AbortSignal.timeout(2000) });
    assert.equal(answer.kind, 'Status');
    for (const w of await Promise.all(watches)) w.destroy();
    client.close();
  } finally {
    for (const r of open) r.destroy();
    server.close();
  }
});
