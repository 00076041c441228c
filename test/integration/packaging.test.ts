// The Helm chart and the kustomize base install Slipway, and the chart's RBAC is all the controller needs: the
// real controller runs with the chart's ServiceAccount token and serves a ModelDeployment.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { renderChart } from '../../scripts/gen-manifests.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const root = join(import.meta.dirname, '..', '..');
const helmBin = join(cluster.binDir, 'helm');
const run = promisify(execFile);

const helm = async (args: string[]): Promise<string> => (await run(helmBin, args, { env: { ...process.env, KUBECONFIG: cluster.kubeconfig } })).stdout;

test('manifests/ is the chart rendered with its defaults (run npm run gen:manifests after changing the chart)', async () => {
  await helm(['lint', '--strict', join(root, 'charts', 'slipway')]);
  assert.equal(readFileSync(join(root, 'manifests', 'slipway.yaml'), 'utf8'), renderChart(helmBin, root));
  const kinds = (yaml.loadAll(await cluster.kubectl(['kustomize', join(root, 'manifests')])) as { kind: string }[]).map((d) => d.kind).sort();
  assert.deepEqual(kinds, ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Deployment', 'Namespace', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
});

test('kubectl apply -k manifests/ installs Slipway without Helm', async (t) => {
  const rendered = await cluster.kubectl(['kustomize', join(root, 'manifests')]);
  // The CRDs are shared with the other tests: afterwards, delete everything else.
  const rest = (yaml.loadAll(rendered) as { kind: string }[]).filter((d) => d.kind !== 'CustomResourceDefinition');
  t.after(() => cluster.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], rest.map((d) => JSON.stringify(d)).join('\n')).then(() => undefined));
  await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], rendered);
  await cluster.kubectl(['wait', '-n', 'slipway-system', '--for=condition=Available', '--timeout=90s', 'deployment/slipway']);
  const sa = await getJson<{ metadata: { name: string } }>(cluster, ['get', 'serviceaccount', 'slipway', '-n', 'slipway-system']);
  assert.equal(sa.metadata.name, 'slipway');
  await cluster.kubectl(['auth', 'can-i', 'patch', 'modeldeployments.slipway.dev', '--subresource=status', '--as=system:serviceaccount:slipway-system:slipway', '-n', 'default']);
});

test('helm install brings the controller Deployment up, and its RBAC lets the controller serve a ModelDeployment', async (t) => {
  const release = `slipway-${randomBytes(3).toString('hex')}`;
  const system = await testNamespace(t);
  const workload = await testNamespace(t);
  t.after(() => helm(['uninstall', release, '-n', system, '--wait=false']).catch(() => ''));
  await helm(['install', release, join(root, 'charts', 'slipway'), '-n', system, '--wait', '--timeout=90s']);
  const dep = await getJson<{ status: { availableReplicas?: number } }>(cluster, ['get', 'deployment', release, '-n', system]);
  assert.equal(dep.status.availableReplicas, 2, 'KWOK runs the two controller replicas (no container: the pods are fake)');

  // The real controller, as the chart's ServiceAccount: RBAC is enforced by the API server.
  const token = (await cluster.kubectl(['create', 'token', release, '-n', system, '--duration=1h'])).trim();
  const admin = yaml.load(readFileSync(cluster.kubeconfig, 'utf8')) as { clusters: { cluster: Record<string, string> }[] };
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'slipway-sa-')), 'config');
  writeFileSync(kubeconfig, yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: admin.clusters[0]?.cluster }],
    users: [{ name: 'sa', user: { token } }],
    contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa' } }],
    'current-context': 'sa',
  }));
  await assert.rejects(run(join(cluster.binDir, 'kubectl'), ['get', 'secrets', '-n', workload], { env: { ...process.env, KUBECONFIG: kubeconfig } }), /forbidden/, 'the token is not an admin');

  await startController(t, cluster, workload, { kubeconfig, leaseNamespace: system, args: [`--leader-election-id=${release}`] });
  await cluster.kubectl(['apply', '-n', workload, '-f', join(root, 'examples', 'churn.yaml')]);
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', workload, 'mdep/churn']);
  const events = await getJson<{ items: { reason: string; involvedObject: { name: string } }[] }>(cluster, ['get', 'events', '-n', workload]);
  assert.ok(events.items.some((e) => e.involvedObject.name === 'churn' && e.reason === 'Ready'), 'Events are allowed too');
});
