// The ModelDeployment controller against a real API server, controller-manager, scheduler and KWOK nodes:
// what a kubectl user sees after applying, editing, hand-editing and deleting a ModelDeployment.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { apiServerMetrics, writesBetween } from '../support/apiserver-writes.ts';
import { auditedWrites, micros, type AuditEvent } from '../support/audit-log.ts';
import { tcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();

type Obj = Record<string, unknown>;
interface ListOf<T> {
  items: T[];
}
interface Child {
  metadata: { name: string; uid: string; labels?: Record<string, string>; ownerReferences?: { kind: string; name: string; controller?: boolean }[] };
  spec: Obj;
  status?: Obj;
}
interface Md {
  metadata: { generation: number };
  status?: {
    observedGeneration?: number;
    phase?: string;
    stable?: { revision: string; modelVersion: string };
    availableReplicas?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

const spec = (overrides: Obj = {}): Obj => ({
  model: { name: 'churn-xgb', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' },
  image: 'registry.example.com/mlserver:1.6.1',
  replicas: 2,
  resources: { requests: { cpu: '500m', memory: '1Gi' } },
  batch: { schedule: '0 2 * * *', args: ['--input', 's3://data/churn/'] },
  ...overrides,
});

const manifest = (name: string, s: Obj): string => JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name }, spec: s });

const apply = (ns: string, name: string, s: Obj): Promise<string> => cluster.kubectl(['apply', '--server-side', '--field-manager=kubectl', '-n', ns, '-f', '-'], manifest(name, s));
const getMd = (ns: string, name = 'churn'): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', name, '-n', ns]);
const deployments = (ns: string): Promise<ListOf<Child>> => getJson<ListOf<Child>>(cluster, ['get', 'deployments', '-n', ns]);
const condition = (md: Md, type: string) => md.status?.conditions?.find((c) => c.type === type);

async function waitReady(ns: string, name = 'churn'): Promise<Md> {
  await cluster.kubectl(['wait', `--for=condition=Ready`, '--timeout=60s', '-n', ns, `mdep/${name}`]);
  return getMd(ns, name);
}

/** Waits until the ModelDeployment is Stalled for `reason`, and returns it. */
function stalledFor(ns: string, reason: string, timeoutMs = 30_000): Promise<Md> {
  return eventually(`Stalled=${reason}`, async () => {
    const m = await getMd(ns);
    return condition(m, 'Stalled')?.reason === reason ? m : undefined;
  }, { timeoutMs, intervalMs: 500 });
}

async function events(ns: string, name: string): Promise<{ type: string; reason: string; message: string }[]> {
  const list = await getJson<ListOf<{ type: string; reason: string; message: string; involvedObject: { name: string; kind: string } }>>(cluster, ['get', 'events', '-n', ns]);
  return list.items.filter((e) => e.involvedObject.kind === 'ModelDeployment' && e.involvedObject.name === name);
}

test('applying a ModelDeployment creates a Deployment, Service and CronJob, pods get ready, and kubectl wait sees Ready', async (t) => {
  const ns = await testNamespace(t);
  const controller = await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const md = await waitReady(ns);

  assert.equal(md.status?.phase, 'Healthy');
  assert.equal(md.status?.observedGeneration, md.metadata.generation);
  assert.equal(md.status?.availableReplicas, 2);
  assert.equal(condition(md, 'Available')?.status, 'True');
  assert.equal(condition(md, 'Stalled')?.status, 'False');
  assert.equal(condition(md, 'Reconciling')?.status, 'False');
  const rev = md.status?.stable?.revision ?? '';

  const dep = await getJson<Child & { spec: { replicas: number; template: { spec: { containers: { image: string; ports: { containerPort: number }[]; env: { name: string; value: string }[]; readinessProbe: { httpGet: { path: string } }; resources: Obj }[] } } } }>(cluster, ['get', 'deployment', `churn-${rev}`, '-n', ns]);
  const container = dep.spec.template.spec.containers[0];
  assert.equal(dep.spec.replicas, 2);
  assert.equal(container?.image, 'registry.example.com/mlserver:1.6.1');
  assert.equal(container?.ports[0]?.containerPort, 8080);
  assert.equal(container?.readinessProbe.httpGet.path, '/v2/health/ready');
  assert.deepEqual(container?.resources, { requests: { cpu: '500m', memory: '1Gi' } });
  assert.equal(container?.env.find((e) => e.name === 'SLIPWAY_MODEL_URI')?.value, 's3://models/churn/8/');
  assert.deepEqual(dep.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.controller]), [['ModelDeployment', 'churn', true]]);
  assert.equal(dep.metadata.labels?.['slipway.dev/revision'], rev);

  const svc = await getJson<Child & { spec: { selector: Record<string, string>; ports: { port: number; targetPort: number }[] } }>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.deepEqual(svc.spec.selector, { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': rev });
  assert.deepEqual([svc.spec.ports[0]?.port, svc.spec.ports[0]?.targetPort], [80, 8080]);

  const cron = await getJson<Child & { spec: { schedule: string; jobTemplate: { spec: { template: { spec: { containers: { image: string; args: string[] }[] } } } } } }>(cluster, ['get', 'cronjob', 'churn-batch', '-n', ns]);
  assert.equal(cron.spec.schedule, '0 2 * * *');
  assert.deepEqual(cron.spec.jobTemplate.spec.template.spec.containers[0]?.args, ['--input', 's3://data/churn/']);

  const pods = await getJson<ListOf<{ spec: { nodeName: string }; status: { phase: string } }>>(cluster, ['get', 'pods', '-n', ns, '-l', 'slipway.dev/model-deployment=churn']);
  assert.equal(pods.items.length, 2);
  for (const p of pods.items) {
    assert.match(p.spec.nodeName, /^kwok-node-/);
    assert.equal(p.status.phase, 'Running');
  }
  assert.ok((await events(ns, 'churn')).some((e) => e.reason === 'Ready'), 'a Ready event is recorded');
  // Events are best effort (a refused one fails no reconcile): the API server took every one.
  assert.match(await (await fetch(controller.metricsUrl)).text(), /^slipway_event_write_failures_total\{class="Terminal"\} 0$/m, 'no Event was refused');
  assert.equal(await controller.metric('slipway_event_write_failures_total'), 0, 'no Event write failed');
  const columns = await cluster.kubectl(['get', 'mdep', 'churn', '-n', ns]);
  assert.match(columns, /churn\s+churn-xgb\s+8\s+Healthy\s+True\s+2/);
});

test('editing replicas converges, a hand edit of the Deployment is reverted, and a deleted Service comes back', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const rev = (await waitReady(ns)).status?.stable?.revision ?? '';

  await apply(ns, 'churn', spec({ replicas: 4 }));
  await eventually('4 available replicas in status', async () => {
    const md = await getMd(ns);
    return md.status?.observedGeneration === md.metadata.generation && md.status.availableReplicas === 4 && condition(md, 'Ready')?.status === 'True';
  }, { timeoutMs: 60_000 });

  await cluster.kubectl(['set', 'image', '-n', ns, `deployment/churn-${rev}`, 'model-server=evil.example.com/miner:latest']);
  await cluster.kubectl(['scale', '-n', ns, `deployment/churn-${rev}`, '--replicas=1']);
  await eventually('the hand edits to be reverted', async () => {
    const dep = await getJson<{ spec: { replicas: number; template: { spec: { containers: { image: string }[] } } } }>(cluster, ['get', 'deployment', `churn-${rev}`, '-n', ns]);
    return dep.spec.replicas === 4 && dep.spec.template.spec.containers[0]?.image === 'registry.example.com/mlserver:1.6.1';
  }, { timeoutMs: 30_000 });
  assert.equal((await deployments(ns)).items.length, 1, 'a hand edit is not a new revision');

  const service = await getJson<Child>(cluster, ['get', 'service', 'churn', '-n', ns]);
  await cluster.kubectl(['delete', 'service', 'churn', '-n', ns]);
  await eventually('the deleted Service to be recreated', async () => {
    const again = await getJson<Child>(cluster, ['get', 'service', 'churn', '-n', ns]).catch(() => undefined);
    return again !== undefined && again.metadata.uid !== service.metadata.uid;
  });
});

