// Leader election keeps campaigning through API errors, and takes over a lease only once its holder has stopped
// renewing it for the lease's duration as observed here.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { test } from 'node:test';
import { LeaderElector } from '../../src/kube/lease.ts';
import { microTime } from '../../src/kube/time.ts';
import { eventually } from '../support/eventually.ts';
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
  await eventually('the takeover after the lease duration', () => elector.tryAcquireOrRenew(), { timeoutMs: 5000, intervalMs: 100 });
  assert.equal(writes, 1);
  server.closeAllConnections();
  server.close();
});
