// The ModelDeployment planner: from what is observed (the resource, its children, its environment) and the
// time, the children that must be applied or deleted, the status to write, and the Events to emit. Pure: no
// I/O, no clock, so every decision here is a table-driven unit test.
//
// Invariants:
// - The Service selects exactly one revision: the stable one, which status.stable names and which exists.
// - A new revision runs beside the stable one until it is available; only then does it become stable (the
//   Service switches, the batch job and HPA follow, older revisions are deleted). A revision that never
//   becomes available never receives traffic.
// - Without a resolvable image nothing new is created and nothing that serves is removed.
// - What serves always has the scale in force: the stable revision's Deployment is rendered again from its
//   ControllerRevision (what its pods run) during a rollout, a pause or a blocked spec.
// - A revision traffic has left drains for spec.rollout.scaleDownDelaySeconds before it is deleted; the instant
//   it started draining is kept in status.retiring, so a restart neither deletes it early nor keeps it forever.
import type { Condition } from '../../api/common.ts';
import type { ModelDeployment, ModelDeploymentStatus, RevisionRef } from '../../api/modeldeployment.ts';
import type { KubeObject } from '../../kube/resources.ts';
import type { Deployment } from '../../kube/workloads.ts';
import { isSubset, jsonEqual } from '../compare.ts';
import { findCondition, mergeConditions, type ConditionInput } from '../conditions.ts';
import {
  deploymentOf,
  desiredControllerRevision,
  desiredCronJob,
  podTemplate,
  desiredHpa,
  desiredReplicas,
  desiredService,
  LABEL_REVISION,
  podSelector,
  revisionOf,
  revisionTemplate,
  type KeptRevision,
  type RevisionTemplate,
} from './children.ts';
import { revisionProblem, type PodSummary } from './pods.ts';

export type EnvironmentObservation =
  | { found: false }
  | { found: true; image: string | undefined; phase: string | undefined; message: string | undefined };

export interface Observed {
  md: ModelDeployment;
  /** Children the ModelDeployment controls (owner reference with its uid). */
  deployments: Deployment[];
  services: KubeObject[];
  cronJobs: KubeObject[];
  hpas: KubeObject[];
  /** One ControllerRevision per revision kept (what its pods run). */
  revisions: KubeObject[];
  /**
   * Any object of a child kind by name in the ModelDeployment's namespace, Slipway's or not (from the caches):
   * who holds a name Slipway is about to create.
   */
  occupant?: (kind: ChildKind, name: string) => KubeObject | undefined;
  /** What the pods of a revision report (ready, or why not). */
  pods?: (revision: string) => PodSummary[];
  /** The controller's settings that shape what pods run. */
  config?: { storageInitializerImage?: string | undefined };
  /** Present when spec.environmentRef is set. */
  environment?: EnvironmentObservation;
}

export type ChildKind = 'Deployment' | 'Service' | 'CronJob' | 'HorizontalPodAutoscaler' | 'ControllerRevision';

export interface ChildRef {
  kind: ChildKind;
  name: string;
  uid: string;
}

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface Plan {
  /** Configurations to server-side apply: only those the live objects do not already match. */
  apply: KubeObject[];
  /** Those of `apply` that no child of this ModelDeployment has the name of yet: they are created (see occupant). */
  create: KubeObject[];
  delete: ChildRef[];
  /** The complete status; `statusChanged` says whether it differs from the one stored. */
  status: ModelDeploymentStatus;
  statusChanged: boolean;
  events: PlannedEvent[];
  requeue?: { afterMs: number; reason: string };
}

interface Blocker {
  reason: string;
  message: string;
  stalled: boolean;
}

const ENV_RETRY_MS = 5 * 60_000;
/** How often a ModelDeployment blocked by someone else's object looks again. */
export const NOT_OWNED_RETRY_MS = 60_000;
/** How long a replaced revision drains when spec.rollout does not say (Argo Rollouts' default too). */
export const DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30;