test('an mlserver ModelDeployment gets its model fetched by a storage initializer before the server starts', async (t) => {
  const ns = await testNamespace(t);
  const controller = await startController(t, cluster, ns, { args: ['--storage-initializer-image=registry.example.com/storage-initializer@sha256:' + 'c'.repeat(64)] });
  await apply(ns, 'churn', spec({ model: { name: 'churn', version: '3', uri: 'models:/churn@champion', format: 'mlflow', secretRef: { name: 'mlflow' } }, runtime: { preset: 'mlserver' } }));
  const rev = (await waitReady(ns)).status?.stable?.revision ?? '';
  interface PodSpec { initContainers: { name: string; image: string; args: string[]; envFrom: unknown[] }[]; containers: { env: { name: string; value?: string }[]; volumeMounts: unknown[] }[]; volumes: unknown[] }
  const dep = await getJson<{ spec: { template: { spec: PodSpec } } }>(cluster, ['get', 'deployment', `churn-${rev}`, '-n', ns]);
  const podSpec = dep.spec.template.spec;
  assert.deepEqual(podSpec.initContainers.map((c) => [c.name, c.image, c.args, c.envFrom]), [['storage-initializer', `registry.example.com/storage-initializer@sha256:${'c'.repeat(64)}`, ['models:/churn@champion', '/mnt/models'], [{ secretRef: { name: 'mlflow' } }]]]);
  assert.equal(podSpec.containers[0]?.env.find((e) => e.name === 'MLSERVER_MODEL_IMPLEMENTATION')?.value, 'mlserver_mlflow.MLflowRuntime');
  assert.deepEqual(podSpec.containers[0]?.volumeMounts, [{ name: 'model-store', mountPath: '/mnt/models', readOnly: true }]);
  // Read back as stored, the pod template plans no write: the preset is in the API server's normal form too.
  const before = await apiServerMetrics(cluster.kubectl);
  const reconciles = await controller.metric('slipway_reconcile_total');
  await cluster.kubectl(['annotate', 'mdep', 'churn', '-n', ns, 'resync=1']);
  await eventually('the annotation reconciled', async () => (await controller.metric('slipway_reconcile_total')) > reconciles && (await controller.metric('slipway_workqueue_in_flight')) === 0);
  const writes = writesBetween(before, await apiServerMetrics(cluster.kubectl));
  assert.equal(writes.get('APPLY deployments') ?? 0, 0, JSON.stringify(Object.fromEntries(writes)));
});

