// The ModelDeployment planner, case by case: what gets applied, deleted, written to status and announced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import type { ModelDeployment } from '../../src/api/modeldeployment.ts';
import { modelDeploymentSpec } from '../../src/api/modeldeployment.ts';
import { LABEL_REVISION, revisionOf, revisionTemplate } from '../../src/controllers/modeldeployment/children.ts';
import { onlyStatusChanged } from '../../src/controllers/compare.ts';
import { NOT_OWNED_RETRY_MS, plan, stalledStatus, type Observed } from '../../src/controllers/modeldeployment/plan.ts';
import type { KubeObject } from '../../src/kube/resources.ts';
import type { Deployment } from '../../src/kube/workloads.ts';

const NOW = new Date('2026-11-24T12:00:00Z');
const LATER = new Date('2026-11-24T12:05:00Z');

function md(spec: Record<string, unknown> = {}, status?: ModelDeployment['status'], generation = 1): ModelDeployment {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn', namespace: 'marketing', uid: 'uid-1', generation },
    spec: modelDeploymentSpec.parse({
      model: { name: 'churn-xgb', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' },
      image: 'registry.example.com/mlserver:1.6.1',
      replicas: 2,
      batch: { schedule: '0 2 * * *' },
      ...spec,
    }),
    ...(status ? { status } : {}),
  };
}

/** The spec.model of version `v` (each version at its own URI). */
const modelVersion = (v: string) => ({ model: { name: 'churn-xgb', version: v, uri: `s3://models/churn/${v}/`, format: 'xgboost' } });

function observed(m: ModelDeployment, children: KubeObject[] = [], environment?: Observed['environment']): Observed {
  return {
    md: m,
    deployments: children.filter((c) => c.kind === 'Deployment'),
    services: children.filter((c) => c.kind === 'Service'),
    cronJobs: children.filter((c) => c.kind === 'CronJob'),
    hpas: children.filter((c) => c.kind === 'HorizontalPodAutoscaler'),
    revisions: children.filter((c) => c.kind === 'ControllerRevision'),
    ...(environment ? { environment } : {}),
  };
}

/** What the API server and the Deployment controller would make of an applied configuration. */
function live(obj: KubeObject, available?: number): KubeObject {
  const copy = structuredClone(obj);
  copy.metadata.uid = `uid-${obj.metadata.name}`;
  copy.metadata.generation = 1;
  if (obj.kind === 'Deployment' && available !== undefined) {
    const replicas = (obj.spec as { replicas?: number }).replicas ?? 1;
    copy.status = { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: available, availableReplicas: available };
  }
  return copy;
}