function resolveImage(o: Observed): { image: string } | { blocker: Blocker } {
  const spec = o.md.spec;
  if (spec.image) return { image: spec.image };
  const ref = spec.environmentRef?.name ?? '';
  const env = o.environment;
  if (!env || !env.found) {
    return {
      blocker: {
        reason: 'EnvironmentNotFound',
        message: `ProjectEnvironment "${ref}" does not exist in namespace ${o.md.metadata.namespace ?? 'default'}: create it, or fix spec.environmentRef`,
        stalled: true,
      },
    };
  }
  if (env.phase === 'Failed') {
    return { blocker: { reason: 'EnvironmentFailed', message: `ProjectEnvironment "${ref}" failed: ${env.message ?? 'see its status'}`, stalled: true } };
  }
  if (!env.image) {
    return { blocker: { reason: 'EnvironmentNotReady', message: `waiting for ProjectEnvironment "${ref}" to resolve its image`, stalled: false } };
  }
  return { image: env.image };
}

function isAvailable(d: Deployment | undefined, wanted: number): boolean {
  if (!d) return false;
  const s = d.status ?? {};
  if ((s.observedGeneration ?? 0) < (d.metadata.generation ?? 1)) return false;
  if (wanted === 0) return (s.replicas ?? 0) === 0;
  return (s.availableReplicas ?? 0) >= wanted && (s.updatedReplicas ?? 0) >= wanted;
}

/** `: pod …: why` when a pod of the revision reports what is wrong with it; empty otherwise. */
function podProblemOf(o: Observed, revision: string): string {
  const problem = o.pods ? revisionProblem(o.pods(revision)) : undefined;
  return problem ? `: ${problem}` : '';
}

function withPodProblem(b: Blocker | undefined, o: Observed, revision: string): Blocker | undefined {
  return b && { ...b, message: `${b.message}${podProblemOf(o, revision)}` };
}

/** What the Deployment controller says is wrong with a revision, if anything. */
function deploymentTrouble(d: Deployment | undefined): Blocker | undefined {
  if (!d) return undefined;
  const failure = d.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (failure) {
    return { reason: 'ReplicaFailure', message: `Deployment ${d.metadata.name} cannot create pods: ${failure.message ?? failure.reason ?? 'unknown'}`, stalled: true };
  }
  const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
    return {
      reason: 'ProgressDeadlineExceeded',
      message: `Deployment ${d.metadata.name} made no progress within spec.progressDeadlineSeconds: ${progressing.message ?? ''}`.trim(),
      stalled: true,
    };
  }
  return undefined;
}

function ref(t: RevisionTemplate, revision: string): RevisionRef {
  return { revision, modelVersion: t.model.version, image: t.image };
}

function childRef(kind: ChildKind, o: KubeObject): ChildRef {
  return { kind, name: o.metadata.name, uid: o.metadata.uid ?? '' };
}