test('with autoscaling the HPA itself scales the ModelDeployment through its scale subresource, and the revision follows', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  // Created below the HPA's floor: the HPA raises it without needing any metric (it does so below minReplicas).
  await cluster.kubectl(['create', '-n', ns, '-f', '-'], manifest('churn', spec({ replicas: 1, autoscaling: { minReplicas: 2, maxReplicas: 6 } })));
  const rev = (await waitReady(ns)).status?.stable?.revision ?? '';
  const hpa = await getJson<{ spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } }>(cluster, ['get', 'hpa', 'churn', '-n', ns]);
  assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name, hpa.spec.minReplicas, hpa.spec.maxReplicas], ['ModelDeployment', 'churn', 2, 6]);
  const scale = JSON.parse(await cluster.kubectl(['get', '--raw', `/apis/slipway.dev/v1alpha1/namespaces/${ns}/modeldeployments/churn/scale`])) as { status: { selector: string } };
  assert.equal(scale.status.selector, `slipway.dev/model-deployment=churn,slipway.dev/revision=${rev}`);

  interface Scaled { spec: { replicas: number }; metadata: { managedFields?: { manager: string; subresource?: string; fieldsV1?: { 'f:spec'?: Record<string, unknown> } }[] } }
  const byHpa = (m: Scaled) => m.metadata.managedFields?.some((f) => f.subresource === 'scale' && f.fieldsV1?.['f:spec']?.['f:replicas'] !== undefined) === true;
  await eventually('the HPA to write spec.replicas through /scale', async () => {
    const m = await getJson<Scaled>(cluster, ['get', 'mdep', 'churn', '-n', ns, '--show-managed-fields']);
    return m.spec.replicas === 2 && byHpa(m);
  }, { timeoutMs: 60_000 });

  // The platform team raises the floor (Slipway applies it to the HPA); the HPA acts, the serving revision follows.
  await cluster.kubectl(['patch', 'mdep', 'churn', '-n', ns, '--type=merge', '-p', '{"spec":{"autoscaling":{"minReplicas":4}}}']);
  await eventually('the HPA to scale to 4 and 4 replicas to be available', async () => {
    const m = await getJson<Scaled & Md>(cluster, ['get', 'mdep', 'churn', '-n', ns, '--show-managed-fields']);
    return m.spec.replicas === 4 && byHpa(m) && m.status?.availableReplicas === 4;
  }, { timeoutMs: 60_000 });
  const dep = await getJson<{ spec: { replicas: number } }>(cluster, ['get', 'deployment', `churn-${rev}`, '-n', ns]);
  assert.equal(dep.spec.replicas, 4);
});