/** The Deployment a plan applies (beside, for a new revision, its ControllerRevision). */
const deploymentIn = (p: ReturnType<typeof plan>): KubeObject => p.apply.find((a) => a.kind === 'Deployment') as KubeObject;
const condition = (p: ReturnType<typeof plan>, type: string) => p.status.conditions?.find((c) => c.type === type);
const kinds = (objs: KubeObject[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();

/** Runs the planner to convergence against a simulated cluster where Deployments become available at once. */
function converge(m: ModelDeployment, children: KubeObject[] = []): { m: ModelDeployment; children: KubeObject[] } {
  let current = m;
  let world = children;
  for (let i = 0; i < 5; i++) {
    const p = plan(observed(current, world), NOW);
    world = world.filter((c) => !p.delete.some((d) => d.kind === c.kind && d.name === c.metadata.name));
    for (const a of p.apply) {
      world = world.filter((c) => !(c.kind === a.kind && c.metadata.name === a.metadata.name));
      world.push(live(a, a.kind === 'Deployment' ? ((a.spec as { replicas?: number }).replicas ?? 1) : undefined));
    }
    current = { ...current, status: p.status };
    if (p.apply.length === 0 && p.delete.length === 0 && !p.statusChanged) break;
  }
  return { m: current, children: world };
}

test('a new ModelDeployment creates its Deployment, Service and batch CronJob, and waits for them', () => {
  const p = plan(observed(md()), NOW);
  const rev = p.status.stable?.revision ?? '';
  assert.match(rev, /^[0-9a-f]{10}$/);
  assert.deepEqual(kinds(p.apply), [`ControllerRevision/churn-${rev}`, 'CronJob/churn-batch', `Deployment/churn-${rev}`, 'Service/churn']);
  assert.deepEqual(p.delete, []);
  assert.equal(p.status.phase, 'Progressing');
  assert.equal(condition(p, 'Ready')?.status, 'False');
  assert.equal(condition(p, 'Reconciling')?.status, 'True');
  assert.equal(condition(p, 'Stalled')?.status, 'False');
  assert.equal(p.status.observedGeneration, 1);
  const deployment = p.apply.find((a) => a.kind === 'Deployment') as unknown as { spec: { replicas: number; template: { spec: { containers: { image: string; env: { name: string; value: string }[]; readinessProbe: { httpGet: { path: string } } }[] } } } };
  const container = deployment.spec.template.spec.containers[0];
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(container?.image, 'registry.example.com/mlserver:1.6.1');
  assert.equal(container?.readinessProbe.httpGet.path, '/v2/health/ready');
  assert.deepEqual(container?.env.filter((e) => e.name.startsWith('SLIPWAY_MODEL_')).map((e) => e.value), ['churn-xgb', '8', 's3://models/churn/8/', 'xgboost']);
  for (const child of p.apply) {
    assert.equal(child.metadata.ownerReferences?.[0]?.uid, 'uid-1', `${child.kind} is owned`);
    assert.equal(child.metadata.labels?.['slipway.dev/model-deployment'], 'churn');
  }
});

test('once the Deployment is available the ModelDeployment is Ready and says so once', () => {
  const first = plan(observed(md()), NOW);
  const world = first.apply.map((a) => live(a, 2));
  const p = plan(observed(md({}, first.status), world), LATER);
  assert.deepEqual(p.apply, []);
  assert.equal(p.status.phase, 'Healthy');
  assert.equal(condition(p, 'Ready')?.status, 'True');
  assert.equal(condition(p, 'Reconciling')?.status, 'False');
  assert.equal(condition(p, 'Available')?.status, 'True');
  assert.equal(p.status.availableReplicas, 2);
  assert.deepEqual(p.events.map((e) => e.reason), ['Ready']);
  assert.equal(condition(p, 'Ready')?.lastTransitionTime, '2026-11-24T12:05:00Z');
});

test('a converged ModelDeployment plans no writes at all: no apply, no delete, no status, no event', () => {
  const { m, children } = converge(md());
  const p = plan(observed(m, children), LATER);
  assert.deepEqual(p.apply, []);
  assert.deepEqual(p.delete, []);
  assert.equal(p.statusChanged, false);
  assert.deepEqual(p.events, []);
  assert.equal(condition(p, 'Ready')?.lastTransitionTime, '2026-11-24T12:00:00Z', 'transition time does not move without a transition');
});

test('a hand edit of an owned Deployment is planned back', () => {
  const { m, children } = converge(md());
  const edited = children.map((c) => {
    if (c.kind !== 'Deployment') return c;
    const copy = structuredClone(c) as Deployment & { spec: { template: { spec: { containers: { image: string }[] } } } };
    (copy.spec.template.spec.containers[0] as { image: string }).image = 'evil:latest';
    return copy;
  });
  const p = plan(observed(m, edited), LATER);
  assert.deepEqual(kinds(p.apply), [`Deployment/churn-${m.status?.stable?.revision}`]);
});

test('changing replicas applies the same revision with the new count', () => {
  const { m, children } = converge(md());
  const p = plan(observed({ ...md({ replicas: 5 }, m.status, 2) }, children), LATER);
  const dep = p.apply.find((a) => a.kind === 'Deployment') as { spec: { replicas: number } } | undefined;
  assert.equal(dep?.spec.replicas, 5);
  assert.equal(p.status.stable?.revision, m.status?.stable?.revision, 'scale is not a new revision');
  assert.equal(condition(p, 'Reconciling')?.status, 'True');
  assert.equal(p.status.observedGeneration, 2);
});

test('a new model version starts a second revision beside the stable one; traffic stays on stable', () => {
  const { m, children } = converge(md());
  const stableRev = m.status?.stable?.revision ?? '';
  const next = md(modelVersion('9'), m.status, 2);
  const p = plan(observed(next, children), LATER);
  const newRev = p.status.canary?.revision ?? '';
  assert.notEqual(newRev, stableRev);
  assert.deepEqual(kinds(p.apply), [`ControllerRevision/churn-${newRev}`, `Deployment/churn-${newRev}`]);
  assert.equal(deploymentIn(p).metadata.labels?.['slipway.dev/role'], 'canary');
  const kept = p.apply.find((a) => a.kind === 'ControllerRevision') as unknown as { revision: number; data: { podTemplate: unknown; modelVersion: string } };
  assert.equal(kept.revision, 2, 'revisions are numbered in order');
  assert.equal(kept.data.modelVersion, '9');
  assert.deepEqual(kept.data.podTemplate, (deploymentIn(p) as unknown as { spec: { template: unknown } }).spec.template, 'it keeps exactly what the pods run');
  assert.deepEqual(p.delete, []);
  assert.equal(p.status.stable?.revision, stableRev);
  assert.equal(p.status.canary?.modelVersion, '9');
  assert.ok(p.events.some((e) => e.reason === 'RevisionCreated'));
  assert.equal(condition(p, 'Ready')?.reason, 'RolloutInProgress');
});

test('the new revision is promoted once available: the Service switches, and the old revision drains, then goes', () => {
  const { m, children } = converge(md());
  const stableRev = m.status?.stable?.revision ?? '';
  const next = md(modelVersion('9'), m.status, 2);
  const started = plan(observed(next, children), LATER);
  const newChildren = started.apply.map((a) => live(a, 2));
  const p = plan(observed({ ...next, status: started.status }, [...children, ...newChildren]), LATER);
  const newRev = started.status.canary?.revision ?? '';
  assert.equal(p.status.stable?.revision, newRev);
  assert.equal(p.status.canary, undefined);
  const service = p.apply.find((a) => a.kind === 'Service') as { spec: { selector: Record<string, string> } } | undefined;
  assert.equal(service?.spec.selector[LABEL_REVISION], newRev);
  assert.deepEqual(p.delete, [], 'the old revision still finishes its in-flight requests');
  assert.deepEqual(p.status.retiring, [{ revision: stableRev, since: LATER.toISOString() }]);
  assert.deepEqual(p.requeue, { afterMs: 30_000, reason: 'Draining' });
  assert.deepEqual(p.events.map((e) => e.reason), ['Promoted'], 'the promotion is announced once: Ready turns True beside it without an Event of its own');
  assert.equal(condition(p, 'Ready')?.status, 'True');

  // A restart during the drain neither restarts the clock nor deletes early.
  const promoted = { ...next, status: p.status };
  const world = [...children.filter((c) => c.kind !== 'Service'), ...newChildren, live(service as unknown as KubeObject)];
  const midway = plan(observed(promoted, world), new Date(LATER.getTime() + 20_000));
  assert.deepEqual([midway.delete, midway.statusChanged, midway.requeue?.afterMs], [[], false, 10_000]);
  const done = plan(observed(promoted, world), new Date(LATER.getTime() + 30_000));
  assert.deepEqual(done.delete.map((d) => `${d.kind}/${d.name}`), [`Deployment/churn-${stableRev}`]);
  assert.equal(done.status.retiring, undefined);
});

test('scaleDownDelaySeconds: 0 removes the old revision as soon as traffic has left it', () => {
  const { m, children } = converge(md({ rollout: { scaleDownDelaySeconds: 0 } }));
  const stableRev = m.status?.stable?.revision ?? '';
  const next = md({ ...modelVersion('9'), rollout: { scaleDownDelaySeconds: 0 } }, m.status, 2);
  const started = plan(observed(next, children), LATER);
  const p = plan(observed({ ...next, status: started.status }, [...children, ...started.apply.map((a) => live(a, 2))]), LATER);
  assert.deepEqual(p.delete.map((d) => `${d.kind}/${d.name}`), [`Deployment/churn-${stableRev}`]);
});

test('scaling during a rollout reaches the stable revision, rendered from its ControllerRevision', () => {
  const { m, children } = converge(md());
  const stableRev = m.status?.stable?.revision ?? '';
  const v9 = md(modelVersion('9'), m.status, 2);
  const started = plan(observed(v9, children), LATER);
  const canary = started.apply.map((a) => live(a, 0)); // not available yet
  const scaled = md({ ...modelVersion('9'), replicas: 5 }, started.status, 3);
  const p = plan(observed(scaled, [...children, ...canary]), LATER);
  const replicasOf = (name: string) => (p.apply.find((a) => a.kind === 'Deployment' && a.metadata.name === name)?.spec as { replicas?: number } | undefined)?.replicas;
  assert.equal(replicasOf(`churn-${stableRev}`), 5, 'what serves gets the new scale');
  assert.equal(replicasOf(`churn-${started.status.canary?.revision}`), 5);
  const stable = p.apply.find((a) => a.metadata.name === `churn-${stableRev}`) as unknown as { spec: { template: unknown } };
  const before = children.find((c) => c.kind === 'Deployment' && c.metadata.name === `churn-${stableRev}`) as unknown as { spec: { template: unknown } };
  assert.deepEqual(stable.spec.template, before.spec.template, 'and runs exactly what it ran');
  // Paused, or blocked by a spec whose image cannot be resolved: the same.
  const pausedPlan = plan(observed(md({ ...modelVersion('9'), replicas: 4, paused: true }, started.status, 4), [...children, ...canary]), LATER);
  assert.equal((pausedPlan.apply.find((a) => a.kind === 'Deployment' && a.metadata.name === `churn-${stableRev}`)?.spec as { replicas: number }).replicas, 4);
  const blocked = plan(observed(md({ replicas: 6, image: undefined, environmentRef: { name: 'gone' } }, m.status, 5), children, { found: false }), LATER);
  assert.equal((blocked.apply.find((a) => a.kind === 'Deployment' && a.metadata.name === `churn-${stableRev}`)?.spec as { replicas: number }).replicas, 6);
});

test('revision history is kept up to revisionHistoryLimit, oldest removed first, what runs always kept', () => {
  let { m, children } = converge(md({ revisionHistoryLimit: 2, rollout: { scaleDownDelaySeconds: 0 } }));
  for (const v of ['9', '10', '11', '12']) ({ m, children } = converge(md({ ...modelVersion(v), revisionHistoryLimit: 2, rollout: { scaleDownDelaySeconds: 0 } }, m.status, Number(v)), children));
  const numbers = children.filter((c) => c.kind === 'ControllerRevision').map((c) => (c as unknown as { revision: number }).revision).sort();
  assert.deepEqual(numbers, [3, 4, 5], 'the stable revision (5) and the two before it');
  assert.equal(children.filter((c) => c.kind === 'Deployment').length, 1);
});

test('a missing ProjectEnvironment stalls with a reason, a Warning, and a safety requeue; nothing is created', () => {
  const m = md({ image: undefined, environmentRef: { name: 'py311' } });
  const p = plan(observed(m, [], { found: false }), NOW);
  assert.deepEqual(p.apply, []);
  assert.equal(condition(p, 'Stalled')?.status, 'True');
  assert.equal(condition(p, 'Stalled')?.reason, 'EnvironmentNotFound');
  assert.match(condition(p, 'Ready')?.message ?? '', /ProjectEnvironment "py311" does not exist in namespace marketing/);
  assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', 'EnvironmentNotFound']]);
  assert.equal(p.requeue?.reason, 'EnvironmentNotFound');
  assert.equal(p.status.phase, 'Failed');
});

test('the same missing environment seen again changes nothing: no status write, no second Event', () => {
  const m = md({ image: undefined, environmentRef: { name: 'py311' } });
  const first = plan(observed(m, [], { found: false }), NOW);
  const again = plan(observed({ ...m, status: first.status }, [], { found: false }), LATER);
  assert.equal(again.statusChanged, false);
  assert.deepEqual(again.events, []);
});

test('an environment still building is progress, not a failure', () => {
  const m = md({ image: undefined, environmentRef: { name: 'py311' } });
  const p = plan(observed(m, [], { found: true, image: undefined, phase: 'Building', message: undefined }), NOW);
  assert.equal(condition(p, 'Stalled')?.status, 'False');
  assert.equal(condition(p, 'Reconciling')?.reason, 'EnvironmentNotReady');
  assert.equal(p.status.phase, 'Progressing');
});

test('the environment\'s resolved image is what the Deployment runs', () => {
  const image = `registry.example.com/env@sha256:${'b'.repeat(64)}`;
  const m = md({ image: undefined, environmentRef: { name: 'py311' } });
  const p = plan(observed(m, [], { found: true, image, phase: 'Ready', message: undefined }), NOW);
  const dep = p.apply.find((a) => a.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
  assert.equal(dep.spec.template.spec.containers[0]?.image, image);
  assert.equal(p.status.stable?.image, image);
});

test('a quota that refuses pods stalls the ModelDeployment with the Deployment controller\'s message', () => {
  const first = plan(observed(md()), NOW);
  const world = first.apply.map((a) => {
    const l = live(a, 0) as Deployment;
    if (a.kind === 'Deployment') {
      l.status = { ...l.status, conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'pods "churn-x" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=0, limited: pods=0' }] };
    }
    return l;
  });
  const p = plan(observed(md({}, first.status), world), LATER);
  assert.equal(condition(p, 'Stalled')?.reason, 'ReplicaFailure');
  assert.match(condition(p, 'Stalled')?.message ?? '', /exceeded quota/);
  assert.equal(condition(p, 'Reconciling')?.status, 'False');
  assert.equal(p.status.phase, 'Failed');
  assert.ok(p.events.some((e) => e.type === 'Warning' && e.reason === 'ReplicaFailure'));
});

test('a revision past its progress deadline is stalled', () => {
  const first = plan(observed(md()), NOW);
  const world = first.apply.map((a) => {
    const l = live(a, 0) as Deployment;
    if (a.kind === 'Deployment') l.status = { ...l.status, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }] };
    return l;
  });
  const p = plan(observed(md({}, first.status), world), LATER);
  assert.equal(condition(p, 'Stalled')?.reason, 'ProgressDeadlineExceeded');
});