export function plan(o: Observed, now: Date): Plan {
  const md = o.md;
  const previous = md.status ?? {};
  if (md.metadata.deletionTimestamp) {
    return { apply: [], create: [], delete: [], status: previous, statusChanged: false, events: [] };
  }
  const byRevision = new Map(o.deployments.map((d) => [d.metadata.labels?.[LABEL_REVISION] ?? '', d]));
  const stableRef = previous.stable && byRevision.has(previous.stable.revision) ? previous.stable : undefined;
  const wanted = desiredReplicas(md);
  const resolved = resolveImage(o);

  const desired: KubeObject[] = [];
  const deletes: ChildRef[] = [];
  const events: PlannedEvent[] = [];
  let servingRef: RevisionRef | undefined = stableRef;
  let canaryRef: RevisionRef | undefined;
  let blocker: Blocker | undefined;
  let progressing: { reason: string; message: string } | undefined;
  let paused = false;

  const kept = new Map(o.revisions.map((cr) => [cr.metadata.labels?.[LABEL_REVISION] ?? '', cr as KubeObject & { data?: KeptRevision; revision?: number }]));
  /** The stable revision's Deployment as its ControllerRevision keeps it, at today's scale. */
  const stableDeployment = (): void => {
    const data = stableRef ? kept.get(stableRef.revision)?.data : undefined;
    if (stableRef && data?.podTemplate) desired.push(deploymentOf(md, stableRef.revision, 'stable', data.podTemplate, data.modelVersion));
  };
  /** The ControllerRevision of the revision about to run, if it has none yet. */
  const keep = (t: RevisionTemplate, revision: string, rendered: Record<string, unknown>): void => {
    if (kept.has(revision)) return;
    const number = Math.max(0, ...[...kept.values()].map((cr) => cr.revision ?? 0)) + 1;
    desired.push(desiredControllerRevision(md, t, revision, number, rendered));
  };

  // Drain: revisions traffic has left keep running until their delay has passed.
  const drainMs = (md.spec.rollout?.scaleDownDelaySeconds ?? DEFAULT_SCALE_DOWN_DELAY_SECONDS) * 1000;
  const retiring = new Map((previous.retiring ?? []).filter((r) => byRevision.has(r.revision)).map((r) => [r.revision, r.since]));
  let drainRequeueMs: number | undefined;
  /** Retires a Deployment that served: deleted once its drain is over, kept (and remembered) until then. */
  const retire = (d: Deployment): void => {
    const r = d.metadata.labels?.[LABEL_REVISION] ?? '';
    const since = retiring.get(r) ?? now.toISOString();
    const left = Date.parse(since) + drainMs - now.getTime();
    if (left <= 0) {
      retiring.delete(r);
      deletes.push(childRef('Deployment', d));
    } else {
      retiring.set(r, since);
      drainRequeueMs = Math.min(drainRequeueMs ?? left, left);
    }
  };

  /**
   * Every Deployment but those of `keep` goes: one that served (`served`, or already draining) drains first, one
   * that never served is deleted at once.
   */
  const retireAllBut = (keep: string[], served: string | undefined): void => {
    for (const d of o.deployments) {
      const r = d.metadata.labels?.[LABEL_REVISION] ?? '';
      if (keep.includes(r)) continue;
      if (r === served || retiring.has(r)) retire(d);
      else deletes.push(childRef('Deployment', d));
    }
  };

  if ('blocker' in resolved) {
    blocker = resolved.blocker;
    // Keep serving what serves, at the scale in force; there is nothing new to create.
    if (stableRef) desired.push(desiredService(md, stableRef.revision, md.spec.runtime.port));
    stableDeployment();
  } else {
    const template = revisionTemplate(md.spec, resolved.image, o.config?.storageInitializerImage);
    const revision = revisionOf(md, template);
    const target = byRevision.get(revision);
    const rollingOut = stableRef !== undefined && stableRef.revision !== revision;
    // Rendered once: the Deployment and the ControllerRevision carry the same pod template.
    const rendered = (): Record<string, unknown> => (renderedOnce ??= podTemplate(md, template, revision));
    let renderedOnce: Record<string, unknown> | undefined;

    if (rollingOut && md.spec.paused) {
      // Nothing moves while paused: a revision already started stays as it is, and is still reported.
      paused = true;
      desired.push(desiredService(md, stableRef.revision, md.spec.runtime.port));
      stableDeployment();
      if (target) canaryRef = ref(template, revision);
    } else if (rollingOut && !isAvailable(target, wanted)) {
      // The new revision starts beside the stable one; traffic stays on stable until it is available.
      keep(template, revision, rendered());
      desired.push(deploymentOf(md, revision, 'canary', rendered(), template.model.version), desiredService(md, stableRef.revision, md.spec.runtime.port));
      stableDeployment();
      canaryRef = ref(template, revision);
      // A revision superseded before it became stable (the spec changed again) never served: it goes now.
      retireAllBut([revision, stableRef.revision], undefined);
      blocker = withPodProblem(deploymentTrouble(target), o, revision);
      progressing = { reason: 'RolloutInProgress', message: `revision ${revision} (model version ${template.model.version}) is starting beside stable revision ${stableRef.revision}${podProblemOf(o, revision)}` };
      if (!target) events.push({ type: 'Normal', reason: 'RevisionCreated', message: `starting revision ${revision} for model ${template.model.name} version ${template.model.version}` });
    } else {
      // The target revision is, or now becomes, the stable one.
      keep(template, revision, rendered());
      const batch = desiredCronJob(md, template, revision);
      const hpa = desiredHpa(md);
      desired.push(deploymentOf(md, revision, 'stable', rendered(), template.model.version), desiredService(md, revision, md.spec.runtime.port));
      if (batch) desired.push(batch);
      if (hpa) desired.push(hpa);
      if (rollingOut) {
        events.push({ type: 'Normal', reason: 'Promoted', message: `revision ${revision} (model version ${template.model.version}) is available and now serves; revision ${stableRef.revision} drains for ${drainMs / 1000} s, then is removed` });
      }
      servingRef = ref(template, revision);
      if (isAvailable(target, wanted)) {
        retireAllBut([revision], stableRef?.revision);
      } else {
        blocker = withPodProblem(deploymentTrouble(target), o, revision);
        progressing = { reason: target ? 'ScalingUp' : 'Creating', message: `waiting for ${wanted} available replica(s) of revision ${revision}${podProblemOf(o, revision)}` };
      }
    }
  }
  // Revision history beyond spec.revisionHistoryLimit goes, oldest first; what runs is always kept.
  const live = new Set([servingRef?.revision, canaryRef?.revision, ...byRevision.keys()]);
  const old = [...kept.entries()].filter(([r]) => !live.has(r)).sort(([, a], [, b]) => (b.revision ?? 0) - (a.revision ?? 0));
  for (const [, cr] of old.slice(md.spec.revisionHistoryLimit)) deletes.push(childRef('ControllerRevision', cr));
  if (!md.spec.batch) for (const c of o.cronJobs) deletes.push(childRef('CronJob', c));
  if (!md.spec.autoscaling) for (const h of o.hpas) deletes.push(childRef('HorizontalPodAutoscaler', h));

  const children = [...o.deployments, ...o.services, ...o.cronJobs, ...o.hpas, ...o.revisions];
  const liveOf = (d: KubeObject): KubeObject | undefined => children.find((l) => l.kind === d.kind && l.metadata.name === d.metadata.name);
  const apply = desired.filter((d) => {
    const current = liveOf(d);
    return !current || !isSubset(d, current);
  });
  const create = apply.filter((d) => !liveOf(d));
  // Slipway never takes what is not its own: if a child it would create has its name taken by an object this
  // ModelDeployment does not control, nothing is written (not that object, nor any other) and the
  // ModelDeployment is Stalled, naming it. Its deletion sends no event here: look again after a while.
  const foreign = create.filter((d) => {
    const other = o.occupant?.(d.kind as ChildKind, d.metadata.name);
    return other !== undefined && !(other.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === md.metadata.uid);
  });
  if (foreign.length > 0) {
    const names = foreign.map((d) => `${d.kind} ${d.metadata.name}`).join(', ');
    blocker = {
      reason: 'ObjectNotOwned',
      message: `${names} already exists and is not managed by this ModelDeployment: Slipway leaves it as it is. Rename the ModelDeployment, or delete or rename the existing object`,
      stalled: true,
    };
    events.length = 0; // nothing planned happens, so nothing of it is announced
  }

  // Status, from the revision that serves.
  const serving = servingRef ? byRevision.get(servingRef.revision) : undefined;
  const available = servingRef !== undefined && isAvailable(serving, wanted);
  const stalled = blocker?.stalled === true;
  const reconciling = !stalled && (progressing !== undefined || blocker !== undefined);
  const ready = !stalled && !reconciling && !paused && available;

  const conditionInputs: ConditionInput[] = [
    ready
      ? { type: 'Ready', status: 'True', reason: 'Succeeded', message: `revision ${servingRef?.revision} of model ${md.spec.model.name} version ${servingRef?.modelVersion} is serving` }
      : {
          type: 'Ready',
          status: 'False',
          reason: blocker?.reason ?? (paused ? 'Paused' : (progressing?.reason ?? 'Progressing')),
          message: blocker?.message ?? (paused ? 'spec.paused is true: the new revision waits' : (progressing?.message ?? 'waiting for the serving revision to be available')),
        },
    reconciling
      ? { type: 'Reconciling', status: 'True', reason: blocker?.reason ?? progressing?.reason ?? 'Progressing', message: blocker?.message ?? progressing?.message ?? '' }
      : { type: 'Reconciling', status: 'False', reason: stalled ? 'Stalled' : 'Succeeded', message: stalled ? 'reconciliation is stalled: see the Stalled condition' : 'the desired state is reached' },
    stalled
      ? { type: 'Stalled', status: 'True', reason: blocker?.reason ?? 'Stalled', message: blocker?.message ?? '' }
      : { type: 'Stalled', status: 'False', reason: 'Succeeded', message: 'no errors' },
    available
      ? { type: 'Available', status: 'True', reason: wanted === 0 ? 'ScaledToZero' : 'MinimumReplicasAvailable', message: `${serving?.status?.availableReplicas ?? 0} of ${wanted} replica(s) available` }
      : { type: 'Available', status: 'False', reason: servingRef ? 'MinimumReplicasUnavailable' : 'NoRevision', message: servingRef ? `${serving?.status?.availableReplicas ?? 0} of ${wanted} replica(s) available` : 'no revision is serving yet' },
  ];
  const conditions = mergeConditions(previous.conditions, conditionInputs, md.metadata.generation, now);

  const status: ModelDeploymentStatus = {
    observedGeneration: md.metadata.generation,
    phase: phaseOf({ stalled, paused, reconciling, available }),
    ...(servingRef ? { stable: servingRef } : {}),
    ...(canaryRef ? { canary: { ...canaryRef, weight: 0 } } : {}),
    replicas: serving?.status?.replicas ?? 0,
    readyReplicas: serving?.status?.readyReplicas ?? 0,
    availableReplicas: serving?.status?.availableReplicas ?? 0,
    ...(servingRef ? { serviceName: md.metadata.name, selector: podSelector(md, servingRef.revision) } : {}),
    ...(retiring.size > 0 ? { retiring: [...retiring].map(([revision, since]) => ({ revision, since })) } : {}),
    conditions,
  };
  stripUndefined(status);
  events.push(...transitionEvents(previous.conditions, conditions));

  const result: Plan = foreign.length > 0
    ? { apply: [], create: [], delete: [], status, statusChanged: !jsonEqual(status, md.status ?? {}), events, requeue: { afterMs: NOT_OWNED_RETRY_MS, reason: 'ObjectNotOwned' } }
    : { apply, create, delete: deletes, status, statusChanged: !jsonEqual(status, md.status ?? {}), events };
  if (blocker?.reason === 'EnvironmentNotFound' || blocker?.reason === 'EnvironmentNotReady') {
    // Watches on ProjectEnvironments bring the change; this is the safety net.
    result.requeue = { afterMs: ENV_RETRY_MS, reason: blocker.reason };
  }
  if (drainRequeueMs !== undefined && drainRequeueMs < (result.requeue?.afterMs ?? Infinity)) {
    result.requeue = { afterMs: drainRequeueMs, reason: 'Draining' };
  }
  return result;
}