test('deleting a ModelDeployment garbage-collects its children', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  await waitReady(ns);
  await cluster.kubectl(['delete', 'mdep', 'churn', '-n', ns, '--wait=true', '--timeout=60s']);
  await eventually('the children to be collected', async () => {
    const left = await getJson<ListOf<Child>>(cluster, ['get', 'deployments,services,cronjobs,replicasets,pods', '-n', ns, '-l', 'slipway.dev/model-deployment=churn']);
    return left.items.length === 0;
  }, { timeoutMs: 60_000 });
});

test('a new model version rolls out as a new revision, then the Service switches and the old revision drains, then goes', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  const drain = { rollout: { scaleDownDelaySeconds: 10 } };
  await apply(ns, 'churn', spec(drain));
  const before = (await waitReady(ns)).status?.stable?.revision ?? '';

  await apply(ns, 'churn', spec({ ...drain, model: { name: 'churn-xgb', version: '9', uri: 's3://models/churn/9/', format: 'xgboost' } }));
  const md = await eventually('version 9 to serve', async () => {
    const m = await getMd(ns);
    return m.status?.stable?.modelVersion === '9' && condition(m, 'Ready')?.status === 'True' && m.status.observedGeneration === m.metadata.generation ? m : undefined;
  }, { timeoutMs: 60_000 });
  const after = md.status?.stable?.revision ?? '';
  assert.notEqual(after, before);
  const svc = await getJson<{ spec: { selector: Record<string, string> } }>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.equal(svc.spec.selector['slipway.dev/revision'], after, 'traffic is on the new revision');
  // Traffic has left the old revision, which still runs to finish what it was serving.
  const draining = await getJson<{ status?: { retiring?: { revision: string; since: string }[] } }>(cluster, ['get', 'mdep', 'churn', '-n', ns]);
  assert.deepEqual(draining.status?.retiring?.map((r) => r.revision), [before]);
  assert.ok((await deployments(ns)).items.some((d) => d.metadata.name === `churn-${before}`), 'the old revision drains');
  await eventually('only the new revision to remain', async () => {
    const names = (await deployments(ns)).items.map((d) => d.metadata.name);
    return names.length === 1 && names[0] === `churn-${after}`;
  }, { timeoutMs: 30_000 });
  const since = Date.parse(draining.status?.retiring?.[0]?.since ?? '');
  const gone = await eventually('the retiring list to empty', async () => ((await getMd(ns)).status as { retiring?: unknown } | undefined)?.retiring === undefined ? Date.now() : undefined);
  assert.ok(gone - since >= 10_000, 'not removed before its drain period');
  const history = await getJson<ListOf<{ metadata: { name: string }; revision: number }>>(cluster, ['get', 'controllerrevisions', '-n', ns]);
  assert.deepEqual(history.items.map((r) => [r.metadata.name, r.revision]).sort(), [[`churn-${before}`, 1], [`churn-${after}`, 2]].sort(), 'both revisions are kept in the history');
  const reasons = (await events(ns, 'churn')).map((e) => e.reason);
  assert.ok(reasons.includes('RevisionCreated') && reasons.includes('Promoted'), `events: ${reasons.join(', ')}`);
});