test('removing batch deletes the CronJob; autoscaling adds an HPA that scales the ModelDeployment itself', () => {
  const { m, children } = converge(md());
  const p = plan(observed(md({ batch: undefined, replicas: undefined, autoscaling: { minReplicas: 3, maxReplicas: 6 } }, m.status, 2), children), LATER);
  assert.deepEqual(p.delete.map((d) => `${d.kind}/${d.name}`), ['CronJob/churn-batch']);
  const hpa = p.apply.find((a) => a.kind === 'HorizontalPodAutoscaler') as unknown as { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } } | undefined;
  assert.deepEqual(hpa?.spec.scaleTargetRef, { apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', name: 'churn' });
  assert.deepEqual([hpa?.spec.minReplicas, hpa?.spec.maxReplicas], [3, 6]);
  const dep = p.apply.find((a) => a.kind === 'Deployment') as unknown as { spec: { replicas: number } } | undefined;
  assert.equal(dep?.spec.replicas, 3, 'minReplicas until the HPA writes spec.replicas');
  assert.equal(p.status.selector, `slipway.dev/model-deployment=churn,slipway.dev/revision=${m.status?.stable?.revision}`);
});

test('under autoscaling a new revision starts with the replica count the HPA chose, so it can become available', () => {
  const scaled = md({ batch: undefined, replicas: 5, autoscaling: { minReplicas: 2, maxReplicas: 8 } });
  const { m, children } = converge(scaled);
  const next = md({ batch: undefined, replicas: 5, autoscaling: { minReplicas: 2, maxReplicas: 8 }, ...modelVersion('9') }, m.status, 2);
  const p = plan(observed(next, children), LATER);
  const dep = p.apply.find((a) => a.kind === 'Deployment') as unknown as { metadata: { labels: Record<string, string> }; spec: { replicas: number } };
  assert.equal(dep.metadata.labels['slipway.dev/role'], 'canary');
  assert.equal(dep.spec.replicas, 5);
  const promoted = plan(observed({ ...next, status: p.status }, [...children, live(dep as unknown as KubeObject, 5)]), LATER);
  assert.equal(promoted.status.stable?.modelVersion, '9');
});

test('replicas outside the autoscaling bounds are clamped to them', () => {
  const p = plan(observed(md({ batch: undefined, replicas: 50, autoscaling: { minReplicas: 2, maxReplicas: 8 } })), NOW);
  const dep = p.apply.find((a) => a.kind === 'Deployment') as unknown as { spec: { replicas: number } };
  assert.equal(dep.spec.replicas, 8);
});

test('a revision superseded before it became stable is deleted; the stable one stays', () => {
  const { m, children } = converge(md());
  const stableRev = m.status?.stable?.revision ?? '';
  const v9 = md(modelVersion('9'), m.status, 2);
  const started = plan(observed(v9, children), LATER);
  const v9Deployment = live(deploymentIn(started), 0);
  const v10 = md(modelVersion('10'), started.status, 3);
  const p = plan(observed(v10, [...children, v9Deployment]), LATER);
  assert.equal(p.status.canary?.modelVersion, '10');
  assert.deepEqual(p.delete.map((d) => d.name), [v9Deployment.metadata.name]);
  assert.equal(p.status.stable?.revision, stableRev);
});

test('pausing mid-rollout keeps the started revision as it is and still reports it', () => {
  const { m, children } = converge(md());
  const v9 = md(modelVersion('9'), m.status, 2);
  const started = plan(observed(v9, children), LATER);
  const canary = live(deploymentIn(started), 0);
  const paused = md({ paused: true, ...modelVersion('9') }, started.status, 3);
  const p = plan(observed(paused, [...children, canary]), LATER);
  assert.deepEqual(p.apply, []);
  assert.deepEqual(p.delete, []);
  assert.equal(p.status.canary?.modelVersion, '9');
  assert.equal(p.status.phase, 'Paused');
});

test('a paused ModelDeployment does not start a new revision', () => {
  const { m, children } = converge(md());
  const next = md({ paused: true, ...modelVersion('9') }, m.status, 2);
  const p = plan(observed(next, children), LATER);
  assert.deepEqual(p.apply, []);
  assert.equal(p.status.phase, 'Paused');
  assert.equal(condition(p, 'Ready')?.reason, 'Paused');
});

test('a ModelDeployment being deleted plans nothing: the garbage collector removes its children', () => {
  const m = md();
  m.metadata.deletionTimestamp = '2026-11-24T12:00:00Z';
  const p = plan(observed(m), NOW);
  assert.deepEqual([p.apply, p.delete, p.events, p.statusChanged], [[], [], [], false]);
});

/** The same value with the keys of every object, at every depth, in reverse order. */
function reversedKeys<T>(v: T): T {
  if (Array.isArray(v)) return v.map(reversedKeys) as T;
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversedKeys(x)])) as T;
  return v;
}