/**
 * The status for a failure found only while acting (the API server refused a write): Stalled with the server's
 * message, on top of the planned status. Undefined when exactly this failure is already recorded.
 */
export function stalledStatus(md: ModelDeployment, reason: string, message: string, planned: ModelDeploymentStatus | undefined, now: Date): ModelDeploymentStatus | undefined {
  const previous = md.status?.conditions;
  const stalled = findCondition(previous, 'Stalled');
  if (stalled?.status === 'True' && stalled.reason === reason && stalled.message === message) return undefined;
  const available = (planned?.conditions ?? previous ?? []).filter((c) => c.type === 'Available');
  const conditions = mergeConditions(
    previous,
    [
      { type: 'Ready', status: 'False', reason, message },
      { type: 'Reconciling', status: 'False', reason: 'Stalled', message: 'reconciliation is stalled: see the Stalled condition' },
      { type: 'Stalled', status: 'True', reason, message },
      ...available,
    ],
    md.metadata.generation,
    now,
  );
  const stillServing = available.some((c) => c.status === 'True');
  return { ...(planned ?? md.status ?? {}), observedGeneration: md.metadata.generation, phase: phaseOf({ stalled: true, paused: false, reconciling: false, available: stillServing }), conditions };
}

function phaseOf(s: { stalled: boolean; paused: boolean; reconciling: boolean; available: boolean }): NonNullable<ModelDeploymentStatus['phase']> {
  if (s.stalled) return s.available ? 'Degraded' : 'Failed';
  if (s.paused) return 'Paused';
  if (s.reconciling) return 'Progressing';
  return s.available ? 'Healthy' : 'Pending';
}

function transitionEvents(before: Condition[] | undefined, after: Condition[]): PlannedEvent[] {
  const events: PlannedEvent[] = [];
  const changed = (type: string): Condition | undefined => {
    const now = findCondition(after, type);
    const was = findCondition(before, type);
    return now && (now.status !== was?.status || now.reason !== was?.reason) ? now : undefined;
  };
  const stalled = changed('Stalled');
  if (stalled?.status === 'True') events.push({ type: 'Warning', reason: stalled.reason, message: stalled.message });
  const ready = changed('Ready');
  if (ready?.status === 'True') events.push({ type: 'Normal', reason: 'Ready', message: ready.message });
  return events;
}

function stripUndefined(o: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(o)) if (v === undefined) delete o[k];
}