test('scaling a ModelDeployment during a rollout that cannot finish scales the revision that serves', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec({ replicas: 1 }));
  const stable = (await waitReady(ns)).status?.stable?.revision ?? '';
  await apply(ns, 'churn', spec({ replicas: 1, image: NEVER_READY_IMAGE }));
  await eventually('the new revision started', async () => (await deployments(ns)).items.length === 2);
  await cluster.kubectl(['scale', 'mdep/churn', '-n', ns, '--replicas=3']);
  await eventually('3 available replicas of the stable revision', async () => {
    const d = await getJson<{ spec: { replicas: number }; status?: { availableReplicas?: number } }>(cluster, ['get', 'deployment', `churn-${stable}`, '-n', ns]);
    return d.spec.replicas === 3 && d.status?.availableReplicas === 3;
  }, { timeoutMs: 60_000 });
  await eventually('status to report the 3 replicas of the revision that serves', async () => (await getMd(ns)).status?.availableReplicas === 3);
});

test('a revision whose image never becomes ready takes no traffic, and stalls at its progress deadline while stable serves', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec({ progressDeadlineSeconds: 30 }));
  const stable = (await waitReady(ns)).status?.stable?.revision ?? '';

  await apply(ns, 'churn', spec({ progressDeadlineSeconds: 30, image: NEVER_READY_IMAGE }));
  const md = await stalledFor(ns, 'ProgressDeadlineExceeded', 90_000);
  assert.equal(md.status?.phase, 'Degraded', 'stalled, but the stable revision still serves');
  assert.equal(md.status?.stable?.revision, stable);
  assert.equal(condition(md, 'Available')?.status, 'True');
  assert.equal(condition(md, 'Ready')?.status, 'False');
  const svc = await getJson<{ spec: { selector: Record<string, string> } }>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.equal(svc.spec.selector['slipway.dev/revision'], stable, 'traffic never moved');
  assert.equal((await deployments(ns)).items.length, 2, 'the failed revision is kept for inspection beside the stable one');
  await eventually('a Warning event', async () => (await events(ns, 'churn')).some((e) => e.type === 'Warning' && e.reason === 'ProgressDeadlineExceeded'));
});

test('a missing ProjectEnvironment is a Stalled condition and a Warning, and creating it converges', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec({ image: undefined, environmentRef: { name: 'py311' } }));
  const stalled = await stalledFor(ns, 'EnvironmentNotFound');
  assert.equal(condition(stalled, 'Ready')?.status, 'False');
  assert.match(condition(stalled, 'Ready')?.message ?? '', /ProjectEnvironment "py311" does not exist/);
  await cluster.kubectl(['wait', '--for=condition=Stalled', '--timeout=5s', '-n', ns, 'mdep/churn']);
  await eventually('a Warning event', async () => (await events(ns, 'churn')).some((e) => e.type === 'Warning' && e.reason === 'EnvironmentNotFound'));
  assert.equal((await deployments(ns)).items.length, 0);

  const image = `registry.example.com/env@sha256:${'c'.repeat(64)}`;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', metadata: { name: 'py311' }, spec: { image } }));
  const md = await waitReady(ns);
  assert.equal(condition(md, 'Stalled')?.status, 'False');
  const dep = (await deployments(ns)).items[0] as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
  assert.equal(dep.spec.template.spec.containers[0]?.image, image);
});