test('the revision changes with what pods run, not with scale or key order', () => {
  const a = md({ resources: { requests: { cpu: '1', memory: '1Gi' } }, runtime: { env: [{ name: 'Zeta', value: '1' }, { name: 'alpha', value: '2' }] } });
  const rev = (m: ModelDeployment) => revisionOf(m, revisionTemplate(m.spec, 'img'));
  assert.equal(rev(a), rev({ ...a, spec: { ...a.spec, replicas: 7 } }));
  // Every key reversed, down to the model, the runtime and the resource lists: the hash sees the same pods.
  const reversed = reversedKeys(a);
  assert.notDeepEqual(Object.keys(reversed.spec.runtime), Object.keys(a.spec.runtime));
  assert.equal(rev(a), rev(reversed));
  assert.notEqual(rev(a), rev({ ...a, spec: { ...a.spec, ...modelVersion('9') } as ModelDeployment['spec'] }));
  assert.notEqual(rev(a), rev({ ...a, spec: { ...a.spec, resources: { requests: { cpu: '2' } } } }));
  assert.equal(rev(a), rev({ ...a, spec: { ...a.spec, resources: { requests: { cpu: '1000m', memory: '1024Mi' } } } }), 'the same quantities in another form');
});

test('an upgrade of Slipway whose schema gains a defaulted field keeps every revision', () => {
  // The next version's schema: the same, with a new defaulted field in the runtime and one at the top.
  const nextSchema = modelDeploymentSpec.safeExtend({
    runtime: modelDeploymentSpec.shape.runtime.unwrap().extend({ gracefulShutdownSeconds: z.number().default(30) }).prefault({}),
    canaryScaleDownDelaySeconds: z.number().default(30),
  });
  const today = md();
  const after: ModelDeployment = { ...today, spec: nextSchema.parse(today.spec) };
  assert.equal((after.spec.runtime as Record<string, unknown>).gracefulShutdownSeconds, 30, 'the stored object reads back with the new default');
  assert.equal(revisionOf(after, revisionTemplate(after.spec, 'img')), revisionOf(today, revisionTemplate(today.spec, 'img')));
  const { children } = converge(today);
  const p = plan(observed({ ...after, status: converge(today).m.status }, children), LATER);
  assert.deepEqual([p.apply, p.delete, p.statusChanged], [[], [], false], 'nothing rolls out, nothing is written');
});

