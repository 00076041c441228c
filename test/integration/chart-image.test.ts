// The chart runs for real: the controller's image, built here and pushed to the local image registry, is pulled
// and run by the pod runner (chroot, the image's nonroot user, the chart's read-only root filesystem, a projected
// service-account token, the in-cluster API address). Two pods elect a leader, reconcile ModelDeployments in the
// namespaces they are given (and no other), and when the leader's pod is deleted the other takes over.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { buildImage } from '../../image/build.ts';
import { pushLayout } from '../../image/distribution.ts';
import { eventually } from '../../local/eventually.ts';
import { auditedWrites } from '../support/audit-log.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const registry = process.env.SLIPWAY_TEST_IMAGE_REGISTRY;
const skip = (process.env.SLIPWAY_TEST_SERVING !== '1' || !registry) && 'needs the local data plane (root): the pod runner and the image registry';
const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

interface PodList {
  items: { metadata: { name: string; deletionTimestamp?: string }; status: { conditions?: { type: string; status: string }[]; containerStatuses?: { containerID?: string; imageID?: string }[] } }[];
}

test('helm install runs two controller pods from the image: a leader, ModelDeployments reconciled by the pod in its namespaces only, failover on delete', { skip }, async (t) => {
  const cluster = testCluster();
  const helm = async (args: string[]): Promise<string> => (await run(join(cluster.binDir, 'helm'), args, { env: { ...process.env, KUBECONFIG: cluster.kubeconfig } })).stdout;
  const built = buildImage({ log: (l) => t.diagnostic(l) });
  const repository = `${registry}/slipway/controller`;
  const pushed = await pushLayout(join(built.dir, 'oci'), `${repository}:${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version}`);
  assert.equal(pushed.digest, built.digest);

  const release = `slipway-${randomBytes(3).toString('hex')}`;
  const system = await testNamespace(t);
  const [a, b, unwatched] = [await testNamespace(t), await testNamespace(t), await testNamespace(t)];
  t.after(() => helm(['uninstall', release, '-n', system, '--wait=false']).catch(() => ''));
  await helm(['install', release, join(root, 'charts', 'slipway'), '-n', system, '--set', `image.repository=${repository}`, '--set', `image.digest=${built.digest}`,
    '--set', `watchNamespaces={${a},${b}}`, '--wait', '--timeout=180s']);

  const pods = async (): Promise<PodList['items']> => (await getJson<PodList>(cluster, ['get', 'pods', '-n', system, '-l', `app.kubernetes.io/instance=${release}`])).items.filter((p) => !p.metadata.deletionTimestamp);
  const ready = (p: PodList['items'][number]): boolean => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const first = await pods();
  assert.equal(first.filter(ready).length, 2, 'two controller pods Ready (their readiness probes answered by the controller)');
  // Each pod is a real process of the image, run as its nonroot user, with no capabilities and no new privileges.
  for (const p of first) {
    const pid = Number(p.status.containerStatuses?.[0]?.containerID?.replace('local://', ''));
    const children = (await run('pgrep', ['-P', String(pid)]).catch(() => ({ stdout: '' }))).stdout;
    const tree = [pid, ...children.split('\n').filter(Boolean).map(Number)];
    const status = tree.map((q) => readFileSync(`/proc/${q}/status`, 'utf8')).find((s) => /^Uid:\s+65532\s/m.test(s)) ?? '';
    assert.match(status, /^Uid:\s+65532\s/m, `${p.metadata.name} runs as the image's nonroot user`);
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
  }

  const holder = async (): Promise<string> => (await getJson<{ spec: { holderIdentity?: string } }>(cluster, ['get', 'lease', release, '-n', system])).spec.holderIdentity ?? '';
  // The lease is held by one of the two pods.
  const leader = await eventually('a leader', async () => {
    const h = await holder();
    return first.some((p) => p.metadata.name === h) ? h : undefined;
  });

  for (const ns of [a, b, unwatched]) await cluster.kubectl(['apply', '-n', ns, '-f', join(root, 'examples', 'churn.yaml')]);
  for (const ns of [a, b]) await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=90s', '-n', ns, 'mdep/churn']);
  const statusWrites = auditedWrites(process.env.SLIPWAY_TEST_AUDIT_LOG ?? '', a).filter((e) => e.objectRef?.resource === 'modeldeployments' && e.objectRef.subresource === 'status');
  assert.ok(statusWrites.length > 0);
  for (const e of statusWrites) {
    assert.equal(e.user?.username, `system:serviceaccount:${system}:${release}`, 'written with the pod\'s own service-account token');
    assert.ok(e.userAgent?.includes(`(${leader})`), `by the leader's pod: ${e.userAgent}`);
  }
  const outside = await getJson<{ status?: { conditions?: unknown } }>(cluster, ['get', 'mdep', 'churn', '-n', unwatched]);
  assert.equal(outside.status?.conditions, undefined, 'a namespace the release does not watch is left alone');
  assert.deepEqual(auditedWrites(process.env.SLIPWAY_TEST_AUDIT_LOG ?? '', unwatched).filter((e) => e.user?.username?.includes(release)), []);

  // The leader's pod goes: the runner stops it (SIGTERM: the controller gives up its lease), and a pod that is
  // not the old leader takes over: the other one, or the Deployment's new pod if it asks first.
  await cluster.kubectl(['delete', 'pod', '-n', system, leader, '--wait=false']);
  const survivor = await eventually('another pod to lead', async () => {
    const h = await holder();
    return h !== '' && h !== leader ? h : undefined;
  }, { timeoutMs: 60_000, intervalMs: 250 });
  t.diagnostic(`${leader} deleted; ${survivor} leads (${first.some((p) => p.metadata.name === survivor) ? 'the other pod' : 'the new pod'})`);
  await cluster.kubectl(['patch', 'mdep', 'churn', '-n', a, '--type=merge', '-p', '{"spec":{"replicas":3}}']);
  await eventually('the new leader to reconcile the change', async () => {
    const md = await getJson<{ metadata: { generation: number }; status?: { observedGeneration?: number } }>(cluster, ['get', 'mdep', 'churn', '-n', a]);
    return md.status?.observedGeneration === md.metadata.generation;
  }, { timeoutMs: 60_000 });
  const deployments = await getJson<{ items: { spec: { replicas: number } }[] }>(cluster, ['get', 'deployments', '-n', a]);
  assert.deepEqual(deployments.items.map((d) => d.spec.replicas), [3]);
  const late = auditedWrites(process.env.SLIPWAY_TEST_AUDIT_LOG ?? '', a).filter((e) => e.objectRef?.resource === 'modeldeployments' && e.objectRef.subresource === 'status').at(-1);
  assert.ok(late?.userAgent?.includes(`(${survivor})`), `the last status write is the survivor's: ${late?.userAgent}`);
  // The Deployment brings back a second pod, from the image already unpacked.
  await eventually('two controller pods again', async () => (await pods()).filter(ready).length === 2, { timeoutMs: 90_000 });
});
