// The local control plane behaves like a cluster: Deployments get pods on KWOK nodes, the garbage collector and
// the namespace controller run, Jobs finish, and the traffic-routing CRDs are served.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../../local/eventually.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();

interface ListOf<T> {
  items: T[];
}
interface Pod {
  metadata: { name: string };
  spec: { nodeName?: string };
  status: { phase?: string; conditions?: { type: string; status: string }[] };
}

function deployment(name: string, replicas: number): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'server', image: 'registry.invalid/model-server:1' }] },
      },
    },
  });
}

test('kubectl and the API server both report v1.37.2', async () => {
  const version = await getJson<{ clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } }>(cluster, ['version']);
  assert.equal(version.clientVersion.gitVersion, 'v1.37.2');
  assert.equal(version.serverVersion.gitVersion, 'v1.37.2');
});

test('a Deployment of 3 replicas gets 3 available pods on KWOK nodes, and deleting it collects its ReplicaSet and pods', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], deployment('scorer', 3));
  await cluster.kubectl(['wait', '-n', ns, '--for=jsonpath={.status.availableReplicas}=3', '--timeout=60s', 'deployment/scorer']);

  const pods = await getJson<ListOf<Pod>>(cluster, ['get', 'pods', '-n', ns, '-l', 'app=scorer']);
  assert.equal(pods.items.length, 3);
  for (const pod of pods.items) {
    assert.match(pod.spec.nodeName ?? '', /^kwok-node-/, `${pod.metadata.name} runs on a KWOK node`);
    assert.equal(pod.status.phase, 'Running');
    assert.equal(pod.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  }
  const replicaSets = await getJson<ListOf<unknown>>(cluster, ['get', 'replicasets', '-n', ns, '-l', 'app=scorer']);
  assert.equal(replicaSets.items.length, 1);

  // Background cascading deletion: only the garbage collector removes the ReplicaSet and the pods.
  await cluster.kubectl(['delete', 'deployment', 'scorer', '-n', ns, '--cascade=background', '--wait=false']);
  await eventually('the ReplicaSet and pods to be collected', async () => {
    const left = await getJson<ListOf<unknown>>(cluster, ['get', 'replicasets,pods', '-n', ns, '-l', 'app=scorer']);
    return left.items.length === 0;
  }, { timeoutMs: 60_000 });
});

test('a Job runs to completion', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['create', 'job', 'batch-score', '-n', ns, '--image=registry.invalid/batch-scorer:1']);
  await cluster.kubectl(['wait', '-n', ns, '--for=condition=Complete', '--timeout=60s', 'job/batch-score']);
  const job = await getJson<{ status: { succeeded?: number } }>(cluster, ['get', 'job', 'batch-score', '-n', ns]);
  assert.equal(job.status.succeeded, 1);
});

test('deleting a namespace with workloads in it completes', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], deployment('doomed', 2));
  await cluster.kubectl(['create', 'configmap', 'settings', '-n', ns, '--from-literal=a=b']);
  await cluster.kubectl(['wait', '-n', ns, '--for=jsonpath={.status.availableReplicas}=2', '--timeout=60s', 'deployment/doomed']);
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await cluster.kubectl(['wait', '--for=delete', '--timeout=90s', `namespace/${ns}`]);
  await assert.rejects(cluster.kubectl(['get', 'namespace', ns]), /NotFound/);
});

test('an HTTPRoute can be created and read back', async (t) => {
  const ns = await testNamespace(t);
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'churn' },
    spec: {
      parentRefs: [{ name: 'public' }],
      rules: [{ backendRefs: [{ name: 'churn-stable', port: 80, weight: 90 }, { name: 'churn-canary', port: 80, weight: 10 }] }],
    },
  };
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(route));
  const got = await getJson<typeof route>(cluster, ['get', 'httproute', 'churn', '-n', ns]);
  assert.deepEqual(got.spec.rules[0]?.backendRefs.map((b) => [b.name, b.weight]), [['churn-stable', 90], ['churn-canary', 10]]);
});

test('an Istio VirtualService and DestinationRule can be created and read back', async (t) => {
  const ns = await testNamespace(t);
  const vs = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'churn' },
    spec: {
      hosts: ['churn'],
      http: [{ name: 'primary', route: [
        { destination: { host: 'churn', subset: 'stable' }, weight: 80 },
        { destination: { host: 'churn', subset: 'canary' }, weight: 20 },
      ] }],
    },
  };
  const dr = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'churn' },
    spec: { host: 'churn', subsets: [{ name: 'stable', labels: { 'slipway.dev/role': 'stable' } }, { name: 'canary', labels: { 'slipway.dev/role': 'canary' } }] },
  };
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], [vs, dr].map((o) => JSON.stringify(o)).join('\n'));
  const got = await getJson<typeof vs>(cluster, ['get', 'virtualservice', 'churn', '-n', ns]);
  assert.deepEqual(got.spec.http[0]?.route.map((r) => [r.destination.subset, r.weight]), [['stable', 80], ['canary', 20]]);
  const rule = await getJson<typeof dr>(cluster, ['get', 'destinationrule', 'churn', '-n', ns]);
  assert.deepEqual(rule.spec.subsets.map((s) => s.name), ['stable', 'canary']);
});
