// The Helm chart and the kustomize base install Slipway, and the chart's RBAC is all the controller needs: the
// real controller runs with the chart's ServiceAccount token and serves a ModelDeployment.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { eventually } from '../../local/eventually.ts';
import { writeTokenKubeconfig } from '../../local/pki.ts';
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
  assert.deepEqual(kinds, ['ClusterRole', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Deployment', 'MutatingAdmissionPolicy', 'MutatingAdmissionPolicyBinding', 'Namespace', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
});

test('bad values fail at install with the value and what is wrong (values.schema.json); the optional objects render', async () => {
  const template = (args: string[]): Promise<string> => helm(['template', 'slipway', join(root, 'charts', 'slipway'), ...args]);
  await assert.rejects(template(['--set', 'workers=0']), /at '\/workers': minimum: got 0, want 1/);
  await assert.rejects(template(['--set', 'logLevel=loud']), /at '\/logLevel': value must be one of/);
  await assert.rejects(template(['--set', 'loglevel=info']), /additional properties 'loglevel' not allowed/);
  await assert.rejects(template(['--set', 'image.digest=latest']), /at '\/image\/digest'/);
  await assert.rejects(template(['--set', 'audit.remote=git.example.com:fleet.git']), /at '\/audit\/remote'/);
  const kinds = (yaml.loadAll(await template(['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'networkPolicy.enabled=true', '--set', `image.digest=sha256:${'a'.repeat(64)}`])) as { kind: string; spec?: { template?: { spec?: { containers?: { image: string }[] } } } }[]);
  assert.ok(kinds.some((d) => d.kind === 'ServiceMonitor') && kinds.some((d) => d.kind === 'NetworkPolicy') && kinds.some((d) => d.kind === 'PodDisruptionBudget'));
  assert.equal(kinds.find((d) => d.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.image, `slipway/controller@sha256:${'a'.repeat(64)}`);
  assert.ok(!(yaml.loadAll(await template(['--set', 'replicas=1'])) as { kind: string }[]).some((d) => d.kind === 'PodDisruptionBudget'), 'no PDB for one replica');
});

test('the chart ships the Grafana dashboard as a ConfigMap for the sidecar when asked; every series it asks for is on a live controller\'s /metrics', async (t) => {
  const docs = yaml.loadAll(await helm(['template', 'slipway', join(root, 'charts', 'slipway'), '-n', 'monitoring', '--set', 'grafana.dashboards.enabled=true'])) as { kind: string; metadata: { name: string; labels?: Record<string, string> }; data?: Record<string, string> }[];
  const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-dashboards'));
  assert.equal(cm?.metadata.labels?.grafana_dashboard, '1');
  const dashboard = JSON.parse(cm?.data?.['slipway.json'] ?? '{}') as { uid?: string; panels?: unknown[] };
  assert.equal(dashboard.uid, 'slipway');
  assert.ok((dashboard.panels?.length ?? 0) > 10);
  assert.ok(!(yaml.loadAll(await helm(['template', 'slipway', join(root, 'charts', 'slipway')])) as { kind: string }[]).some((d) => d.kind === 'ConfigMap'), 'off by default');

  const ns = await testNamespace(t);
  const controller = await startController(t, cluster, ns);
  const page = await (await fetch(controller.metricsUrl)).text();
  const live = new Set([...page.matchAll(/^# TYPE (slipway_[a-z_]+) (\w+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`, m[1] ?? ''] : [m[1] ?? ''])));
  const asked = (dashboard as { panels: { targets?: { expr: string }[] }[] }).panels.flatMap((p) => (p.targets ?? []).flatMap((x) => x.expr.match(/slipway_[a-z_]+/g) ?? []));
  for (const name of asked) assert.ok(live.has(name), `${name} is not on the controller's /metrics`);
});

test('a request to a ModelDeployment is stamped with who asked, as the API server authenticated them, and cannot be forged', async (t) => {
  // The chart's MutatingAdmissionPolicy, alone (cluster-wide: removed afterwards).
  // With the aggregated roles, so that a namespace editor (the edit ClusterRole) may write ModelDeployments.
  const policy = (yaml.loadAll(renderChart(helmBin, root)) as { kind: string; metadata: { name: string } }[]).filter((d) => d.kind.startsWith('MutatingAdmissionPolicy') || d.metadata.name.includes('-aggregate-to-'));
  assert.equal(policy.length, 4);
  const docs = policy.map((d) => JSON.stringify(d)).join('\n');
  t.after(() => cluster.kubectl(['delete', '--ignore-not-found', '-f', '-'], docs).then(() => undefined));
  await cluster.kubectl(['apply', '--server-side', '-f', '-'], docs);
  const ns = await testNamespace(t);
  await cluster.kubectl(['create', 'serviceaccount', 'alice', '-n', ns]);
  await cluster.kubectl(['create', 'rolebinding', 'alice', '-n', ns, '--clusterrole=edit', `--serviceaccount=${ns}:alice`]);
  await cluster.kubectl(['create', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn' },
    spec: { model: { name: 'churn-xgb', version: '8', uri: 's3://models/churn/', format: 'xgboost' }, image: 'registry.example.com/mlserver:1.6.1' },
  }));
  const stamp = async (): Promise<string> => (await cluster.kubectl(['get', 'mdep', 'churn', '-n', ns, '-o', 'jsonpath={.metadata.annotations.slipway\\.dev/requested-by}'])).trim();
  const alice = `system:serviceaccount:${ns}:alice`;
  // The policy is read by the API server a moment after it is created: the first request may precede it.
  await eventually('the policy and the aggregated role in force', async () => {
    await cluster.kubectl(['annotate', '--overwrite', '-n', ns, 'mdep/churn', `slipway.dev/request={"verb":"promote","id":"${Date.now()}"}`, `--as=${alice}`]);
    return (await stamp()) === alice;
  }, { timeoutMs: 30_000, intervalMs: 500 });
  // Writing the stamp by hand changes nothing; a new request by someone else is stamped with them.
  await cluster.kubectl(['annotate', '--overwrite', '-n', ns, 'mdep/churn', 'slipway.dev/requested-by=mallory', `--as=${alice}`]);
  assert.equal(await stamp(), alice);
  await cluster.kubectl(['annotate', '--overwrite', '-n', ns, 'mdep/churn', 'slipway.dev/request={"verb":"abort","id":"2"}', 'slipway.dev/requested-by=mallory']);
  assert.notEqual(await stamp(), 'mallory');
  assert.notEqual(await stamp(), alice, 'the admin\'s request is stamped with the admin');
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
  const kubeconfig = writeTokenKubeconfig(cluster.kubeconfig, token, join(mkdtempSync(join(tmpdir(), 'slipway-sa-')), 'config'));
  await assert.rejects(run(join(cluster.binDir, 'kubectl'), ['get', 'secrets', '-n', workload], { env: { ...process.env, KUBECONFIG: kubeconfig } }), /forbidden/, 'the token is not an admin');

  await startController(t, cluster, workload, { kubeconfig, leaseNamespace: system, args: [`--leader-election-id=${release}`] });
  await cluster.kubectl(['apply', '-n', workload, '-f', join(root, 'examples', 'churn.yaml')]);
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', workload, 'mdep/churn']);
  const events = await getJson<{ items: { reason: string; involvedObject: { name: string } }[] }>(cluster, ['get', 'events', '-n', workload]);
  assert.ok(events.items.some((e) => e.involvedObject.name === 'churn' && e.reason === 'Ready'), 'Events are allowed too');
});

test('the rendered controller pod is admitted where the restricted Pod Security Standard is enforced, and a weaker one is not', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/enforce-version=latest']);
  const docs = yaml.loadAll(await helm(['template', 'slipway', join(root, 'charts', 'slipway'), '-n', ns, '--skip-tests'])) as { kind: string; spec?: { template?: { metadata: object; spec: Record<string, unknown> } } }[];
  const template = docs.find((d) => d.kind === 'Deployment')?.spec?.template;
  assert.ok(template);
  await cluster.kubectl(['create', 'serviceaccount', 'slipway', '-n', ns]);
  const pod = (spec: Record<string, unknown>): string => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'slipway-controller', namespace: ns }, spec });
  // Admission runs in full on a server-side dry run: the PodSecurity plugin answers as it would for the real pod.
  const out = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], pod(template.spec));
  assert.match(out, /pod\/slipway-controller created \(server dry run\)/);
  // The check can fail: the same pod, allowed to escalate privileges, is refused.
  const containers = (template.spec.containers as { securityContext: Record<string, unknown> }[]).map((c) => ({ ...c, securityContext: { ...c.securityContext, allowPrivilegeEscalation: true } }));
  await assert.rejects(cluster.kubectl(['create', '--dry-run=server', '-f', '-'], pod({ ...template.spec, containers })), /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
});
