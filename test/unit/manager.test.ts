// The manager is not ready until every cache has synced, and serves health and metrics meanwhile.
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { test } from 'node:test';
import { Resources, type KubeObject } from '../../src/kube/resources.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { ControllerMetrics } from '../../src/runtime/metrics.ts';
import { Manager } from '../../src/runtime/manager.ts';
import { eventually } from '../../local/eventually.ts';
import { clientFor } from '../support/fake-kubeconfig.ts';

test('/readyz answers 503 until the caches have synced, then 200; /healthz and /metrics answer throughout', async () => {
  let releaseList: (() => void) | undefined;
  const server = createServer((req, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch')) return; // a watch that stays open
    releaseList = () => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = await clientFor((server.address() as { port: number }).port);
  const logger = createLogger('test');
  logger.level = 'silent';
  const manager = new Manager({ client, logger, metrics: new ControllerMetrics({ processMetrics: false }), port: 0, host: '127.0.0.1' });
  manager.informer(Resources.ModelDeployment);
  const starting = manager.start();
  await eventually('the health server', () => manager.address);
  const get = async (path: string) => (await fetch(`${manager.address}${path}`)).status;

  await eventually('the list request', () => releaseList !== undefined);
  assert.equal(await get('/readyz'), 503);
  assert.equal(await get('/healthz'), 200);
  assert.equal(await get('/metrics'), 200);
  releaseList?.();
  await starting;
  assert.equal(await get('/readyz'), 200);
  await manager.stop();
  server.closeAllConnections();
  server.close();
});

test('one informer per resource and selector: asking again gives the same cache; asking it with another transform is refused', async () => {
  const client = await clientFor(1);
  const logger = createLogger('test');
  logger.level = 'silent';
  const manager = new Manager({ client, logger, metrics: new ControllerMetrics({ processMetrics: false }), port: 0, host: '127.0.0.1' });
  const slim = (o: KubeObject): KubeObject => o;
  const first = manager.informer(Resources.Deployment, { labelSelector: 'a=b', transform: slim });
  assert.equal(manager.informer(Resources.Deployment, { labelSelector: 'a=b', transform: slim }), first);
  assert.throws(() => manager.informer(Resources.Deployment, { labelSelector: 'a=b' }), /already registered with another transform/);
  assert.notEqual(manager.informer(Resources.Deployment, { labelSelector: 'a=c' }), first);
});
