// Canary rollouts on the local cluster, through the real Gateway API and Istio CRDs: what a platform team sees in
// the route, the VirtualService, the replica counts and the status at each step, and what the verbs do.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { writeTokenKubeconfig } from '../../local/pki.ts';
import { renderChart } from '../../scripts/gen-manifests.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';
import { eventOrder, type EventView } from '../../src/cli/render.ts';

const cluster = testCluster();
const root = join(import.meta.dirname, '..', '..');
const pluginDir = mkdtempSync(join(tmpdir(), 'slipway-plugin-'));
symlinkSync(join(root, 'src', 'cli', 'kubectl-slipway.ts'), join(pluginDir, 'kubectl-slipway'));
process.env.PATH = `${pluginDir}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

type Obj = Record<string, unknown>;
interface Md {
  metadata: { generation: number; resourceVersion: string };
  status?: {
    phase?: string;
    stable?: { revision: string; modelVersion: string };
    canary?: { revision: string; modelVersion: string; step?: number; weight?: number; achievedWeight?: number; pauseUntil?: string; replicas?: number };
    aborted?: { revision: string; reason: string; message: string };
    lastRequest?: { id: string; verb: string; by: string; result: string; message: string };
    history?: { revision: string; modelVersion: string; number: number }[];
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

const manifest = (version: string, rollout: Obj, extra: Obj = {}): string => JSON.stringify({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'ModelDeployment',
  metadata: { name: 'churn' },
  spec: {
    model: { name: 'churn-xgb', version, uri: `s3://models/churn/${version}/`, format: 'xgboost' },
    image: 'registry.example.com/mlserver:1.6.1',
    replicas: 4,
    rollout: { scaleDownDelaySeconds: 0, ...rollout },
    ...extra,
  },
});
const apply = (ns: string, body: string): Promise<string> => cluster.kubectl(['apply', '--server-side', '--field-manager=gitops', '-n', ns, '-f', '-'], body);
const getMd = (ns: string): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns]);
const condition = (m: Md, type: string) => m.status?.conditions?.find((c) => c.type === type);
const replicasOf = async (ns: string, revision: string | undefined): Promise<number | undefined> => {
  const list = await getJson<{ items: { metadata: { labels: Record<string, string> }; spec: { replicas: number } }[] }>(cluster, ['get', 'deployments', '-n', ns]);
  return list.items.find((d) => d.metadata.labels['slipway.dev/revision'] === revision)?.spec.replicas;
};
const selectorOf = async (ns: string, service: string): Promise<Record<string, string>> => (await getJson<{ spec: { selector: Record<string, string> } }>(cluster, ['get', 'service', service, '-n', ns])).spec.selector;