test('a write the API server refuses is recorded as Stalled once; the same refusal again writes nothing', () => {
  const first = plan(observed(md()), NOW);
  const message = 'Service churn was refused: admission webhook denied the request';
  const status = stalledStatus(md(), 'ApplyFailed', message, first.status, NOW);
  const stalled = status?.conditions?.find((c) => c.type === 'Stalled');
  assert.deepEqual([stalled?.status, stalled?.reason, stalled?.message], ['True', 'ApplyFailed', message]);
  assert.equal(status?.conditions?.find((c) => c.type === 'Reconciling')?.status, 'False');
  assert.equal(status?.stable?.revision, first.status.stable?.revision, 'the rest of the planned status is kept');
  assert.equal(stalledStatus(md({}, status), 'ApplyFailed', message, first.status, LATER), undefined);
  assert.ok(stalledStatus(md({}, status), 'ApplyFailed', 'another refusal', first.status, LATER), 'a new message is recorded');
  assert.equal(status?.phase, 'Failed', 'nothing serves yet');
  const { m } = converge(md());
  assert.equal(stalledStatus(m, 'ApplyFailed', message, m.status, LATER)?.phase, 'Degraded', 'stalled while the stable revision serves, as the planner says it');
});
test('children missing from the cache are marked for creation, whose names the planner checks for other owners', () => {
  const first = plan(observed(md()), NOW);
  assert.deepEqual(kinds(first.create), kinds(first.apply), 'on a new ModelDeployment every child is a creation');
  const { m, children } = converge(md());
  const withoutService = children.filter((c) => c.kind !== 'Service');
  const p = plan(observed(m, withoutService), LATER);
  assert.deepEqual(kinds(p.create), ['Service/churn']);
  const edited = plan(observed(md({ replicas: 5 }, m.status, 2), children), LATER);
  assert.equal(edited.apply.length, 1);
  assert.deepEqual(edited.create, [], 'an update of an owned child is not a creation');
});

