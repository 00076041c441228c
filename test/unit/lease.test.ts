// Leader election keeps campaigning through API errors, and takes over a lease only once its holder has stopped
// renewing it for the lease's duration as observed here.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { test } from 'node:test';
import { LeaderElector } from '../../src/kube/lease.ts';
import { microTime } from '../../src/kube/time.ts';
import { eventually } from '../../local/eventually.ts';
import { clientFor } from '../support/fake-kubeconfig.ts';

async function leaseServer(handle: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, client: await clientFor((server.address() as { port: number }).port) };
}

const json = (res: ServerResponse, code: number, body: unknown) => res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));

test('a campaign survives API errors and leads once the lease can be created', async () => {
  let gets = 0;
  const { server, client } = await leaseServer((req, res, body) => {
    if (req.method === 'GET') {
      gets++;
      return gets <= 2 ? json(res, 500, { kind: 'Status', code: 500, message: 'etcd timeout' }) : json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'not found' });
    }
    json(res, 201, JSON.parse(body));
  });
  const elector = new LeaderElector(client, { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 20 });
  let started = false;
  const running = elector.run(() => (started = true), () => {});
  await eventually('leadership', () => started);
  assert.ok(gets >= 3, 'it went on after two failed reads');
  await elector.stop();
  await running;
  server.closeAllConnections();
  server.close();
});

test('a lease someone else renews is never taken; one they stopped renewing is taken after its duration', async () => {
  let renewTime = '2026-01-01T00:00:00.000000Z';
  let writes = 0;
  let renewing = true;
  const { server, client } = await leaseServer((req, res, body) => {
    if (req.method === 'GET') {
      if (renewing) renewTime = microTime(new Date());
      return json(res, 200, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'ns', resourceVersion: '5' }, spec: { holderIdentity: 'other', leaseDurationSeconds: 1, renewTime } });
    }
    writes++;
    json(res, 200, JSON.parse(body));
  });
  const elector = new LeaderElector(client, { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 50 });
  for (let i = 0; i < 5; i++) assert.equal(await elector.tryAcquireOrRenew(), false);
  assert.equal(writes, 0, 'no write while the holder renews');
  renewing = false;
  assert.equal(await elector.tryAcquireOrRenew(), false, 'a lease just seen unchanged is not yet expired');
  const lastChangeSeen = performance.now(); // no later than when this elector saw the last renewal
  await eventually('the takeover after the lease duration', () => elector.tryAcquireOrRenew(), { timeoutMs: 5000, intervalMs: 50 });
  const after = performance.now() - lastChangeSeen;
  assert.equal(writes, 1);
  // Taken no sooner than the holder's 1 s duration after the renewal it last saw, and soon after that.
  assert.ok(after >= 1000 - 60, `taken ${Math.round(after)} ms after the last renewal was seen`);
  assert.ok(after < 1000 + 500, `taken ${Math.round(after)} ms after the last renewal was seen`);
  server.closeAllConnections();
  server.close();
});

/** A lease server that answers until told to black-hole: from then on requests are read and never answered. */
async function blackHoleableLeaseServer() {
  let blackHoled = false;
  let stuck = 0;
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'ns', resourceVersion: '1' }, spec: {} as Record<string, unknown> };
  const writesLanded: string[] = [];
  const { server, client } = await leaseServer((req, res, body) => {
    if (blackHoled) {
      stuck++;
      return; // no answer, no reset: the socket stays open and silent
    }
    if (req.url?.includes('/leases')) {
      if (req.method === 'GET') return json(res, 200, lease);
      Object.assign(lease, JSON.parse(body));
      lease.metadata.resourceVersion = String(Number(lease.metadata.resourceVersion) + 1);
      return json(res, 200, lease);
    }
    writesLanded.push(`${req.method} ${req.url}`);
    json(res, 200, { metadata: { name: 'x' } });
  });
  return { server, client, writesLanded, blackHole: () => (blackHoled = true), stuck: () => stuck };
}