/** Waits until the ModelDeployment satisfies `ok`, and returns it. */
async function until(ns: string, what: string, ok: (m: Md) => boolean, timeoutMs = 60_000): Promise<Md> {
  let last: Md | undefined;
  try {
    return await eventually(what, async () => {
      last = await getMd(ns);
      return ok(last) ? last : undefined;
    }, { timeoutMs, intervalMs: 250 });
  } catch (err) {
    // What the ModelDeployment said last is what a person would look at.
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify({ ...last?.status, conditions: last?.status?.conditions?.filter((c) => c.status === 'True' || c.type === 'Ready') })}`, { cause: err });
  }
}

/** Runs `kubectl slipway …` and returns its output and exit code. */
function plugin(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(join(cluster.binDir, 'kubectl'), ['slipway', ...args], { env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

async function serveVersion8(ns: string, rollout: Obj): Promise<string> {
  await apply(ns, manifest('8', rollout));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);
  return (await getMd(ns)).status?.stable?.revision ?? '';
}

const httpRoute = (ns: string): string => JSON.stringify({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'churn', namespace: ns },
  spec: {
    parentRefs: [{ name: 'slipway', namespace: 'slipway-local' }],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name: 'churn', port: 80 }, { name: 'churn-canary', port: 80, weight: 0 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/docs' } }], backendRefs: [{ name: 'docs', port: 80 }] },
    ],
  },
});
const routeWeights = async (ns: string): Promise<[string, number][]> => {
  const r = await getJson<{ spec: { rules: { backendRefs: { name: string; weight?: number }[] }[] } }>(cluster, ['get', 'httproute', 'churn', '-n', ns]);
  return r.spec.rules.flatMap((rule) => rule.backendRefs.map((b) => [b.name, b.weight ?? 1] as [string, number]));
};

test('Gateway API: version 9 walks 10% → timed pause → 50% → pause until promoted → 100%; the HTTPRoute and replicas match each step', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], httpRoute(ns));
  await startController(t, cluster, ns);
  const rollout = { steps: [{ setWeight: 10 }, { pause: { duration: '8s' } }, { setWeight: 50 }, { pause: {} }, { setWeight: 100 }], trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } };
  const stable = await serveVersion8(ns, rollout);
  assert.deepEqual(await routeWeights(ns), [['churn', 100], ['churn-canary', 0], ['docs', 1]]);

  await apply(ns, manifest('9', rollout));
  const paused = await until(ns, 'step 2 (the timed pause) at 10%', (m) => m.status?.canary?.step === 1);
  const canary = paused.status?.canary?.revision ?? '';
  assert.deepEqual(await routeWeights(ns), [['churn', 90], ['churn-canary', 10], ['docs', 1]], 'only the two weights changed');
  assert.equal(await replicasOf(ns, canary), 1);
  assert.equal(await replicasOf(ns, stable), 4);
  assert.deepEqual(await selectorOf(ns, 'churn-canary'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': canary });
  assert.equal(paused.status?.phase, 'Progressing');
  const pauseUntil = Date.parse(paused.status?.canary?.pauseUntil ?? '');
  assert.ok(pauseUntil > Date.now() - 1000, 'the pause has an end in status');

  const at50 = await until(ns, 'step 4 (pause until promoted) at 50%', (m) => m.status?.canary?.step === 3, 60_000);
  assert.ok(Date.now() >= pauseUntil, 'the timed pause was waited out');
  assert.deepEqual(await routeWeights(ns), [['churn', 50], ['churn-canary', 50], ['docs', 1]]);
  assert.equal(await replicasOf(ns, canary), 2);
  assert.equal(condition(at50, 'Ready')?.reason, 'AwaitingPromotion');
  // An indefinite pause waits: a while later, still there.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal((await getMd(ns)).status?.canary?.step, 3);

  const promoted = await plugin(['promote', 'churn', '-n', ns]);
  assert.equal(promoted.code, 0, promoted.err);
  assert.match(promoted.out, /promote accepted \(requested by .*\): past step 4 of 5 \(pause until promoted\)/);
  const done = await until(ns, 'version 9 stable', (m) => m.status?.stable?.revision === canary && condition(m, 'Ready')?.status === 'True');
  assert.equal(done.status?.canary, undefined);
  assert.deepEqual(await routeWeights(ns), [['churn', 100], ['churn-canary', 0], ['docs', 1]]);
  assert.deepEqual(await selectorOf(ns, 'churn'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': canary });
  await eventually('the old revision gone', async () => (await replicasOf(ns, stable)) === undefined);
  const events = await getJson<{ items: (EventView & { reason: string; message: string })[] }>(cluster, ['get', 'events', '-n', ns, '--field-selector=involvedObject.kind=ModelDeployment']);
  const steps = events.items.filter((e) => e.reason === 'RolloutStep').map((e) => e.message);
  for (const n of [1, 2, 3, 4, 5]) assert.ok(steps.some((m) => m.startsWith(`step ${n} of 5`)), `an Event for step ${n}: ${steps.join(' | ')}`);
  // RolloutStarted and the first step are written by one reconcile, concurrently, within one second: the
  // timeline (kubectl slipway status) still shows them in the order they were decided.
  assert.ok(events.items.every((e) => /\.\d{6}Z$/.test(e.eventTime ?? '')), 'each Event has its time in microseconds');
  const timeline = events.items.slice().sort(eventOrder).filter((e) => ['RolloutStarted', 'RolloutStep'].includes(e.reason)).map((e) => (e.reason === 'RolloutStarted' ? 'started' : e.message.slice(0, 6)));
  assert.deepEqual(timeline.slice(0, 6), ['started', 'step 1', 'step 2', 'step 3', 'step 4', 'step 5'], timeline.join(', '));

  // Re-applying the same manifest after a finished rollout changes nothing.
  const before = await getMd(ns);
  await apply(ns, manifest('9', rollout));
  await new Promise((r) => setTimeout(r, 2000));
  const after = await getMd(ns);
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
});

test('Istio: the VirtualService\'s weights follow the steps; promote --full skips the rest; the plugin records the user', async (t) => {
  const ns = await testNamespace(t);
  // The chart's request policy stamps who asked (cluster-wide: removed afterwards).
  const policy = (yaml.loadAll(renderChart(join(cluster.binDir, 'helm'), root)) as { kind: string; metadata: { name: string } }[]).filter((d) => d.kind.startsWith('MutatingAdmissionPolicy') || d.metadata.name.includes('-aggregate-to-'));
  const docs = policy.map((d) => JSON.stringify(d)).join('\n');
  t.after(() => cluster.kubectl(['delete', '--ignore-not-found', '-f', '-'], docs).then(() => undefined));
  await cluster.kubectl(['apply', '--server-side', '-f', '-'], docs);
  await cluster.kubectl(['create', 'serviceaccount', 'alice', '-n', ns]);
  await cluster.kubectl(['create', 'rolebinding', 'alice', '-n', ns, '--clusterrole=edit', `--serviceaccount=${ns}:alice`]);
  const token = (await cluster.kubectl(['create', 'token', 'alice', '-n', ns, '--duration=1h'])).trim();
  const aliceConfig = writeTokenKubeconfig(cluster.kubeconfig, token, join(mkdtempSync(join(tmpdir(), 'slipway-alice-')), 'kubeconfig'));

  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'churn' },
    spec: {
      hosts: ['churn.example.com'],
      http: [{ name: 'primary', retries: { attempts: 2 }, route: [{ destination: { host: `churn.${ns}.svc.cluster.local` }, weight: 100 }, { destination: { host: `churn-canary.${ns}.svc.cluster.local` }, weight: 0 }] }],
    },
  }));
  const vsWeights = async (): Promise<number[]> => (await getJson<{ spec: { http: { route: { weight: number }[] }[] } }>(cluster, ['get', 'virtualservice', 'churn', '-n', ns])).spec.http[0]?.route.map((r) => r.weight) ?? [];
  await startController(t, cluster, ns);
  const rollout = { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }, { pause: {} }, { setWeight: 100 }], trafficRouting: { istio: { virtualService: 'churn', routes: ['primary'] } } };
  await serveVersion8(ns, rollout);
  await apply(ns, manifest('9', rollout));
  const at20 = await until(ns, 'paused at 20%', (m) => m.status?.canary?.step === 1);
  assert.deepEqual(await vsWeights(), [80, 20]);
  assert.equal(await replicasOf(ns, at20.status?.canary?.revision), 1);

  // Access is checked by the API server: alice may write requests, a stranger may not.
  const refused = await plugin(['promote', 'churn', '-n', ns, '--full'], { KUBECONFIG: writeTokenKubeconfig(cluster.kubeconfig, 'not-a-token', join(mkdtempSync(join(tmpdir(), 'slipway-x-')), 'kubeconfig')) });
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^error: (no permission|.*Unauthorized)/m);
  const full = await plugin(['promote', 'churn', '-n', ns, '--full', '--kubeconfig', aliceConfig]);
  assert.equal(full.code, 0, full.err);
  assert.match(full.out, new RegExp(`promote-full accepted \\(requested by system:serviceaccount:${ns}:alice\\)`));
  const done = await until(ns, 'promoted in full', (m) => m.status?.stable?.modelVersion === '9' && m.status.canary === undefined);
  assert.equal(done.status?.lastRequest?.by, `system:serviceaccount:${ns}:alice`);
  assert.deepEqual(await vsWeights(), [100, 0]);
  const vs = await getJson<{ spec: { http: { retries: unknown }[] } }>(cluster, ['get', 'virtualservice', 'churn', '-n', ns]);
  assert.deepEqual(vs.spec.http[0]?.retries, { attempts: 2 }, 'the rest of the VirtualService is untouched');
  const events = await getJson<{ items: { reason: string; message: string }[] }>(cluster, ['get', 'events', '-n', ns, '--field-selector=involvedObject.kind=ModelDeployment']);
  assert.ok(events.items.some((e) => e.reason === 'PromoteFull' && e.message.includes(`requested by system:serviceaccount:${ns}:alice`)));
  // Nothing left to promote: a clear refusal, exit code 1.
  const nothing = await plugin(['promote', 'churn', '-n', ns]);
  assert.equal(nothing.code, 1);
  assert.match(nothing.out, /promote refused .*nothing to promote: no rollout is in progress/);
});

test('replica ratio: abort puts all traffic back on stable at once and removes the canary; re-applying changes nothing; retry starts again', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  const rollout = { steps: [{ setWeight: 25 }, { pause: {} }, { setWeight: 100 }] };
  const stable = await serveVersion8(ns, { ...rollout });
  await apply(ns, manifest('9', rollout, { replicas: 3 }));
  // The step is carried once the canary's pod is available and the stable revision's fourth pod (replicas went
  // from 4 to 3 with this spec) is gone: one pod in four.
  const at25 = await until(ns, 'paused at 25%', (m) => m.status?.canary?.step === 1);
  const canary = at25.status?.canary?.revision ?? '';
  assert.equal(await replicasOf(ns, canary), 1);
  assert.equal(await replicasOf(ns, stable), 3);
  assert.equal(at25.status?.canary?.achievedWeight, 25, 'one pod in four');
  assert.deepEqual(await selectorOf(ns, 'churn'), { 'slipway.dev/model-deployment': 'churn' }, 'the Service selects both revisions');

  const aborted = await plugin(['abort', 'churn', '-n', ns]);
  assert.equal(aborted.code, 0, aborted.err);
  const m = await until(ns, 'aborted', (x) => x.status?.aborted !== undefined && x.status.phase === 'Degraded');
  assert.equal(condition(m, 'Stalled')?.reason, 'Aborted');
  assert.equal(m.status?.stable?.revision, stable);
  assert.deepEqual(await selectorOf(ns, 'churn'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': stable });
  await eventually('the canary gone', async () => (await replicasOf(ns, canary)) === undefined);

  // GitOps re-applies the same manifest: nothing restarts.
  const before = await getMd(ns);
  await apply(ns, manifest('9', rollout, { replicas: 3 }));
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal((await getMd(ns)).metadata.resourceVersion, before.metadata.resourceVersion);
  assert.equal(await replicasOf(ns, canary), undefined);

  const retried = await plugin(['retry', 'churn', '-n', ns]);
  assert.equal(retried.code, 0, retried.err);
  await until(ns, 'the rollout again at 25%', (x) => x.status?.canary?.revision === canary && x.status.canary.step === 1 && x.status.aborted === undefined);
  assert.equal(await replicasOf(ns, canary), 1);
});

test('a canary that never becomes ready is aborted at its progress deadline; stable serves throughout', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  const rollout = { steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }] };
  const stable = await serveVersion8(ns, rollout);
  await apply(ns, manifest('9', rollout, { image: NEVER_READY_IMAGE, progressDeadlineSeconds: 30 }));
  const m = await until(ns, 'aborted at the deadline', (x) => x.status?.aborted?.reason === 'ProgressDeadlineExceeded', 120_000);
  assert.match(condition(m, 'Stalled')?.message ?? '', /was not available within spec.progressDeadlineSeconds \(30 s\)/);
  assert.equal(condition(m, 'Available')?.status, 'True');
  assert.equal(m.status?.stable?.revision, stable);
  await eventually('the canary gone', async () => (await replicasOf(ns, m.status?.aborted?.revision)) === undefined);
});

test('the controller killed mid-rollout resumes at the same step; undo brings back the earlier revision', async (t) => {
  const ns = await testNamespace(t);
  const first = await startController(t, cluster, ns, { identity: 'first', args: ['--lease-duration-seconds=3'] });
  const rollout = { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 40 }, { pause: { duration: '6s' } }] };
  const stable = await serveVersion8(ns, rollout);
  await apply(ns, manifest('9', rollout));
  const paused = await until(ns, 'paused at 20%', (m) => m.status?.canary?.step === 1);
  await first.kill();
  const second = await startController(t, cluster, ns, { identity: 'second', args: ['--lease-duration-seconds=3'] });
  // The second takes the lease once the first one's has run out, then reconciles from status alone.
  await eventually('the second controller leading', async () => (await second.metric('slipway_leader')) === 1, { timeoutMs: 30_000, intervalMs: 250 });
  await new Promise((r) => setTimeout(r, 2000)); // a moment to reconcile: it must not move the rollout
  const resumed = await getMd(ns);
  assert.equal(resumed.status?.canary?.step, 1, 'the new controller holds at the same step');
  assert.equal(resumed.status?.canary?.revision, paused.status?.canary?.revision);
  assert.equal(await replicasOf(ns, paused.status?.canary?.revision), 1);
  assert.equal((await plugin(['promote', 'churn', '-n', ns])).code, 0);
  const done = await until(ns, 'version 9 stable', (m) => m.status?.stable?.modelVersion === '9' && m.status.canary === undefined);
  assert.deepEqual(done.status?.history?.map((h) => h.modelVersion), ['9', '8']);

  const undo = await plugin(['undo', 'churn', '-n', ns]);
  assert.equal(undo.code, 0, undo.err);
  assert.match(undo.out, new RegExp(`undo accepted .*revision ${stable} serves again`));
  await until(ns, 'version 8 stable again', (m) => m.status?.stable?.revision === stable && m.status.canary === undefined, 90_000);
  // The same manifest (version 9) applied again: the undo holds until the spec changes.
  const before = await getMd(ns);
  await apply(ns, manifest('9', rollout));
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal((await getMd(ns)).metadata.resourceVersion, before.metadata.resourceVersion);
});

test('Istio with DestinationRule subsets: the subsets select the revisions and the weights follow the steps', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], [
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'churn' }, spec: { hosts: ['churn'], http: [{ route: [{ destination: { host: 'churn', subset: 'stable' }, weight: 100 }, { destination: { host: 'churn', subset: 'canary' }, weight: 0 }] }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'churn' }, spec: { host: 'churn', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } }, subsets: [{ name: 'stable' }, { name: 'canary' }] } },
  ].map((d) => JSON.stringify(d)).join('\n'));
  await startController(t, cluster, ns);
  const rollout = { steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }], trafficRouting: { istio: { virtualService: 'churn', destinationRule: { name: 'churn', stableSubsetName: 'stable', canarySubsetName: 'canary' } } } };
  const stable = await serveVersion8(ns, rollout);
  const subsets = async (): Promise<(string | undefined)[]> => (await getJson<{ spec: { subsets: { labels?: Record<string, string> }[] } }>(cluster, ['get', 'destinationrule', 'churn', '-n', ns])).spec.subsets.map((s) => s.labels?.['slipway.dev/revision']);
  await eventually('both subsets on stable', async () => JSON.stringify(await subsets()) === JSON.stringify([stable, stable]));
  await apply(ns, manifest('9', rollout));
  const at30 = await until(ns, 'paused at 30%', (m) => m.status?.canary?.step === 1);
  const canary = at30.status?.canary?.revision ?? '';
  assert.deepEqual(await subsets(), [stable, canary]);
  const vs = await getJson<{ spec: { http: { route: { weight: number }[] }[] } }>(cluster, ['get', 'virtualservice', 'churn', '-n', ns]);
  assert.deepEqual(vs.spec.http[0]?.route.map((r) => r.weight), [70, 30]);
  assert.equal((await plugin(['promote', 'churn', '-n', ns])).code, 0);
  await until(ns, 'version 9 stable', (m) => m.status?.stable?.revision === canary && m.status.canary === undefined);
  assert.deepEqual(await subsets(), [canary, canary]);
  const dr = await getJson<{ spec: { trafficPolicy: unknown } }>(cluster, ['get', 'destinationrule', 'churn', '-n', ns]);
  assert.deepEqual(dr.spec.trafficPolicy, { loadBalancer: { simple: 'LEAST_REQUEST' } });
});