test('a quota that refuses the pods stalls the ModelDeployment with the quota message', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['create', 'quota', 'no-pods', '-n', ns, '--hard=pods=0']);
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const md = await stalledFor(ns, 'ReplicaFailure', 60_000);
  assert.match(condition(md, 'Stalled')?.message ?? '', /exceeded quota: no-pods/);
  assert.equal(md.status?.phase, 'Failed');
  await eventually('a Warning event', async () => (await events(ns, 'churn')).some((e) => e.type === 'Warning' && e.reason === 'ReplicaFailure'));
});

test('a child refused by an admission policy stalls the ModelDeployment with the policy\'s message, once', async (t) => {
  const ns = await testNamespace(t);
  const policy = `no-services-${ns}`;
  t.after(() => cluster.kubectl(['delete', 'validatingadmissionpolicy,validatingadmissionpolicybinding', policy, '--ignore-not-found']));
  await cluster.kubectl(['apply', '-f', '-'], [
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: policy },
      spec: { failurePolicy: 'Fail', matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['services'] }] },
        validations: [{ expression: 'false', message: 'Services in this namespace need a platform-team review' }] } },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: policy },
      spec: { policyName: policy, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } } } },
  ].map((o) => JSON.stringify(o)).join('\n'));
  // The policy takes effect once the API server has loaded it.
  await eventually('the policy to deny', async () => {
    try {
      await cluster.kubectl(['create', 'service', 'clusterip', 'probe', '-n', ns, '--tcp=80:80', '--dry-run=server']);
      return false;
    } catch (err) {
      return /platform-team review/.test(String(err));
    }
  });
  await startController(t, cluster, ns);
  await apply(ns, 'churn', spec());
  const md = await stalledFor(ns, 'ApplyFailed');
  assert.match(condition(md, 'Stalled')?.message ?? '', /Service churn was refused: .*Services in this namespace need a platform-team review/);
  await eventually('a Warning event', async () => (await events(ns, 'churn')).some((e) => e.type === 'Warning' && e.reason === 'ApplyFailed'));
  const warnings = (await events(ns, 'churn')).filter((e) => e.reason === 'ApplyFailed');
  assert.equal(warnings.length, 1, 'retries update one Event instead of piling up new ones');
});

test('a controller killed after each single write of a revision change converges with no duplicate, lost status or repeated Event', async (t) => {
  const ns = await testNamespace(t);
  const s8 = spec({ replicas: 2, rollout: { scaleDownDelaySeconds: 0 } });
  const s9 = { ...s8, model: { name: 'churn-xgb', version: '9', uri: 's3://models/churn/9/', format: 'xgboost' } };
  const first = await startController(t, cluster, ns, { identity: 'steady', args: ['--no-leader-elect'] });
  await apply(ns, 'churn', s8);
  const before = (await waitReady(ns)).status?.stable?.revision ?? '';
  await first.stop();

  // The revision change, carried out by controllers that each die (SIGKILL) right after their first write lands:
  // a crash at every write boundary of the rollout, in order.
  await apply(ns, 'churn', s9);
  const crashes: string[] = [];
  for (let i = 0; i < 30; i++) {
    const m = await getMd(ns);
    const done = m.status?.stable?.modelVersion === '9' && condition(m, 'Ready')?.status === 'True' && m.status.observedGeneration === m.metadata.generation && (await deployments(ns)).items.length === 1;
    if (done) break;
    const c = await startController(t, cluster, ns, { identity: `crash-${i}`, args: ['--no-leader-elect'], env: { SLIPWAY_FAULT_KILL_AFTER_WRITES: '1' }, waitReady: false });
    await eventually(`crash-${i} to die after its write`, () => c.exited(), { timeoutMs: 30_000 });
    crashes.push(c.identity);
  }
  t.diagnostic(`${crashes.length} controllers crashed after one write each`);
  assert.ok(crashes.length >= 3, `the rollout took several crashed controllers: ${crashes.length}`);

  const md = await waitReady(ns);
  const after = md.status?.stable?.revision ?? '';
  assert.notEqual(after, before);
  assert.equal(md.status?.stable?.modelVersion, '9');
  assert.equal(md.status?.observedGeneration, md.metadata.generation, 'no status was lost');
  const names = (await getJson<ListOf<Child>>(cluster, ['get', 'deployments,services,cronjobs', '-n', ns])).items.map((c) => c.metadata.name).sort();
  assert.deepEqual(names, ['churn', `churn-${after}`, 'churn-batch'].sort(), 'one Deployment, Service and CronJob: no second revision left behind');
  const revisions = (await getJson<ListOf<Child & { revision: number }>>(cluster, ['get', 'controllerrevisions', '-n', ns])).items;
  assert.deepEqual(revisions.map((r) => r.revision).sort(), [1, 2], 'each revision recorded once');
  const svc = await getJson<{ spec: { selector: Record<string, string> } }>(cluster, ['get', 'service', 'churn', '-n', ns]);
  assert.equal(svc.spec.selector['slipway.dev/revision'], after);
  const all = await events(ns, 'churn');
  for (const reason of ['RevisionCreated', 'Promoted']) {
    const same = all.filter((e) => e.reason === reason);
    assert.ok(same.length <= 1 && same.every((e) => (e as { count?: number }).count === 1), `${reason} recorded at most once: ${JSON.stringify(same)}`);
  }
});

