// The controller's invariants under bad luck and bad input, on the real API server: it never takes an object
// that is not its own, never sets progress back from a stale cache, and every error ends in a condition a
// person can read, with a bounded number of writes whatever the error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ModelDeployment } from '../../src/api/modeldeployment.ts';
import { ModelDeploymentActuator } from '../../src/controllers/modeldeployment/act.ts';
import { plan } from '../../src/controllers/modeldeployment/plan.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { apiServerMetrics, writesBetween } from '../support/apiserver-writes.ts';
import { eventually } from '../../local/eventually.ts';
import { startController } from './controller-process.ts';
import { failingWebhook, getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();

type Obj = Record<string, unknown>;
interface Md {
  metadata: { name: string; resourceVersion: string; generation: number; uid: string };
  spec: Obj;
  status?: { phase?: string; stable?: { revision: string }; conditions?: { type: string; status: string; reason: string; message: string }[] };
}

const spec = (overrides: Obj = {}): Obj => ({
  model: { name: 'churn-xgb', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' },
  image: 'registry.example.com/mlserver:1.6.1',
  replicas: 1,
  ...overrides,
});
const manifest = (name: string, s: Obj): string => JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name }, spec: s });
const apply = (ns: string, name: string, s: Obj): Promise<string> => cluster.kubectl(['apply', '--server-side', '--field-manager=kubectl', '-n', ns, '-f', '-'], manifest(name, s));
const getMd = (ns: string, name = 'churn'): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', name, '-n', ns]);
const condition = (md: Md, type: string) => md.status?.conditions?.find((c) => c.type === type);
const stalledFor = (ns: string, reason: string, timeoutMs = 30_000): Promise<Md> =>
  eventually(`Stalled=${reason}`, async () => {
    const m = await getMd(ns);
    return condition(m, 'Stalled')?.reason === reason ? m : undefined;
  }, { timeoutMs, intervalMs: 250 });

async function warnings(ns: string, reason: string): Promise<{ message: string; count: number }[]> {
  const list = await getJson<{ items: { type: string; reason: string; message: string; count: number; involvedObject: { kind: string } }[] }>(cluster, ['get', 'events', '-n', ns]);
  return list.items.filter((e) => e.involvedObject.kind === 'ModelDeployment' && e.type === 'Warning' && e.reason === reason);
}

interface Svc {
  metadata: { resourceVersion: string; ownerReferences?: unknown[]; labels?: Record<string, string> };
  spec: { selector: Record<string, string> };
}

test('a ModelDeployment named after an existing Service neither adopts it nor deletes it: it stalls and names it', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['create', 'service', 'clusterip', 'churn', '-n', ns, '--tcp=80:8080']);
  const before = await getJson<Svc>(cluster, ['get', 'service', 'churn', '-n', ns]);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const md = await stalledFor(ns, 'ObjectNotOwned');
  assert.match(condition(md, 'Stalled')?.message ?? '', /^Service churn already exists and is not managed by this ModelDeployment/);
  assert.equal(md.status?.phase, 'Failed');
  await eventually('a Warning event', async () => (await warnings(ns, 'ObjectNotOwned')).length === 1);

  const after = await getJson<Svc>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'the Service was not written to');
  assert.equal(after.metadata.ownerReferences, undefined);
  const children = await getJson<{ items: unknown[] }>(cluster, ['get', 'deployments,cronjobs', '-n', ns]);
  assert.equal(children.items.length, 0, 'nothing else was created either');

  await cluster.kubectl(['delete', 'mdep', 'churn', '-n', ns, '--wait=true']);
  const survivor = await getJson<Svc>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.equal(survivor.metadata.resourceVersion, before.metadata.resourceVersion, 'deleting the ModelDeployment left the Service alone');
});

test('a status planned from a stale copy of the ModelDeployment is refused instead of setting progress back', async (t) => {
  const ns = await testNamespace(t);
  await apply(ns, 'churn', spec());
  const stale = (await getMd(ns)) as unknown as ModelDeployment;
  // Progress recorded since that copy was read (another reconcile, a newer leader).
  await cluster.kubectl(['patch', 'mdep', 'churn', '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Healthy', stable: { revision: 'newer00000', modelVersion: '8', image: 'x' } } })]);

  const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig });
  t.after(() => client.close());
  const actuator = new ModelDeploymentActuator(client, new EventRecorder(client, { instance: 'test' }), () => new Date());
  const p = plan({ md: { ...stale, spec: { ...(stale.spec as object), runtime: { port: 8080, protocol: 'v2', metricsPath: '/metrics' } } as ModelDeployment['spec'] }, deployments: [], services: [], cronJobs: [], hpas: [], revisions: [] }, new Date());
  assert.ok(p.statusChanged);
  await assert.rejects(actuator.act(stale, { ...p, apply: [], create: [], events: [] }), (err: { code?: number }) => err.code === 409);
  const now = await getMd(ns);
  assert.equal(now.status?.stable?.revision, 'newer00000', 'the newer progress stands');
  assert.equal(now.status?.phase, 'Healthy');
});

