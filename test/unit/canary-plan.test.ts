// Canary rollouts through the planner, against a simulated cluster: each plan is carried out (children applied,
// routes written, status stored) and the next evaluation starts from what was written, as after a restart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelDeploymentSpec, type ModelDeployment } from '../../src/api/modeldeployment.ts';
import { LABEL_REVISION } from '../../src/controllers/modeldeployment/children.ts';
import { plan, ROUTE_RETRY_MS, type Observed, type Plan } from '../../src/controllers/modeldeployment/plan.ts';
import { ANNOTATION_REQUEST, ANNOTATION_REQUESTED_BY, requestBody, type Verb } from '../../src/controllers/modeldeployment/requests.ts';
import type { KubeObject } from '../../src/kube/resources.ts';
import { measurementDue, type Measurement } from '../../src/analysis/analysis.ts';

const T0 = new Date('2026-11-26T10:00:00Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);

type Spec = Record<string, unknown>;
const baseSpec = (version: string, rollout: Spec | undefined, extra: Spec = {}): Spec => ({
  model: { name: 'churn-xgb', version, uri: `s3://models/churn/${version}/`, format: 'xgboost' },
  image: 'registry.example.com/mlserver:1.6.1',
  replicas: 4,
  ...(rollout ? { rollout } : {}),
  ...extra,
});

const route = (rules: unknown[]): KubeObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'churn', namespace: 'ml', resourceVersion: '1' },
  spec: { parentRefs: [{ name: 'gw' }], rules },
});
const splitRule = () => ({ matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name: 'churn', port: 80 }, { name: 'churn-canary', port: 80, weight: 0 }] });

/** A namespace with one ModelDeployment: plans are carried out the way the API server and controllers would. */
class World {
  md: ModelDeployment;
  children: KubeObject[] = [];
  route: KubeObject | null | undefined;
  destinationRule: KubeObject | null | undefined;
  routeClaimedBy: string | undefined;
  /** Revisions whose pods never become ready. */
  broken = new Set<string>();
  /** Deployments whose Deployment controller reports ProgressDeadlineExceeded. */
  deadline = new Set<string>();
  /** Revisions whose pods are slow to go: their available count stays this while it is above the wanted one. */
  lingering = new Map<string, number>();
  plans: Plan[] = [];
  routeWrites: string[] = [];
  private uid = 0;

  constructor(spec: Spec, route?: KubeObject | null) {
    this.md = { apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name: 'churn', namespace: 'ml', uid: 'md-uid', generation: 1, annotations: {} }, spec: modelDeploymentSpec.parse(spec) };
    this.route = route;
  }

  setSpec(spec: Spec): void {
    this.md = { ...this.md, metadata: { ...this.md.metadata, generation: (this.md.metadata.generation ?? 1) + 1 }, spec: modelDeploymentSpec.parse(spec) };
  }

  request(verb: Verb, id: string, by = 'alice', revision?: string): void {
    this.md.metadata.annotations = { [ANNOTATION_REQUEST]: requestBody(verb, id, revision), [ANNOTATION_REQUESTED_BY]: by };
  }

  observed(): Observed {
    const of = (kind: string) => this.children.filter((c) => c.kind === kind);
    return {
      md: this.md,
      deployments: of('Deployment'),
      services: of('Service'),
      cronJobs: of('CronJob'),
      hpas: of('HorizontalPodAutoscaler'),
      revisions: of('ControllerRevision'),
      ...(this.route !== undefined ? { route: this.route } : {}),
      ...(this.destinationRule !== undefined ? { destinationRule: this.destinationRule } : {}),
      ...(this.routeClaimedBy ? { routeClaimedBy: this.routeClaimedBy } : {}),
    };
  }

  /** What Prometheus would answer, given the window: set by analysis tests. */
  provider: ((window: number, now: Date) => Measurement['metrics']) | undefined;

  /** One reconcile at `now`: plan from what is observed (a measurement if one is due), then carry it out. */
  reconcile(now: Date): Plan {
    const due = measurementDue(this.md, now);
    const observed = this.observed();
    if (due && this.provider) observed.measurement = { at: now, metrics: this.provider(due.windowSeconds, now) };
    const p = plan(observed, now);
    this.plans.push(p);
    this.children = this.children.filter((c) => !p.delete.some((d) => d.kind === c.kind && d.name === c.metadata.name));
    for (const a of p.apply) {
      const before = this.children.find((c) => c.kind === a.kind && c.metadata.name === a.metadata.name);
      this.children = this.children.filter((c) => c !== before);
      const copy = structuredClone(a);
      copy.metadata.uid = before?.metadata.uid ?? `uid-${++this.uid}`;
      copy.metadata.generation = (before?.metadata.generation ?? 0) + 1;
      this.children.push(copy);
    }
    this.settle();
    for (const r of p.routes) {
      const key = r.object.kind === 'DestinationRule' ? 'destinationRule' : 'route';
      assert.equal(r.object.metadata.resourceVersion, this[key]?.metadata.resourceVersion, 'a route is written over the version it was read at');
      this[key] = { ...structuredClone(r.object), metadata: { ...r.object.metadata, resourceVersion: String(Number(r.object.metadata.resourceVersion) + 1) } };
      this.routeWrites.push(`${r.object.kind}`);
    }
    if (p.statusChanged) this.md = { ...this.md, status: structuredClone(p.status) };
    return p;
  }

  /** The Deployment controller: pods of a revision that is not broken are available at once. */
  settle(): void {
    for (const d of this.children.filter((c) => c.kind === 'Deployment')) {
      const rev = d.metadata.labels?.[LABEL_REVISION] ?? '';
      const replicas = (d.spec as { replicas: number }).replicas;
      const available = this.broken.has(rev) ? 0 : Math.max(replicas, this.lingering.get(rev) ?? 0);
      d.status = {
        observedGeneration: d.metadata.generation,
        replicas,
        updatedReplicas: replicas,
        readyReplicas: available,
        availableReplicas: available,
        ...(this.deadline.has(rev) ? { conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }] } : {}),
      };
    }
  }

  /** Reconciles until nothing changes (at most n times). */
  converge(now: Date, n = 8): Plan {
    let p = this.reconcile(now);
    for (let i = 1; i < n && (p.apply.length > 0 || p.delete.length > 0 || p.routes.length > 0 || p.statusChanged); i++) p = this.reconcile(now);
    return p;
  }

  replicas(revision: string | undefined): number | undefined {
    const d = this.children.find((c) => c.kind === 'Deployment' && c.metadata.labels?.[LABEL_REVISION] === revision);
    return d ? (d.spec as { replicas: number }).replicas : undefined;
  }
  selector(name = 'churn'): Record<string, string> | undefined {
    return (this.children.find((c) => c.kind === 'Service' && c.metadata.name === name)?.spec as { selector?: Record<string, string> } | undefined)?.selector;
  }
  routeWeights(): [string, number | undefined][] {
    const rules = (this.route?.spec as { rules: { backendRefs?: { name: string; weight?: number }[] }[] }).rules;
    return rules.flatMap((r) => (r.backendRefs ?? []).map((b) => [b.name, b.weight] as [string, number | undefined]));
  }
  condition(type: string) {
    return this.md.status?.conditions?.find((c) => c.type === type);
  }
  events(): string[] {
    return this.plans.flatMap((p) => p.events.map((e) => `${e.reason}: ${e.message}`));
  }

  /** The decisions announced (spec.notifications), as `kind/reason`. */
  notifications(): string[] {
    return this.plans.flatMap((p) => p.events.filter((e) => e.notify).map((e) => `${e.notify}/${e.reason}`));
  }
}