test('against a black-holed API server the term ends at the renew deadline, and writes in flight are aborted', async (t) => {
  const s = await blackHoleableLeaseServer();
  t.after(() => {
    s.server.closeAllConnections();
    s.server.close();
  });
  const leaseClient = s.client.withOwnConnections();
  const elector = new LeaderElector(leaseClient, { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 3000, renewDeadlineMs: 1000, retryPeriodMs: 200 });
  s.client.gateWrites(elector);
  let stoppedAt: number | undefined;
  let started = false;
  const running = elector.run(() => (started = true), () => (stoppedAt = performance.now()));
  await eventually('leadership', () => started);
  await s.client.request({ method: 'PATCH', path: '/api/v1/namespaces/ns/configmaps/x', body: {} });
  assert.equal(s.writesLanded.length, 1, 'the leader writes');

  s.blackHole();
  const blackHoledAt = performance.now();
  const inFlight = s.client.request({ method: 'PATCH', path: '/api/v1/namespaces/ns/configmaps/x', body: {}, timeoutMs: 30_000 });
  await assert.rejects(inFlight, /write aborted: could not renew lease ns\/l within 1000 ms/);
  const abortedAfter = performance.now() - blackHoledAt;
  await running;
  assert.ok(stoppedAt !== undefined, 'leadership ended');
  // Bounded by the last renewal's send time + the renew deadline, never by the 30 s socket timeout.
  assert.ok(abortedAfter <= 1000 + 100, `in-flight write aborted ${Math.round(abortedAfter)} ms after the black hole`);
  assert.ok((stoppedAt ?? 0) - blackHoledAt <= 1000 + 100, `term ended ${Math.round((stoppedAt ?? 0) - blackHoledAt)} ms after the black hole`);
  assert.ok(s.stuck() >= 2, `the renewal and the write both reached the black hole: ${s.stuck()}`);
  await assert.rejects(s.client.request({ method: 'PATCH', path: '/api/v1/namespaces/ns/configmaps/x', body: {} }), /does not hold lease/);
  assert.equal(s.writesLanded.length, 1, 'nothing landed after the term');
});

test('lease expiry is measured on the monotonic clock, never on the wall clock', async () => {
  let now = 1_000;
  const { server, client } = await leaseServer((req, res, body) => {
    if (req.method === 'GET') return json(res, 200, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'ns', resourceVersion: '5' }, spec: { holderIdentity: 'other', leaseDurationSeconds: 10, renewTime: '2026-01-01T00:00:00.000000Z' } });
    json(res, 200, JSON.parse(body));
  });
  const elector = new LeaderElector(client, { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, monotonicNow: () => now });
  assert.equal(await elector.tryAcquireOrRenew(), false, 'first sight of the lease');
  now += 9_000;
  assert.equal(await elector.tryAcquireOrRenew(), false, '9 s of 10: still theirs');
  now += 1_001;
  assert.equal(await elector.tryAcquireOrRenew(), true, 'expired after its duration on our clock, with no wall time passing');
  server.closeAllConnections();
  server.close();
});

test('a leader renews with one write over the Lease it last wrote, no read; after a conflict it reads again', async () => {
  const requests: string[] = [];
  let rv = 1;
  let conflictNext = false;
  const { server, client } = await leaseServer((req, res, body) => {
    requests.push(req.method ?? '');
    if (req.method === 'GET') return json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'not found' });
    if (conflictNext && req.method === 'PUT') {
      conflictNext = false;
      return json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' });
    }
    const obj = JSON.parse(body) as { metadata: Record<string, unknown> };
    json(res, req.method === 'POST' ? 201 : 200, { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++rv) } });
  });
  const elector = new LeaderElector(client, { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 20, renewIntervalMs: 30 });
  let started = false;
  const running = elector.run(() => (started = true), () => {});
  await eventually('leadership', () => started);
  // The create (a POST after a GET that found nothing) is not a write this elector can renew over: one read, then PUTs only.
  await eventually('four renewals', () => requests.filter((m) => m === 'PUT').length >= 4);
  const afterAcquire = requests.slice(requests.indexOf('POST') + 1);
  assert.deepEqual([...new Set(afterAcquire.slice(2))], ['PUT'], `renewals are writes alone: ${afterAcquire.join(' ')}`);
  conflictNext = true;
  const before = requests.length;
  await eventually('a renewal after the conflict', () => requests.slice(before).filter((m) => m === 'PUT').length >= 2);
  assert.ok(requests.slice(before).includes('GET'), 'after a conflict it reads the Lease again');
  await elector.stop();
  await running;
  server.closeAllConnections();
  server.close();
});
