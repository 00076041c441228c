// Finding the API server as kubectl does, without client-node for the common cases: a kubeconfig's certificates
// (inline or by a path relative to the file), tokens (inline or a file read again every minute), basic auth, the
// in-cluster service account (its token rotating), and client-node's loader for what is not read here.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import yaml from 'js-yaml';
import { KubeClient } from '../../src/kube/client.ts';
import { loadConnection, loadWithClientNode, TOKEN_FILE_PERIOD_MS, UnsupportedKubeconfig } from '../../src/kube/kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'slipway-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  const file = join(dir, name);
  writeFileSync(file, yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ctx',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': Buffer.from('CA').toString('base64'), ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace: 'team-a' } }, { name: 'other', context: { cluster: 'c', user: 'u' } }],
  }));
  return file;
}

test('client certificates inline or by a path relative to the kubeconfig, the context\'s namespace', async () => {
  writeFileSync(join(dir, 'client.crt'), 'CERT');
  const inline = loadConnection({ kubeconfig: kubeconfig('inline', { 'client-certificate-data': Buffer.from('CERT').toString('base64'), 'client-key-data': Buffer.from('KEY').toString('base64') }) });
  assert.equal(inline.server, 'https://127.0.0.1:6443');
  assert.equal(inline.namespace, 'team-a');
  assert.equal(inline.tls.ca?.toString(), 'CA');
  assert.equal(inline.tls.cert?.toString(), 'CERT');
  assert.equal(inline.tls.key?.toString(), 'KEY');
  assert.deepEqual(await inline.headers(), {});
  const byPath = loadConnection({ kubeconfig: kubeconfig('bypath', { 'client-certificate': 'client.crt', 'client-key-data': Buffer.from('KEY').toString('base64') }, { 'tls-server-name': 'kubernetes' }), context: 'other' });
  assert.equal(byPath.tls.cert?.toString(), 'CERT');
  assert.equal(byPath.tls.servername, 'kubernetes');
  assert.equal(byPath.namespace, 'default', 'a context without a namespace');
});

test('tokens: inline, a token file read again once a minute, basic auth', async () => {
  assert.deepEqual(await loadConnection({ kubeconfig: kubeconfig('token', { token: 't0' }) }).headers(), { Authorization: 'Bearer t0' });
  writeFileSync(join(dir, 'token-file'), 'first\n');
  let now = 1_000_000;
  const c = loadConnection({ kubeconfig: kubeconfig('tokenfile', { tokenFile: 'token-file' }), now: () => now });
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer first' });
  writeFileSync(join(dir, 'token-file'), 'rotated\n');
  now += TOKEN_FILE_PERIOD_MS - 1;
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer first' }, 'within the period: the copy read before');
  now += 1;
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer rotated' }, 'a period later: read again');
  assert.deepEqual(await loadConnection({ kubeconfig: kubeconfig('basic', { username: 'a', password: 'b' }) }).headers(), { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
});

test('in a pod: the service account\'s CA, namespace and token (rotating), the in-cluster address', async () => {
  const sa = join(dir, 'sa');
  mkdirSync(sa);
  writeFileSync(join(sa, 'ca.crt'), 'POD-CA');
  writeFileSync(join(sa, 'namespace'), 'slipway-system');
  writeFileSync(join(sa, 'token'), 'pod-token-1');
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: dir };
  let now = 5_000;
  const c = loadConnection({ env, serviceAccountDir: sa, now: () => now });
  assert.equal(c.source, 'in-cluster');
  assert.equal(c.server, 'https://10.96.0.1:443');
  assert.equal(c.namespace, 'slipway-system');
  assert.equal(c.tls.ca?.toString(), 'POD-CA');
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer pod-token-1' });
  writeFileSync(join(sa, 'token'), 'pod-token-2'); // the kubelet rotates it
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer pod-token-1' }, 'read at most once a minute');
  now += TOKEN_FILE_PERIOD_MS;
  assert.deepEqual(await c.headers(), { Authorization: 'Bearer pod-token-2' });
  assert.equal(loadConnection({ env: { ...env, KUBERNETES_SERVICE_HOST: 'fd00::1' }, serviceAccountDir: sa }).server, 'https://[fd00::1]:443');
  // $KUBECONFIG wins over the pod's own account, as with kubectl.
  assert.equal(loadConnection({ env: { ...env, KUBECONFIG: kubeconfig('env', { token: 'x' }) }, serviceAccountDir: sa }).namespace, 'team-a');
});

test('what is not read here goes to client-node: exec plugins, auth providers, several files; bad files say why', async () => {
  const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
  const exec = kubeconfig('exec', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', `echo '${credential}'`], interactiveMode: 'Never' } });
  assert.throws(() => loadConnection({ kubeconfig: exec }), UnsupportedKubeconfig);
  assert.throws(() => loadConnection({ env: { KUBECONFIG: `${exec}:${exec}` } }), UnsupportedKubeconfig);
  const client = await KubeClient.load({ kubeconfig: exec });
  assert.equal(client.source, 'client-node');
  client.close();
  assert.deepEqual(await (await loadWithClientNode({ kubeconfig: exec })).headers(), { Authorization: 'Bearer from-exec' }, 'the plugin\'s token');
  assert.equal((await KubeClient.load({ kubeconfig: kubeconfig('plain', { token: 't' }) })).source, join(dir, 'plain'));
  assert.throws(() => loadConnection({ kubeconfig: kubeconfig('ctx', { token: 't' }), context: 'nope' }), /no context named nope/);
  assert.throws(() => loadConnection({ env: { HOME: join(dir, 'nowhere') }, serviceAccountDir: join(dir, 'nowhere') }), /no kubeconfig/);
});