/** A world serving version 8, stable, then asked for version 9. */
function rolledTo9(rollout: Spec, routeObj?: KubeObject | null, extra: Spec = {}): { w: World; stable: string; canary: () => string } {
  const w = new World(baseSpec('8', rollout, extra), routeObj);
  w.converge(T0);
  const stable = w.md.status?.stable?.revision ?? '';
  assert.ok(stable);
  w.setSpec(baseSpec('9', rollout, extra));
  return { w, stable, canary: () => w.md.status?.canary?.revision ?? '' };
}

test('replica ratio: 10% → timed pause → 50% → pause until promoted → 100%, the Service selecting both revisions meanwhile', () => {
  const steps = [{ setWeight: 10 }, { pause: { duration: '1m' } }, { setWeight: 50 }, { pause: {} }, { setWeight: 100 }];
  const { w, stable, canary } = rolledTo9({ steps, scaleDownDelaySeconds: 30 });

  w.reconcile(at(1));
  assert.equal(w.md.status?.canary?.weight, 10);
  assert.equal(w.md.status?.canary?.step, 0);
  assert.equal(w.md.status?.phase, 'Progressing');
  assert.equal(w.replicas(canary()), 1, 'one canary pod beside 4 stable ones: the nearest to 10%');
  assert.equal(w.replicas(stable), 4);
  assert.deepEqual(w.selector(), { 'slipway.dev/model-deployment': 'churn' }, 'the Service selects both revisions');
  const paused = w.reconcile(at(2));
  assert.equal(w.md.status?.canary?.step, 1);
  assert.equal(w.md.status?.canary?.achievedWeight, 20, 'what 1 of 5 pods really gives, reported as such');
  assert.equal(w.md.status?.canary?.pauseUntil, '2026-11-26T10:01:02Z');
  assert.deepEqual(paused.requeue, { afterMs: 60_000, reason: 'PauseEnds' }, 'the pause ends by requeue');
  assert.equal(w.reconcile(at(30)).statusChanged, false, 'nothing moves during the pause');

  w.reconcile(at(62));
  assert.equal(w.md.status?.canary?.weight, 50);
  assert.equal(w.replicas(canary()), 4);
  w.reconcile(at(63));
  assert.equal(w.md.status?.canary?.step, 3);
  assert.equal(w.condition('Ready')?.reason, 'AwaitingPromotion');
  assert.match(w.condition('Ready')?.message ?? '', /step 4 of 5: paused at 50% until promoted/);
  assert.equal(w.converge(at(600)).statusChanged, false, 'an indefinite pause waits');
  assert.equal(w.md.status?.canary?.step, 3);

  w.request('promote', 'p-1');
  w.converge(at(601));
  assert.equal(w.md.status?.stable?.revision, canary() || w.md.status?.stable?.revision);
  assert.equal(w.md.status?.canary, undefined, 'promoted: no canary left');
  const promoted = w.md.status?.stable?.revision ?? '';
  assert.notEqual(promoted, stable);
  assert.deepEqual(w.selector(), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': promoted });
  assert.equal(w.replicas(promoted), 4);
  assert.equal(w.md.status?.lastRequest?.result, 'Accepted');
  assert.equal(w.md.status?.lastRequest?.by, 'alice');
  assert.equal(w.md.status?.phase, 'Healthy');
  // The old stable revision (scaled to 0 at 100% by replica ratio) drains, then goes.
  assert.deepEqual(w.md.status?.retiring?.map((r) => r.revision), [stable]);
  w.converge(at(640));
  assert.equal(w.replicas(stable), undefined);
  const reasons = w.events().map((e) => e.split(':')[0]);
  assert.deepEqual(reasons.filter((r) => r === 'RolloutStep').length, 5, 'an Event for every step');
  assert.ok(reasons.includes('RolloutStarted') && reasons.includes('Promote') && reasons.includes('Promoted'));
});

test('replica ratio: a step is carried only once the stable side is down to its part too (a replicas change in the same spec)', () => {
  const steps = [{ setWeight: 25 }, { pause: {} }, { setWeight: 100 }];
  const { w, stable } = rolledTo9({ steps });
  w.setSpec(baseSpec('9', { steps }, { replicas: 3 })); // 4 → 3 in the same change
  w.lingering.set(stable, 4); // the fourth stable pod is still going
  for (let s = 1; s <= 5; s++) w.reconcile(at(s));
  assert.equal(w.replicas(stable), 3);
  assert.equal(w.md.status?.canary?.step, 0, 'not carried: 1 of 5 pods is 20%, not 25%');
  assert.equal(w.md.status?.canary?.achievedWeight, 20);
  w.lingering.delete(stable);
  w.reconcile(at(6));
  w.reconcile(at(7));
  assert.equal(w.md.status?.canary?.step, 1);
  assert.equal(w.md.status?.canary?.achievedWeight, 25, 'one pod in four');
});

test('Gateway API: the route gets the weight only once the canary can carry it, and goes back to stable at promotion', () => {
  const steps = [{ setWeight: 10 }, { setWeight: 50 }, { pause: { duration: '10s' } }];
  const other = { matches: [{ path: { type: 'PathPrefix', value: '/admin' } }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x', value: 'y' }] } }], backendRefs: [{ name: 'churn', port: 80 }] };
  const { w, stable, canary } = rolledTo9({ steps, trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } }, route([splitRule(), other]));
  assert.deepEqual(w.selector('churn-canary'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': stable }, 'without a canary the canary Service selects stable');

  w.broken.add(''); // placeholder: the canary's revision is known after the first reconcile
  const first = w.reconcile(at(1));
  w.broken.add(canary());
  w.settle();
  assert.equal(first.routes.length, 0, 'no weight before the canary has pods');
  assert.equal(w.replicas(canary()), 1);
  assert.deepEqual(w.selector(), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': stable }, 'the stable Service still selects stable');
  assert.deepEqual(w.selector('churn-canary'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': canary() });
  w.reconcile(at(2));
  assert.deepEqual(w.routeWeights(), [['churn', 100], ['churn-canary', 0], ['churn', undefined]], 'a canary that is not ready gets no traffic');
  assert.equal(w.condition('Ready')?.reason, 'CanaryNotReady');

  w.broken.delete(canary());
  w.settle();
  const written = w.reconcile(at(3));
  assert.deepEqual(w.routeWeights(), [['churn', 90], ['churn-canary', 10], ['churn', undefined]]);
  assert.deepEqual(written.requeue, { afterMs: 200, reason: 'RouteUpdated' }, 'a route is not watched: the write is followed by a look');
  const rules = (w.route?.spec as { rules: unknown[] }).rules;
  assert.deepEqual(rules[1], other, 'other rules, filters and backends are left as they are');
  w.reconcile(at(4));
  w.reconcile(at(5));
  assert.deepEqual(w.routeWeights().slice(0, 2), [['churn', 50], ['churn-canary', 50]]);
  assert.equal(w.replicas(canary()), 2, 'canary replicas follow the weight');
  assert.equal(w.replicas(stable), 4);
  assert.equal(w.md.status?.canary?.achievedWeight, 50);

  const rev9 = canary();
  w.converge(at(20));
  assert.equal(w.md.status?.canary?.pauseUntil, '2026-11-26T10:00:30Z', 'the pause counts from when 50% was carried');
  w.converge(at(31));
  assert.equal(w.md.status?.stable?.revision, rev9);
  assert.deepEqual(w.routeWeights().slice(0, 2), [['churn', 100], ['churn-canary', 0]]);
  assert.deepEqual(w.selector(), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': rev9 });
  assert.deepEqual(w.selector('churn-canary'), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': rev9 });
  const promotion = w.plans.find((p) => p.events.some((e) => e.reason === 'Promoted'));
  assert.equal(promotion?.routesFirst, false, 'the Services switch before the route sends everything to stable');
  assert.ok(w.replicas(stable) !== undefined, 'the old revision drains');
});

test('scaleDownStable: the stable side gives up what the canary takes', () => {
  const { w, stable, canary } = rolledTo9({ steps: [{ setWeight: 25 }, { pause: {} }], scaleDownStable: true, trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } }, route([splitRule()]));
  w.converge(at(1));
  assert.equal(w.replicas(canary()), 1);
  assert.equal(w.replicas(stable), 3);
});

test('abort: all traffic back on stable at once, the canary removed, and re-applying the manifest changes nothing', () => {
  const { w, stable, canary } = rolledTo9({ steps: [{ setWeight: 30 }, { pause: {} }], trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } }, route([splitRule()]));
  w.converge(at(1));
  const rev9 = canary();
  assert.deepEqual(w.routeWeights(), [['churn', 70], ['churn-canary', 30]]);
  w.request('abort', 'a-1', 'bob');
  const p = w.reconcile(at(10));
  assert.equal(p.routesFirst, true, 'traffic leaves the canary before its pods go');
  assert.deepEqual(w.routeWeights(), [['churn', 100], ['churn-canary', 0]]);
  assert.equal(w.replicas(rev9), undefined, 'the canary is gone');
  assert.equal(w.md.status?.phase, 'Degraded');
  assert.equal(w.condition('Stalled')?.reason, 'Aborted');
  assert.match(w.condition('Stalled')?.message ?? '', /aborted by bob.*kubectl slipway retry/);
  assert.equal(w.md.status?.aborted?.revision, rev9);
  assert.ok(w.events().some((e) => e.startsWith('RolloutAborted')));
  // GitOps re-applies the same manifest: the same request id, the same spec. Nothing moves.
  for (const s of [20, 60, 600]) assert.equal(w.converge(at(s)).statusChanged, false);
  assert.equal(w.replicas(rev9), undefined);
  assert.deepEqual(w.routeWeights(), [['churn', 100], ['churn-canary', 0]]);
  // Retry starts it again from the first step.
  w.request('retry', 'r-1', 'bob');
  w.converge(at(700));
  assert.equal(w.md.status?.aborted, undefined);
  assert.equal(w.md.status?.canary?.revision, rev9);
  assert.equal(w.md.status?.canary?.step, 1);
  assert.deepEqual(w.routeWeights(), [['churn', 70], ['churn-canary', 30]]);
  assert.equal(w.md.status?.stable?.revision, stable);
});

test('a canary that is not available by its progress deadline is aborted with a reason a person understands', () => {
  const { w, stable, canary } = rolledTo9({ steps: [{ setWeight: 50 }, { pause: {} }] });
  w.reconcile(at(1));
  const rev9 = canary();
  w.broken.add(rev9);
  w.deadline.add(rev9);
  w.settle();
  w.converge(at(700));
  assert.equal(w.md.status?.aborted?.reason, 'ProgressDeadlineExceeded');
  assert.equal(w.condition('Stalled')?.reason, 'ProgressDeadlineExceeded');
  assert.match(w.condition('Stalled')?.message ?? '', /was not available within spec.progressDeadlineSeconds \(600 s\).*Stable revision .* serves all traffic/);
  assert.equal(w.replicas(rev9), undefined);
  assert.deepEqual(w.selector(), { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': stable });
});

test('a crash at any point of a walk (children written, status not) resumes at the same step; the route never gets ahead of the canary', () => {
  const steps = [{ setWeight: 20 }, { pause: { duration: '30s' } }, { setWeight: 60 }, { pause: {} }];
  const rollout = { steps, trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } };
  const walk = (crashAt: number | undefined): { trail: string[]; w: World } => {
    const { w } = rolledTo9(rollout, route([splitRule()]));
    const trail: string[] = [];
    for (let s = 1; s <= 40; s++) {
      if (s === crashAt) {
        // The controller dies between its writes to children and routes and its status write.
        const saved = w.md;
        w.reconcile(at(s));
        w.md = saved;
      } else w.reconcile(at(s));
      const c = w.md.status?.canary;
      if (c) trail.push(`${c.step}/${c.weight}`);
      // Never more traffic to the canary than its available pods were sized for.
      const weight = w.routeWeights()[1]?.[1] ?? 0;
      const dep = w.children.find((d) => d.kind === 'Deployment' && d.metadata.labels?.[LABEL_REVISION] === c?.revision);
      if (weight > 0) assert.ok(((dep?.status as { availableReplicas?: number } | undefined)?.availableReplicas ?? 0) >= Math.ceil((4 * weight) / 100), `at ${s}s: ${weight}% on a canary without the pods for it`);
    }
    return { trail: [...new Set(trail)], w };
  };
  const clean = walk(undefined);
  assert.deepEqual(clean.trail, ['0/20', '1/20', '2/60', '3/60']);
  for (let crash = 1; crash <= 35; crash++) {
    const { trail, w } = walk(crash);
    assert.deepEqual(trail, clean.trail, `crash at ${crash}s: the same steps in the same order`);
    assert.equal(w.md.status?.canary?.step, 3);
    assert.deepEqual(w.routeWeights(), [['churn', 40], ['churn-canary', 60]]);
  }
});

test('an out-of-order observation (a Deployment status older than its spec) does not advance a step', () => {
  const { w } = rolledTo9({ steps: [{ setWeight: 20 }, { setWeight: 60 }, { pause: {} }] });
  w.reconcile(at(1));
  w.reconcile(at(2));
  assert.equal(w.md.status?.canary?.step, 1);
  assert.equal(w.md.status?.canary?.weight, 60);
  const canaryDep = w.children.find((c) => c.kind === 'Deployment' && c.metadata.labels?.[LABEL_REVISION] === w.md.status?.canary?.revision) as KubeObject;
  canaryDep.status = { ...(canaryDep.status as object), observedGeneration: (canaryDep.metadata.generation ?? 1) - 1 };
  const stale = plan(w.observed(), at(4));
  assert.equal(stale.status.canary?.step, 1, 'not trusted: the Deployment controller has not seen the scale-up yet');
  assert.equal(stale.status.conditions?.find((c) => c.type === 'Ready')?.reason, 'CanaryNotReady');
});

test('a spec change mid-rollout starts over from the new revision; a change of the steps only does not', () => {
  const steps = [{ setWeight: 20 }, { pause: {} }];
  const { w, stable, canary } = rolledTo9({ steps });
  w.converge(at(1));
  const rev9 = canary();
  assert.equal(w.md.status?.canary?.step, 1);
  // Steps change, pods do not: the rollout goes on where it is.
  w.setSpec(baseSpec('9', { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 80 }] }));
  w.converge(at(2));
  assert.equal(w.md.status?.canary?.revision, rev9);
  assert.equal(w.md.status?.canary?.step, 1);
  assert.equal(w.md.status?.canary?.steps, 3);
  // A new model version: version 9's canary is removed, version 10 starts at step 1.
  w.setSpec(baseSpec('10', { steps }));
  w.converge(at(3));
  assert.notEqual(canary(), rev9);
  assert.equal(w.md.status?.canary?.modelVersion, '10');
  assert.equal(w.md.status?.canary?.step, 1);
  assert.equal(w.replicas(rev9), undefined, 'the half-done canary is gone');
  assert.equal(w.replicas(stable), 4);
});

test('undo goes back to a revision of the history at once (no steps: it served before); the next spec change decides again', () => {
  const steps = [{ setWeight: 50 }, { pause: { duration: '10s' } }];
  const { w, stable } = rolledTo9({ steps, scaleDownDelaySeconds: 0 });
  w.converge(at(100));
  w.converge(at(111));
  const rev9 = w.md.status?.stable?.revision ?? '';
  assert.notEqual(rev9, stable);
  assert.deepEqual(w.md.status?.history?.map((h) => h.modelVersion), ['9', '8']);
  w.request('undo', 'u-1', 'carol', stable);
  w.reconcile(at(200));
  assert.equal(w.md.status?.override?.revision, stable);
  assert.equal(w.md.status?.canary?.revision, stable, 'the old revision comes back beside the current one');
  assert.equal(w.md.status?.canary?.weight, 100, 'at full size, without walking the steps');
  assert.equal(w.replicas(stable), 4);
  w.converge(at(201));
  assert.equal(w.md.status?.stable?.revision, stable);
  assert.equal(w.md.status?.stable?.modelVersion, '8');
  assert.equal(w.converge(at(400)).statusChanged, false, 'the undo holds while the spec is the same');
  // An unknown revision is refused with the ones that exist.
  w.request('undo', 'u-2', 'carol', 'ffffffffff');
  w.converge(at(401));
  assert.equal(w.md.status?.lastRequest?.result, 'Refused');
  assert.match(w.md.status?.lastRequest?.message ?? '', /not in the history/);
  w.setSpec(baseSpec('10', { steps, scaleDownDelaySeconds: 0 }));
  w.converge(at(500));
  assert.equal(w.md.status?.override, undefined);
  assert.equal(w.md.status?.canary?.modelVersion, '10');
});

test('a routing object that is missing, misconfigured or someone else\'s stalls the rollout with what to do; stable keeps serving', () => {
  const rollout = { steps: [{ setWeight: 20 }], trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } };
  const { w, stable } = rolledTo9(rollout, null);
  const p = w.converge(at(1));
  assert.equal(w.condition('Stalled')?.reason, 'RouteNotFound');
  assert.match(w.condition('Stalled')?.message ?? '', /HTTPRoute churn does not exist in namespace ml: create it with a rule whose backendRefs are the Services churn and churn-canary/);
  assert.deepEqual(p.requeue, { afterMs: ROUTE_RETRY_MS, reason: 'RouteNotFound' });
  assert.equal(w.md.status?.phase, 'Degraded');
  assert.equal(w.children.filter((c) => c.kind === 'Deployment').length, 1, 'no canary is started');
  assert.equal(w.replicas(stable), 4);

  w.route = route([{ backendRefs: [{ name: 'churn', port: 80 }] }]);
  w.converge(at(40));
  assert.equal(w.condition('Stalled')?.reason, 'RouteMisconfigured');
  assert.match(w.condition('Stalled')?.message ?? '', /add \{name: churn-canary, port: 80, weight: 0\}/);

  w.routeClaimedBy = 'fraud';
  w.converge(at(80));
  assert.equal(w.condition('Stalled')?.reason, 'RouteInUse');
  assert.match(w.condition('Stalled')?.message ?? '', /already used by ModelDeployment fraud/);

  w.routeClaimedBy = undefined;
  w.route = route([splitRule()]);
  w.converge(at(120));
  assert.equal(w.condition('Stalled')?.status, 'False');
  assert.equal(w.md.status?.stable?.modelVersion, '9', 'fixed: the rollout goes on');
});

test('requests: acted on once per id; refused with a reason when they make no sense; pause and resume', () => {
  const { w } = rolledTo9({ steps: [{ setWeight: 20 }, { pause: { duration: '1m' } }] });
  w.md.metadata.annotations = { [ANNOTATION_REQUEST]: 'promote please' };
  w.converge(at(1));
  assert.equal(w.md.status?.lastRequest?.result, 'Refused');
  assert.match(w.md.status?.lastRequest?.message ?? '', /must be JSON/);
  assert.match(w.md.status?.lastRequest?.by ?? '', /no slipway.dev\/requested-by stamp/);

  w.request('pause', 'x-1', 'dave');
  w.converge(at(2));
  assert.equal(w.md.status?.pause?.by, 'dave');
  assert.equal(w.md.status?.phase, 'Paused');
  w.converge(at(200));
  assert.equal(w.md.status?.canary?.step, 1, 'a paused rollout does not move, even past its timed pause');
  // The same request seen again (a re-apply, a resync): no second pause refused, nothing at all.
  const again = w.converge(at(201));
  assert.equal(again.events.length, 0);
  w.request('resume', 'x-2', 'dave');
  w.converge(at(202));
  assert.equal(w.md.status?.pause, undefined);
  assert.equal(w.md.status?.canary, undefined, 'resumed past the pause that ended meanwhile: promoted');
  w.request('promote', 'x-3', 'dave');
  w.converge(at(203));
  assert.equal(w.md.status?.lastRequest?.result, 'Refused');
  assert.equal(w.md.status?.lastRequest?.message, 'nothing to promote: no rollout is in progress');
  assert.ok(w.events().some((e) => e.startsWith('RequestRefused: promote requested by dave was refused')));
});

test('no steps: today\'s behaviour, the new revision takes all traffic once available, the route keeps stable at 100%', () => {
  const { w, stable } = rolledTo9({ trafficRouting: { gatewayAPI: { httpRoute: 'churn' } } }, route([splitRule()]));
  w.converge(at(1));
  assert.notEqual(w.md.status?.stable?.revision, stable);
  assert.deepEqual(w.routeWeights(), [['churn', 100], ['churn-canary', 0]]);
  assert.equal(w.md.status?.phase, 'Healthy');
});

test('Istio with DestinationRule subsets: each subset points at its revision before any weight moves', () => {
  const vs: KubeObject = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'churn', namespace: 'ml', resourceVersion: '1' }, spec: { http: [{ route: [{ destination: { host: 'churn', subset: 'stable' }, weight: 100 }, { destination: { host: 'churn', subset: 'canary' }, weight: 0 }] }] } };
  const dr: KubeObject = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'churn', namespace: 'ml', resourceVersion: '1' }, spec: { host: 'churn', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } }, subsets: [{ name: 'stable', labels: { app: 'churn' } }, { name: 'canary' }, { name: 'mirror', labels: { v: 'x' } }] } };
  const rollout = { steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }], trafficRouting: { istio: { virtualService: 'churn', destinationRule: { name: 'churn', stableSubsetName: 'stable', canarySubsetName: 'canary' } } } };
  const w = new World(baseSpec('8', rollout), vs);
  w.destinationRule = dr;
  w.converge(T0);
  const stable = w.md.status?.stable?.revision ?? '';
  const subsets = () => (w.destinationRule?.spec as { subsets: { name: string; labels?: Record<string, string> }[] }).subsets;
  const weights = () => (w.route?.spec as { http: { route: { weight: number }[] }[] }).http[0]?.route.map((d) => d.weight);
  assert.deepEqual(subsets().map((x) => x.labels), [{ app: 'churn', 'slipway.dev/revision': stable }, { 'slipway.dev/revision': stable }, { v: 'x' }], 'other labels and subsets are left alone');
  w.setSpec(baseSpec('9', rollout));
  for (let s = 1; s < 10; s++) {
    w.reconcile(at(s));
    // Whenever the canary has weight, the canary subset selects the canary's revision.
    if ((weights()?.[1] ?? 0) > 0) assert.equal(subsets()[1]?.labels?.['slipway.dev/revision'], w.md.status?.canary?.revision, `at ${s}s`);
  }
  assert.deepEqual(weights(), [70, 30]);
  const rev9 = w.md.status?.canary?.revision ?? '';
  assert.equal(subsets()[0]?.labels?.['slipway.dev/revision'], stable);
  assert.deepEqual((w.destinationRule?.spec as { trafficPolicy: unknown }).trafficPolicy, { tls: { mode: 'ISTIO_MUTUAL' } });
  w.request('promote', 'p');
  w.converge(at(20));
  assert.equal(w.md.status?.stable?.revision, rev9);
  assert.deepEqual(subsets().slice(0, 2).map((x) => x.labels?.['slipway.dev/revision']), [rev9, rev9]);
  assert.deepEqual(weights(), [100, 0]);
  // A DestinationRule without the subsets: stalled with what to add.
  const { w: w2 } = rolledTo9(rollout, vs);
  w2.destinationRule = { ...dr, spec: { host: 'churn', subsets: [{ name: 'stable' }] } };
  w2.converge(at(1));
  assert.equal(w2.condition('Stalled')?.reason, 'RouteMisconfigured');
  assert.match(w2.condition('Stalled')?.message ?? '', /DestinationRule churn has no subset named canary: add \{name: canary\}/);
});