test('with two controllers only the leader acts, and killing it hands over to the other', async (t) => {
  const ns = await testNamespace(t);
  const args = ['--lease-duration-seconds=3'];
  const one = await startController(t, cluster, ns, { identity: 'one', args });
  await eventually('one to lead', async () => (await one.metric('slipway_leader')) === 1);
  const two = await startController(t, cluster, ns, { identity: 'two', args });

  await apply(ns, 'churn', spec());
  await waitReady(ns);
  assert.ok((await one.metric('slipway_reconcile_total')) > 0, 'the leader reconciled');
  assert.equal(await two.metric('slipway_leader'), 0);
  assert.equal(await two.metric('slipway_reconcile_total'), 0, 'the standby did nothing');
  assert.equal(await two.metric('slipway_api_requests_total', 'method="PATCH"'), 0, 'the standby wrote nothing');

  await one.kill();
  await eventually('two to take the lease', async () => (await two.metric('slipway_leader')) === 1, { timeoutMs: 30_000 });
  const lease = await getJson<{ spec: { holderIdentity: string; leaseTransitions: number } }>(cluster, ['get', 'lease', 'slipway-controller', '-n', ns]);
  assert.equal(lease.spec.holderIdentity, 'two');
  assert.equal(lease.spec.leaseTransitions, 1);

  await apply(ns, 'churn', spec({ replicas: 3 }));
  await eventually('the new leader to act on a change', async () => (await getMd(ns)).status?.availableReplicas === 3, { timeoutMs: 60_000 });
});

test('a leader that shuts down gracefully releases its lease', async (t) => {
  const ns = await testNamespace(t);
  const one = await startController(t, cluster, ns, { identity: 'one' });
  await eventually('one to lead', async () => (await one.metric('slipway_leader')) === 1);
  await one.stop();
  const lease = await getJson<{ spec: { holderIdentity?: string; leaseDurationSeconds: number } }>(cluster, ['get', 'lease', 'slipway-controller', '-n', ns]);
  assert.equal(lease.spec.holderIdentity ?? '', '', 'no holder: a standby need not wait for the 15 s lease to expire');
  assert.equal(lease.spec.leaseDurationSeconds, 1);
});

/** A TCP proxy in front of the API server, and a kubeconfig that goes through it. */
async function proxied(t: TestContext): Promise<{ proxy: TcpProxy; kubeconfig: string }> {
  const server = new URL(/server: (\S+)/.exec(readFileSync(cluster.kubeconfig, 'utf8'))?.[1] ?? '');
  const proxy = await tcpProxy(Number(server.port));
  t.after(() => proxy.close());
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'slipway-proxy-')), 'config');
  writeFileSync(kubeconfig, readFileSync(cluster.kubeconfig, 'utf8').replace(`server: ${server.origin}`, `server: https://127.0.0.1:${proxy.port}`));
  return { proxy, kubeconfig };
}