test('only a change beyond the status makes a ModelDeployment event worth a reconcile', () => {
  const a = md();
  a.metadata.resourceVersion = '1';
  const statusOnly = { ...a, metadata: { ...a.metadata, resourceVersion: '2' }, status: { phase: 'Healthy' as const } };
  assert.equal(onlyStatusChanged(a, statusOnly), true);
  assert.equal(onlyStatusChanged(a, { ...a, metadata: { ...a.metadata, generation: 2 } }), false);
  assert.equal(onlyStatusChanged(a, { ...a, metadata: { ...a.metadata, labels: { team: 'x' } } }), false);
  assert.equal(onlyStatusChanged(a, { ...a, metadata: { ...a.metadata, deletionTimestamp: '2026-11-24T12:00:00Z' } }), false);
});

test('a name another object holds stalls the ModelDeployment with ObjectNotOwned, writes no child, and looks again later', () => {
  const theirs: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'churn', namespace: 'marketing', uid: 'someone-else' } };
  const occupant = (kind: string, name: string) => (kind === 'Service' && name === 'churn' ? theirs : undefined);
  const p = plan({ ...observed(md()), occupant }, NOW);
  assert.deepEqual([p.apply, p.create, p.delete], [[], [], []], 'not that object, nor any other child');
  assert.deepEqual([condition(p, 'Stalled')?.status, condition(p, 'Stalled')?.reason], ['True', 'ObjectNotOwned']);
  assert.match(condition(p, 'Stalled')?.message ?? '', /^Service churn already exists and is not managed by this ModelDeployment/);
  assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', 'ObjectNotOwned']]);
  assert.deepEqual(p.requeue, { afterMs: NOT_OWNED_RETRY_MS, reason: 'ObjectNotOwned' });
  assert.equal(p.status.phase, 'Failed');
  // The same name held by this ModelDeployment's own child (a cache that lags behind) is no obstacle.
  const ours = { ...theirs, metadata: { ...theirs.metadata, ownerReferences: [{ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', name: 'churn', uid: 'uid-1', controller: true }] } };
  const again = plan({ ...observed(md()), occupant: (kind: string) => (kind === 'Service' ? ours : undefined) }, NOW);
  assert.ok(again.apply.length > 0);
  assert.equal(condition(again, 'Stalled')?.status, 'False');
});