/** A policy that refuses Services with a message that changes every time the ModelDeployment is written. */
async function denyServicesWithChangingMessage(t: { after: (fn: () => Promise<unknown>) => void }, ns: string): Promise<void> {
  const policy = `changing-${ns}`;
  t.after(() => cluster.kubectl(['delete', 'validatingadmissionpolicy,validatingadmissionpolicybinding', policy, '--ignore-not-found']));
  await cluster.kubectl(['apply', '-f', '-'], [
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: policy },
      spec: { failurePolicy: 'Fail', paramKind: { apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment' },
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['services'] }] },
        validations: [{ expression: 'false', messageExpression: "'refused while the ModelDeployment is at version ' + params.metadata.resourceVersion" }] } },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: policy },
      spec: { policyName: policy, validationActions: ['Deny'], paramRef: { name: 'churn', namespace: ns, parameterNotFoundAction: 'Deny' },
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } } } },
  ].map((o) => JSON.stringify(o)).join('\n'));
}

test('a refusal whose message changes with every write is retried with backoff, not in a write loop', async (t) => {
  const ns = await testNamespace(t);
  await apply(ns, 'churn', spec());
  await denyServicesWithChangingMessage(t, ns);
  await eventually('the policy to deny', async () => {
    try {
      await cluster.kubectl(['create', 'service', 'clusterip', 'probe', '-n', ns, '--tcp=80:80', '--dry-run=server']);
      return false;
    } catch (err) {
      return /refused while the ModelDeployment is at version/.test(String(err));
    }
  });
  const before = await apiServerMetrics(cluster.kubectl);
  await startController(t, cluster, ns);
  await stalledFor(ns, 'ApplyFailed');
  await new Promise((r) => setTimeout(r, 10_000));
  const writes = writesBetween(before, await apiServerMetrics(cluster.kubectl));
  const statusWrites = writes.get('APPLY modeldeployments/status') ?? 0;
  // Backoff from 100 ms doubling: about 8 attempts in 10 s. A loop driven by its own status writes makes hundreds.
  assert.ok(statusWrites >= 2 && statusWrites <= 12, `status writes in ~10 s: ${statusWrites} (${JSON.stringify(Object.fromEntries(writes))})`);
});

test('an API server that answers 500 to every write ends in Stalled with its message, with bounded retries', async (t) => {
  const ns = await testNamespace(t);
  const hook = await failingWebhook(t, cluster, ns, { apiGroup: 'apps', resource: 'deployments', operations: ['CREATE', 'UPDATE'] }, ['create', 'deployment', 'probe', '--image=x']);
  const before = await apiServerMetrics(cluster.kubectl);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const md = await stalledFor(ns, 'ApiServerError');
  assert.match(condition(md, 'Stalled')?.message ?? '', /the API server keeps failing \(5 attempts in a row or more, retrying with backoff\): Internal error occurred: failed calling webhook "unreachable.slipway.dev"/);
  await eventually('a Warning event', async () => (await warnings(ns, 'ApiServerError')).length >= 1);
  await new Promise((r) => setTimeout(r, 8_000));
  const applies = writesBetween(before, await apiServerMetrics(cluster.kubectl)).get('APPLY deployments') ?? 0;
  assert.ok(applies <= 12, `Deployment applies in ~12 s: ${applies}`);
  // The retries went on (the applies above), the failure stayed the same: told once, not at each retry.
  const still = await getMd(ns);
  assert.equal(still.metadata.resourceVersion, md.metadata.resourceVersion, 'the status was not written again for the same failure');
  assert.deepEqual((await warnings(ns, 'ApiServerError')).map((e) => e.count), [1], 'one Warning, counted once');

  // The cause goes away: the ModelDeployment recovers on its next retry.
  await cluster.kubectl(['delete', 'validatingwebhookconfiguration', hook]);
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=120s', '-n', ns, 'mdep/churn']);
});