/**
 * The network between the controller and the API server breaks mid-rollout for less than the renew deadline,
 * while one ModelDeployment changes and another is created; when it heals the controller catches up, keeping
 * its lease throughout.
 */
async function partitionMidRollout(t: TestContext, fault: 'cut' | 'blackHole'): Promise<void> {
  const ns = await testNamespace(t);
  const { proxy, kubeconfig } = await proxied(t);
  const controller = await startController(t, cluster, ns, { kubeconfig, args: ['--lease-duration-seconds=30'] });
  await apply(ns, 'a', spec());
  await eventually('the first Deployment', async () => (await deployments(ns)).items.length > 0, { intervalMs: 20 });
  if (fault === 'cut') {
    await proxy.cut();
    await eventually('the controller to lose its watches', async () => (await controller.metric('slipway_watch_restarts_total')) > 0);
  } else {
    proxy.blackHole(); // nothing answers, nothing resets: requests and watches simply wait
  }
  await apply(ns, 'a', spec({ replicas: 3 }));
  await apply(ns, 'b', spec());
  if (fault === 'blackHole') await new Promise((r) => setTimeout(r, 3_000));
  await proxy.restore();
  for (const name of ['a', 'b']) await waitReady(ns, name);
  await eventually('a to reach 3 replicas', async () => (await getMd(ns, 'a')).status?.availableReplicas === 3, { timeoutMs: 60_000 });
  assert.equal(await controller.metric('slipway_leader'), 1, 'it kept the lease through a partition shorter than the renew deadline (20 s)');
}

test('a controller whose API connections are cut mid-rollout reconnects, catches up and converges', (t) => partitionMidRollout(t, 'cut'));

test('a controller whose connections are black-holed mid-rollout (no reset) resumes when the network heals and converges', (t) => partitionMidRollout(t, 'blackHole'));

test('when the leader is black-holed, no write of the old leader lands after the new leader\'s first write', async (t) => {
  const ns = await testNamespace(t);
  const auditLog = process.env.SLIPWAY_TEST_AUDIT_LOG ?? '';
  const { proxy, kubeconfig } = await proxied(t);
  const args = ['--lease-duration-seconds=6'];
  const old = await startController(t, cluster, ns, { identity: 'old-leader', kubeconfig, args });
  await eventually('old-leader to lead', async () => (await old.metric('slipway_leader')) === 1);
  const next = await startController(t, cluster, ns, { identity: 'new-leader', args });

  // The leader is busy when the network goes: its writes are in flight or about to be sent.
  const names = Array.from({ length: 30 }, (_, i) => `m${i}`);
  await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], names.map((n) => manifest(n, spec({ replicas: 1 }))).join('\n'));
  await eventually('the leader writing', async () => (await deployments(ns)).items.length > 0, { intervalMs: 10 });
  proxy.blackHole();

  const byOld = (e: AuditEvent) => e.userAgent?.includes('(old-leader)') === true;
  const byNew = (e: AuditEvent) => e.userAgent?.includes('(new-leader)') === true && e.objectRef?.resource !== 'leases';
  const firstNew = await eventually('the new leader\'s first write', () => auditedWrites(auditLog, ns).find(byNew), { timeoutMs: 60_000, intervalMs: 100 });
  // The network heals: whatever the old leader still has to send arrives now, if it has not given up on it.
  await proxy.restore();
  for (const n of names) await waitReady(ns, n);
  assert.equal(await next.metric('slipway_leader'), 1);

  const writes = auditedWrites(auditLog, ns);
  assert.ok(writes.some(byOld), 'the old leader did write while it led');
  const late = writes.filter((e) => byOld(e) && micros(e.stageTimestamp) > micros(firstNew.stageTimestamp));
  assert.deepEqual(late.map((e) => `${e.stageTimestamp} ${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`), [], `writes of the old leader after the new leader's first (${firstNew.stageTimestamp})`);
});