/** Counts over a window: `rate` requests a second at the given error rate (exact expectation, no noise). */
const counts = (window: number, rate: number, errorRate: number) => ({ kind: 'counts' as const, events: Math.round(window * rate * errorRate), trials: Math.round(window * rate) });
const analysisRollout = (extra: Record<string, unknown> = {}) => ({
  steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }],
  trafficRouting: { gatewayAPI: { httpRoute: 'churn' } },
  analysis: { interval: '10s', count: 10, metrics: [{ name: 'errors', preset: 'mlserver-error-rate', compare: { maxIncrease: '0%' } }], ...extra },
});

test('analysis: a healthy canary passes its analysis step after `count` measurements and is promoted', () => {
  const { w } = rolledTo9(analysisRollout(), route([splitRule()]));
  w.provider = (win) => [{ name: 'errors', canary: counts(win, 10, 0.01), stable: counts(win, 40, 0.01) }];
  for (let s = 0; s <= 130; s += 1) w.reconcile(at(s));
  assert.equal(w.md.status?.stable?.modelVersion, '9');
  assert.equal(w.md.status?.canary, undefined);
  assert.ok(w.events().some((e) => e.startsWith('AnalysisPassed: analysis at step 2 of 3 passed')), w.events().join('\n'));
  assert.deepEqual(w.notifications(), ['Promoted/Promoted']);
  // Measurements are taken by requeue: the reconcile that enters the analysis step already asks for the first.
  const entered = w.plans.find((p) => p.events.some((e) => e.message.startsWith('step 2 of 3: analysis')));
  assert.deepEqual(entered?.requeue, { afterMs: 10_000, reason: 'AnalysisInterval' });
});

