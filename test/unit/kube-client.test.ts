// The client's server-side apply: its answer (the whole object) is drained unread, on a connection that is used
// again; an error's answer is still read into a typed error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer } from 'node:http';
import { KubeApiError } from '../../src/kube/errors.ts';
import { Resources } from '../../src/kube/resources.ts';
import { clientFor } from '../support/fake-kubeconfig.ts';

test('an apply resolves without reading its answer, over one kept-alive connection; a refusal is a typed error with its message', async () => {
  const seen: { method: string | undefined; url: string | undefined; contentType: string | undefined; body: string }[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, contentType: req.headers['content-type'], body });
      if (req.url?.includes('/refused')) {
        res.writeHead(422, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 422, reason: 'Invalid', message: 'Deployment.apps "refused" is invalid: spec.replicas: must be >= 0' }));
        return;
      }
      // Large, and not JSON at all: were it parsed, the apply would fail.
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`{"kind":"Deployment", ${'x'.repeat(256 * 1024)}`);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = await clientFor((server.address() as { port: number }).port);
  try {
    const obj = { metadata: { name: 'model', namespace: 'ns' }, spec: { replicas: 1 } };
    assert.equal(await client.apply(Resources.Deployment, obj), undefined);
    await client.apply(Resources.Deployment, obj);
    assert.equal(connections, 1, 'the second apply went over the first one\'s connection: the answer was drained to its end');
    assert.equal(seen[0]?.method, 'PATCH');
    assert.equal(seen[0]?.url, '/apis/apps/v1/namespaces/ns/deployments/model?fieldManager=slipway&force=true');
    assert.equal(seen[0]?.contentType, 'application/apply-patch+yaml');
    assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), { ...obj, apiVersion: 'apps/v1', kind: 'Deployment' });
    await assert.rejects(client.apply(Resources.Deployment, { metadata: { name: 'refused', namespace: 'ns' } }), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 422);
      assert.match(err.message, /spec\.replicas: must be >= 0/);
      return true;
    });
  } finally {
    client.close();
    server.close();
  }
});