test('analysis: a 1% → 5% error regression is rolled back: traffic back on stable, the failing metric with both values in status, RolledBack', () => {
  const { w, stable } = rolledTo9(analysisRollout(), route([splitRule()]));
  w.provider = (win) => [{ name: 'errors', canary: counts(win, 10, 0.05), stable: counts(win, 40, 0.01) }];
  let rolledBackAt = -1;
  for (let s = 0; s <= 120 && rolledBackAt < 0; s += 1) {
    w.reconcile(at(s));
    if (w.md.status?.phase === 'RolledBack') rolledBackAt = s;
  }
  assert.ok(rolledBackAt > 0 && rolledBackAt <= 70, `rolled back at ${rolledBackAt} s`);
  assert.equal(w.md.status?.aborted?.reason, 'RolledBack');
  assert.equal(w.md.status?.stable?.revision, stable);
  assert.deepEqual(w.routeWeights(), [['churn', 100], ['churn-canary', 0]]);
  assert.equal(w.condition('Stalled')?.reason, 'RolledBack');
  const a = w.md.status?.analysis;
  assert.equal(a?.verdict, 'Failed');
  const last = a?.measurements.at(-1)?.metrics[0];
  assert.equal(last?.verdict, 'Fail');
  assert.match(last?.canary ?? '', /^5\.00% \(\d+\/\d+\)$/);
  assert.match(last?.stable ?? '', /^1\.00% /);
  assert.match(w.md.status?.aborted?.message ?? '', /analysis at step 2 of 3 failed: errors: the canary's rate .* is above stable's .* by at least .* at 99% confidence/);
  assert.equal(w.events().filter((e) => e.startsWith('RolledBack:')).length, 1, `one RolledBack Event: ${w.events().join(' | ')}`);
  assert.deepEqual(w.notifications(), ['RolledBack/RolledBack'], 'one decision announced');
  // Not retried until the spec changes or someone retries it.
  const after = w.converge(at(500));
  assert.equal(after.statusChanged, false);
  assert.equal(w.md.status?.canary, undefined);
});

test('analysis: unknown is not success: provider errors pause the rollout for a person and never promote; a resume starts the analysis again', () => {
  const { w } = rolledTo9(analysisRollout({ consecutiveErrorLimit: 2 }), route([splitRule()]));
  w.provider = () => [{ name: 'errors', error: 'Prometheus at http://127.0.0.1:9 cannot be reached: ECONNREFUSED' }];
  for (let s = 0; s <= 200; s += 1) w.reconcile(at(s));
  assert.equal(w.md.status?.stable?.modelVersion, '8', 'never promoted');
  assert.equal(w.md.status?.phase, 'Paused');
  assert.match(w.md.status?.pause?.by ?? '', /analysis \(analysis at step 2 of 3 inconclusive: 3 measurements in a row could not be taken: errors: Prometheus .* ECONNREFUSED/);
  assert.ok(w.events().some((e) => e.startsWith('AnalysisInconclusive:')));
  assert.deepEqual(w.notifications(), ['Paused/AnalysisInconclusive']);
  // Prometheus is back; a person resumes: the analysis starts again and passes.
  w.provider = (win) => [{ name: 'errors', canary: counts(win, 10, 0.01), stable: counts(win, 40, 0.01) }];
  w.request('resume', 'r-1');
  for (let s = 201; s <= 350; s += 1) w.reconcile(at(s));
  assert.equal(w.md.status?.stable?.modelVersion, '9');
});

test('analysis: too few samples is inconclusive, never a pass; onFailure pause holds for a person; notify goes on', () => {
  const few = rolledTo9(analysisRollout({ inconclusiveLimit: 1 }), route([splitRule()])).w;
  few.provider = () => [{ name: 'errors', canary: { kind: 'counts', events: 0, trials: 20 }, stable: { kind: 'counts', events: 0, trials: 80 } }];
  for (let s = 0; s <= 100; s += 1) few.reconcile(at(s));
  assert.equal(few.md.status?.stable?.modelVersion, '8');
  assert.match(few.md.status?.analysis?.message ?? '', /too few samples: canary 20, stable 80 of the 100 needed/);

  const paused = rolledTo9(analysisRollout({ onFailure: 'pause' }), route([splitRule()])).w;
  paused.provider = (win) => [{ name: 'errors', canary: counts(win, 10, 0.08), stable: counts(win, 40, 0.01) }];
  for (let s = 0; s <= 100; s += 1) paused.reconcile(at(s));
  assert.equal(paused.md.status?.phase, 'Paused');
  assert.equal(paused.md.status?.aborted, undefined);
  assert.equal(paused.md.status?.canary?.weight, 20, 'the canary keeps its traffic while a person looks');
  assert.deepEqual(paused.notifications(), ['Paused/AnalysisFailed']);

  const notify = rolledTo9(analysisRollout({ onFailure: 'notify' }), route([splitRule()])).w;
  notify.provider = (win) => [{ name: 'errors', canary: counts(win, 10, 0.08), stable: counts(win, 40, 0.01) }];
  for (let s = 0; s <= 150; s += 1) notify.reconcile(at(s));
  assert.equal(notify.md.status?.stable?.modelVersion, '9', 'dry run: recorded, and the rollout went on');
  assert.ok(notify.events().some((e) => e.startsWith('AnalysisFailed: analysis at step 2 of 3 failed (onFailure: notify')));
  assert.deepEqual(notify.notifications(), ['Failed/AnalysisFailed', 'Promoted/Promoted'], 'the dry run announces the failure, then the promotion');
});

test('analysis: a Job metric holds the measurements while its Job runs (nothing counted, one status write, a look every 5 s); its failure rolls back with the Job\'s reason', () => {
  const { w } = rolledTo9(analysisRollout({ metrics: [{ name: 'backtest', job: { spec: { template: { spec: { containers: [{ name: 'b', image: 'backtest:1' }] } } } } }] }), route([splitRule()]));
  let running = true;
  w.provider = () => running
    ? [{ name: 'backtest', pending: 'Job churn-analysis-x is running' }]
    : [{ name: 'backtest', canary: { kind: 'job', job: 'churn-analysis-x', succeeded: false, detail: 'Job churn-analysis-x failed: BackoffLimitExceeded: Job has reached the specified backoff limit (kubectl logs job/churn-analysis-x)' } }];
  let s = 0;
  while (!/measurements wait for it/.test(w.md.status?.analysis?.message ?? '') && s < 120) w.reconcile(at(++s));
  assert.match(w.md.status?.analysis?.message ?? '', /^backtest: Job churn-analysis-x is running; measurements wait for it$/);
  assert.equal(w.md.status?.analysis?.taken, 0, 'a running Job is not a measurement');
  // While the Job runs: each look writes nothing, and the next one is 5 s away, with its reason.
  for (let i = 1; i <= 4; i++) {
    const p = w.reconcile(at(s + 5 * i));
    assert.equal(p.statusChanged, false, 'no status write while the Job runs');
    assert.deepEqual(p.requeue, { afterMs: 5000, reason: 'AnalysisJobRunning' });
  }
  running = false;
  w.reconcile(at(s + 25));
  assert.equal(w.md.status?.phase, 'RolledBack');
  assert.match(w.md.status?.aborted?.message ?? '', /backtest: Job churn-analysis-x failed: BackoffLimitExceeded/);
});
