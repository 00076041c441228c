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
import type { KubeObject, ResourceType } from '../../kube/resources.ts';
import { rfc3339 } from '../../kube/time.ts';
import type { Deployment } from '../../kube/workloads.ts';
import { isSubset, jsonEqual } from '../compare.ts';
import { findCondition, mergeConditions, type ConditionInput } from '../conditions.ts';
import {
  canaryServiceName,
  deploymentOf,
  desiredCanaryService,
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
import { ANNOTATION_REQUESTED_BY, parseRequest, UNSTAMPED, type Verb, type VerbRequest } from './requests.ts';
import { GatewayApiRouter } from './routers/gateway-api.ts';
import { DESTINATION_RULE, IstioRouter } from './routers/istio.ts';
import { replicaSplit, type ReplicaSplit } from './routers/replica-ratio.ts';
import { shareOf, type TrafficRouter } from './routers/router.ts';
import { describeStep, durationMs, evaluateSteps, type Step, type StepProgress } from './steps.ts';
import type { NotificationKind } from '../../notify/payload.ts';
import { advanceAnalysis, analysisContext, JOB_POLL_MS, type AnalysisStatus, type Measurement } from '../../analysis/analysis.ts';

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
  /**
   * The routing object spec.rollout.trafficRouting names (HTTPRoute, VirtualService) as read; null when it does
   * not exist; absent when it was not looked up.
   */
  route?: KubeObject | null;
  /** Another ModelDeployment, created earlier, that names the same routing object. */
  routeClaimedBy?: string;
  /** The DestinationRule of trafficRouting.istio.destinationRule, as read (null: it does not exist). */
  destinationRule?: KubeObject | null;
  /** A measurement of the current analysis step, taken because one was due (see measurementDue). */
  measurement?: Measurement;
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
  /** A decision people are told about (spec.notifications), besides the Event. */
  notify?: NotificationKind;
}

export interface Plan {
  /** Configurations to server-side apply: only those the live objects do not already match. */
  apply: KubeObject[];
  /** Those of `apply` that no child of this ModelDeployment has the name of yet: they are created (see occupant). */
  create: KubeObject[];
  delete: ChildRef[];
  /** The user's routing objects with new weights: replaced over the resourceVersion they were read at. */
  routes: { resource: ResourceType; object: KubeObject }[];
  /** Routes are written before the children: traffic leaves a canary before its pods go. */
  routesFirst: boolean;
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
  // A failed build of a newer environment leaves the last image it built serving: no rollout then.
  if (env.phase === 'Failed' && !env.image) {
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

/** How often a rollout stalled on its routing object looks again (routes are read, not watched). */
export const ROUTE_RETRY_MS = 30_000;
/** After a route write, the next look (the write is the event a watch would have brought). */
export const ROUTE_WRITTEN_REQUEUE_MS = 200;

/** What should run: the spec's revision (with the template it is rendered from), or one an undo went back to. */
interface Target {
  revision: string;
  ref: RevisionRef;
  rendered: () => Record<string, unknown>;
  /** Absent for a revision rendered from its ControllerRevision: the batch job then stays as it is. */
  template?: RevisionTemplate;
}

/** What requests change, carried in status. */
interface RolloutState {
  aborted: ModelDeploymentStatus['aborted'];
  pause: ModelDeploymentStatus['pause'];
  override: ModelDeploymentStatus['override'];
  promotedAtStep: number | undefined;
  promotedFull: boolean | undefined;
}

type Routing = { kind: 'service' } | { kind: 'replicaRatio' } | { kind: 'router'; router: TrafficRouter };

/** How traffic is split: by a router's object, by replica ratio (steps without a router), or not at all. */
export function routingOf(md: ModelDeployment): Routing {
  const tr = md.spec.rollout?.trafficRouting;
  if (tr?.gatewayAPI) return { kind: 'router', router: new GatewayApiRouter(tr.gatewayAPI.httpRoute) };
  if (tr?.istio) {
    const dr = tr.istio.destinationRule;
    return { kind: 'router', router: new IstioRouter(tr.istio.virtualService, tr.istio.routes, dr ? { destinationRule: dr.name, stable: dr.stableSubsetName, canary: dr.canarySubsetName } : undefined) };
  }
  if (tr?.replicaRatio || (md.spec.rollout?.steps?.length ?? 0) > 0) return { kind: 'replicaRatio' };
  return { kind: 'service' };
}

/**
 * Replicas of each side for a weight. By replica ratio the counts are the split. Behind a router the canary gets
 * its share of spec.replicas (rounded up, at least one above 0%); the stable side keeps its replicas, or with
 * scaleDownStable gives up what the canary takes (keeping at least one while it still has traffic).
 */
export function splitFor(kind: Routing['kind'], total: number, weight: number, scaleDownStable: boolean): ReplicaSplit {
  if (kind !== 'router') return replicaSplit(total, weight, { scaleDownStable });
  const canary = total === 0 || weight === 0 ? 0 : Math.max(1, Math.ceil((total * weight) / 100));
  const stable = !scaleDownStable || weight === 0 ? total : weight >= 100 ? 0 : Math.max(1, Math.ceil((total * (100 - weight)) / 100));
  return { canary, stable, achievedWeight: weight };
}

/** The weight the steps end at (what the canary carries before it takes everything). */
function lastWeight(steps: Step[]): number {
  return Math.max(0, ...steps.map((s) => s.setWeight ?? 0));
}

function countsOf(d: Deployment | undefined): { replicas: number; availableReplicas: number } {
  return { replicas: d?.spec?.replicas ?? 0, availableReplicas: d?.status?.availableReplicas ?? 0 };
}

/** The revisions kept once this plan is carried out, newest first. */
function historyOf(kept: Map<string, KubeObject & { data?: KeptRevision; revision?: number }>, created: { revision: string; number: number; ref: RevisionRef }[], deletes: ChildRef[]): NonNullable<ModelDeploymentStatus['history']> {
  const gone = new Set(deletes.filter((d) => d.kind === 'ControllerRevision').map((d) => d.name));
  const entries = [...kept].filter(([, cr]) => !gone.has(cr.metadata.name) && cr.data).map(([revision, cr]) => ({ revision, modelVersion: cr.data?.modelVersion ?? '', image: cr.data?.image ?? '', number: cr.revision ?? 0 }));
  for (const c of created) entries.push({ ...c.ref, number: c.number });
  return entries.sort((a, b) => b.number - a.number);
}

const VERB_REASONS: Record<Verb | 'invalid', string> = {
  promote: 'Promote',
  'promote-full': 'PromoteFull',
  abort: 'Abort',
  retry: 'Retry',
  pause: 'Pause',
  resume: 'Resume',
  undo: 'Undo',
  invalid: 'RequestRefused',
};
const verbReason = (v: string): string => VERB_REASONS[v as Verb] ?? 'Request';

interface DecideContext {
  previous: ModelDeploymentStatus;
  state: RolloutState;
  steps: Step[];
  kept: Map<string, KubeObject & { data?: KeptRevision }>;
  spec: ModelDeployment['spec'];
  generation: number;
  now: Date;
}

/** A verb's effect on the rollout state (changed in place), or why it is refused. */
function decide(r: VerbRequest, c: DecideContext): { accepted: string } | { refused: string } {
  const { previous, state, steps } = c;
  const canary = state.aborted ? undefined : previous.canary;
  const at = rfc3339(c.now);
  switch (r.verb) {
    case 'promote': {
      if (!canary) return { refused: 'nothing to promote: no rollout is in progress' };
      if (steps.length === 0) return { refused: 'the rollout has no steps: the new revision takes all traffic as soon as it is available (promote-full does not wait for that)' };
      const step = canary.step ?? 0;
      if (step >= steps.length) return { refused: 'every step is done: the canary takes all traffic as soon as it is at full size' };
      state.promotedAtStep = step;
      return { accepted: `past step ${step + 1} of ${steps.length} (${describeStep(steps[step])})` };
    }
    case 'promote-full':
      if (!canary) return { refused: state.aborted ? `the rollout of revision ${state.aborted.revision} was stopped: retry it first` : 'nothing to promote: no rollout is in progress' };
      if (steps.length === 0) return { refused: 'the rollout has no steps: the new revision takes all traffic as soon as it is available' };
      state.promotedFull = true;
      return { accepted: `revision ${canary.revision} skips its remaining steps and takes all traffic once it is at full size` };
    case 'abort':
      if (!canary) return { refused: 'nothing to abort: no rollout is in progress' };
      state.aborted = { revision: canary.revision, modelVersion: canary.modelVersion, image: canary.image, reason: 'Aborted', message: `aborted by ${r.by}`, at };
      return { accepted: `rollout of revision ${canary.revision} stopped; all traffic goes back to stable revision ${previous.stable?.revision ?? '(none)'}` };
    case 'retry':
      if (!state.aborted) return { refused: 'nothing to retry: no rollout was stopped' };
      state.aborted = undefined;
      return { accepted: 'the rollout starts again from its first step' };
    case 'pause':
      if (state.pause) return { refused: `already paused by ${state.pause.by} at ${state.pause.at}` };
      state.pause = { by: r.by, at };
      return { accepted: 'the rollout holds where it is until resumed' };
    case 'resume':
      if (!state.pause) return { refused: c.spec.paused ? 'spec.paused is true: set it to false in the spec' : 'not paused' };
      state.pause = undefined;
      return { accepted: 'the rollout continues' };
    case 'undo': {
      const revision = r.revision ?? '';
      if (!c.kept.get(revision)?.data?.podTemplate) {
        return { refused: `revision ${revision} is not in the history (kept: ${[...c.kept.keys()].join(', ') || 'none'}); kubectl slipway history lists them` };
      }
      if (revision === previous.stable?.revision && !previous.canary) return { refused: `revision ${revision} is already serving` };
      state.override = { revision, generation: c.generation, by: r.by, at };
      state.aborted = undefined;
      state.promotedAtStep = undefined;
      state.promotedFull = undefined;
      return { accepted: `revision ${revision} serves again as soon as it is available at full size (it skips the steps: it served before); the spec decides again once it changes` };
    }
  }
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
    return { apply: [], create: [], delete: [], routes: [], routesFirst: false, status: previous, statusChanged: false, events: [] };
  }
  const byRevision = new Map(o.deployments.map((d) => [d.metadata.labels?.[LABEL_REVISION] ?? '', d]));
  const stableRef = previous.stable && byRevision.has(previous.stable.revision) ? previous.stable : undefined;
  const wanted = desiredReplicas(md);
  const port = md.spec.runtime.port;
  const steps = md.spec.rollout?.steps ?? [];
  const routing = routingOf(md);
  const scaleDownStable = md.spec.rollout?.scaleDownStable ?? false;

  const desired: KubeObject[] = [];
  const deletes: ChildRef[] = [];
  const events: PlannedEvent[] = [];
  const routes: Plan['routes'] = [];
  let routesFirst = false;
  let servingRef: RevisionRef | undefined = stableRef;
  let canaryStatus: NonNullable<ModelDeploymentStatus['canary']> | undefined;
  let blocker: Blocker | undefined;
  let progressing: { reason: string; message: string } | undefined;
  let paused = false;
  let requeue: Plan['requeue'];
  const requeueAt = (afterMs: number, reason: string): void => {
    if (afterMs < (requeue?.afterMs ?? Infinity)) requeue = { afterMs: Math.max(0, afterMs), reason };
  };

  const kept = new Map(o.revisions.map((cr) => [cr.metadata.labels?.[LABEL_REVISION] ?? '', cr as KubeObject & { data?: KeptRevision; revision?: number }]));
  const created: { revision: string; number: number; ref: RevisionRef }[] = [];
  /** The stable revision's Deployment as its ControllerRevision keeps it, at the given scale (today's by default). */
  const stableDeployment = (replicas = wanted): void => {
    const data = stableRef ? kept.get(stableRef.revision)?.data : undefined;
    if (stableRef && data?.podTemplate) desired.push(deploymentOf(md, stableRef.revision, 'stable', data.podTemplate, data.modelVersion, replicas));
  };
  /** The ControllerRevision of the revision about to run, if it has none yet. */
  const keep = (t: Target): void => {
    if (kept.has(t.revision) || !t.template) return;
    const number = Math.max(0, ...[...kept.values()].map((cr) => cr.revision ?? 0)) + 1;
    desired.push(desiredControllerRevision(md, t.template, t.revision, number, t.rendered()));
    created.push({ revision: t.revision, number, ref: t.ref });
  };

  // Drain: revisions traffic has left keep running until their delay has passed.
  const drainMs = (md.spec.rollout?.scaleDownDelaySeconds ?? DEFAULT_SCALE_DOWN_DELAY_SECONDS) * 1000;
  const retiring = new Map((previous.retiring ?? []).filter((r) => byRevision.has(r.revision)).map((r) => [r.revision, r.since]));
  /**
   * Retires a Deployment that served: deleted once its drain is over, kept (and remembered) until then. With
   * `now`, at once: a replica-ratio rollout's Service selects every revision, so one that is draining would
   * still be sent requests.
   */
  const retire = (d: Deployment, once = false): void => {
    const r = d.metadata.labels?.[LABEL_REVISION] ?? '';
    const since = retiring.get(r) ?? now.toISOString();
    const left = once ? 0 : Date.parse(since) + drainMs - now.getTime();
    if (left <= 0) {
      retiring.delete(r);
      deletes.push(childRef('Deployment', d));
    } else {
      retiring.set(r, since);
      requeueAt(left, 'Draining');
    }
  };
  /**
   * Every Deployment but those of `keep` goes: one that served (`served`, or already draining) drains first, one
   * that never served is deleted at once.
   */
  const retireAllBut = (keepRevisions: (string | undefined)[], served: (string | undefined)[], once = false): void => {
    for (const d of o.deployments) {
      const r = d.metadata.labels?.[LABEL_REVISION] ?? '';
      if (keepRevisions.includes(r)) continue;
      if (served.includes(r) || retiring.has(r)) retire(d, once);
      else deletes.push(childRef('Deployment', d));
    }
  };

  // A request (slipway.dev/request) is acted on once: its outcome is in status.lastRequest from now on.
  const state: RolloutState = {
    aborted: previous.aborted,
    pause: previous.pause,
    override: previous.override,
    promotedAtStep: previous.canary?.promotedAtStep,
    promotedFull: previous.canary?.promotedFull,
  };
  let lastRequest = previous.lastRequest;
  const request = parseRequest(md.metadata.annotations);
  if (request && request.id !== previous.lastRequest?.id) {
    const by = 'by' in request ? request.by : (md.metadata.annotations?.[ANNOTATION_REQUESTED_BY] ?? UNSTAMPED);
    const verb = 'verb' in request ? request.verb : 'invalid';
    const outcome = 'error' in request ? { refused: request.error } : decide(request, { previous, state, steps, kept, spec: md.spec, generation: md.metadata.generation ?? 0, now });
    lastRequest = {
      id: request.id,
      verb,
      by,
      at: rfc3339(now),
      result: 'refused' in outcome ? 'Refused' : 'Accepted',
      message: 'refused' in outcome ? outcome.refused : outcome.accepted,
    };
    events.push('refused' in outcome
      ? { type: 'Warning', reason: 'RequestRefused', message: `${verb} requested by ${by} was refused: ${outcome.refused}` }
      : { type: 'Normal', reason: verbReason(verb), message: `${verb} requested by ${by}: ${outcome.accepted}` });
  }

  // What should run: the revision an undo went back to (until the spec changes), or the spec's.
  if (state.override && (state.override.generation !== md.metadata.generation || !kept.get(state.override.revision)?.data?.podTemplate)) state.override = undefined;
  let target: Target | undefined;
  if (state.override) {
    const data = kept.get(state.override.revision)?.data as KeptRevision;
    target = { revision: state.override.revision, ref: { revision: state.override.revision, modelVersion: data.modelVersion, image: data.image }, rendered: () => data.podTemplate };
  } else {
    const resolved = resolveImage(o);
    if ('blocker' in resolved) {
      blocker = resolved.blocker;
    } else {
      const template = revisionTemplate(md.spec, resolved.image, o.config?.storageInitializerImage);
      const revision = revisionOf(md, template);
      let renderedOnce: Record<string, unknown> | undefined;
      // Rendered once: the Deployment and the ControllerRevision carry the same pod template.
      target = { revision, template, ref: ref(template, revision), rendered: () => (renderedOnce ??= podTemplate(md, template, revision)) };
    }
  }
  // An abort holds for its revision only: a spec that names another revision starts afresh.
  if (state.aborted && state.aborted.revision !== target?.revision) state.aborted = undefined;

  // The analysis of the step the canary stands at: a measurement taken, the verdict, and what it means.
  let analysis: AnalysisStatus | undefined = previous.analysis;
  let analysisPassedAt: number | undefined;
  const analysisSpec = md.spec.rollout?.analysis;
  const ctx = analysisContext(md);
  if (analysisSpec && ctx && ctx.revision === target?.revision && !state.aborted) {
    const before = analysis;
    analysis = advanceAnalysis(analysisSpec, previous.analysis, ctx, state.pause !== undefined, o.measurement, now);
    const decided = analysis.verdict !== 'Running' && !(before?.verdict === analysis.verdict && before.stepStartedAt === analysis.stepStartedAt && before.step === analysis.step);
    const at = rfc3339(now);
    const canary = previous.canary;
    const where = `analysis at step ${ctx.step + 1} of ${steps.length}`;
    if (analysis.verdict === 'Passed' || (analysis.verdict === 'Failed' && analysisSpec.onFailure === 'notify')) {
      analysisPassedAt = ctx.step;
      if (decided) {
        events.push(analysis.verdict === 'Passed'
          ? { type: 'Normal', reason: 'AnalysisPassed', message: `${where} passed: ${analysis.message ?? ''}` }
          : { type: 'Warning', reason: 'AnalysisFailed', message: `${where} failed (onFailure: notify, the rollout goes on): ${analysis.message ?? ''}`, notify: 'Failed' });
      }
    } else if (analysis.verdict === 'Failed' && decided && canary) {
      if (analysisSpec.onFailure === 'rollback') {
        // The Stalled condition's transition announces it (a Warning Event with reason RolledBack).
        state.aborted = { revision: canary.revision, modelVersion: canary.modelVersion, image: canary.image, reason: 'RolledBack', message: `${where} failed: ${analysis.message ?? ''}`, at };
      } else {
        state.pause = { by: `analysis (${where} failed: ${analysis.message ?? ''})`, at };
        events.push({ type: 'Warning', reason: 'AnalysisFailed', message: `${where} failed; the rollout is paused for a person: ${analysis.message ?? ''}`, notify: 'Paused' });
      }
    } else if (analysis.verdict === 'Inconclusive' && decided && !state.pause) {
      state.pause = { by: `analysis (${where} inconclusive: ${analysis.message ?? ''})`, at };
      events.push({ type: 'Warning', reason: 'AnalysisInconclusive', message: `${where} is inconclusive; the rollout is paused for a person (kubectl slipway resume starts the analysis again, promote passes it): ${analysis.message ?? ''}`, notify: 'Paused' });
    } else if (analysis.verdict === 'Running' && analysis.nextAt && !state.pause) {
      // A measurement due and not taken is one that waits for its Job: look again in a while, not at once.
      const wait = Date.parse(analysis.nextAt) - now.getTime();
      if (wait > 0) requeueAt(wait, 'AnalysisInterval');
      else requeueAt(JOB_POLL_MS, 'AnalysisJobRunning');
    }
  }

  // The routing object (HTTPRoute, VirtualService): its weights, or why it cannot be used.
  const router = routing.kind === 'router' ? routing.router : undefined;
  const subsetRouter = router instanceof IstioRouter && router.subsets ? router : undefined;
  const routeTarget = (canaryWeight: number) => ({ namespace: md.metadata.namespace ?? 'default', stableService: md.metadata.name, canaryService: canaryServiceName(md), canaryWeight });
  /** The routing object as it is: its canary weight, or why it cannot be used. */
  const observedRoute = router && o.route !== undefined ? router.setWeight(o.route, routeTarget(0)) : undefined;
  const routeProblem = ((): Blocker | undefined => {
    if (!router) return undefined;
    if (o.routeClaimedBy) {
      return { reason: 'RouteInUse', message: `${router.describe} is already used by ModelDeployment ${o.routeClaimedBy}: two ModelDeployments cannot split the same route; give this one its own route`, stalled: true };
    }
    if (!observedRoute) return undefined;
    const r = observedRoute;
    const d = subsetRouter && o.destinationRule !== undefined ? subsetRouter.setSubsets(o.destinationRule, { namespace: md.metadata.namespace ?? 'default', stableRevision: '', canaryRevision: '' }) : undefined;
    const problem = !r.ok ? r : d && !d.ok ? d : undefined;
    return problem && !problem.ok ? { reason: problem.reason, message: `${problem.message}; the rollout waits, stable keeps serving`, stalled: true } : undefined;
  })();
  /** The weight the routing object gives the canary now. */
  const routeWeight = !routeProblem && observedRoute?.ok ? observedRoute.current : 0;
  /** Writes the canary's weight to the routing object, if it can be used and does not have it already. */
  const setRouteWeight = (w: number): void => {
    if (!router || !o.route || routeProblem) return;
    const r = router.setWeight(o.route, routeTarget(w));
    if (r.ok && r.update) {
      routes.push({ resource: router.resource, object: r.update });
      // Routes are read, not watched: look again at once to see the weight in force and go on.
      requeueAt(ROUTE_WRITTEN_REQUEUE_MS, 'RouteUpdated');
    }
  };
  /**
   * The canary Service selects `revision`; with Istio subsets, the DestinationRule's canary subset does too and its
   * stable subset selects `stableRevision` (written before any weight moves).
   */
  const canaryService = (revision: string, stableRevision: string): void => {
    if (router) desired.push(desiredCanaryService(md, revision, port));
    if (!subsetRouter || !o.destinationRule || routeProblem) return;
    const r = subsetRouter.setSubsets(o.destinationRule, { namespace: md.metadata.namespace ?? 'default', stableRevision, canaryRevision: revision });
    if (r.ok && r.update) {
      routes.unshift({ resource: DESTINATION_RULE, object: r.update });
      requeueAt(ROUTE_WRITTEN_REQUEUE_MS, 'RouteUpdated');
    }
  };

  if (!target) {
    // Keep serving what serves, at the scale in force; there is nothing new to create.
    if (stableRef) {
      desired.push(desiredService(md, stableRef.revision, port));
      canaryService(stableRef.revision, stableRef.revision);
    }
    stableDeployment();
  } else {
    const t = target;
    const targetDeployment = byRevision.get(t.revision);
    const rollingOut = stableRef !== undefined && stableRef.revision !== t.revision;
    const canaryMode = rollingOut && steps.length > 0;
    const split = (w: number): ReplicaSplit => splitFor(routing.kind, wanted, w, scaleDownStable);
    // A canary that cannot become available in time is stopped: traffic back on stable, its pods gone.
    const trouble = deploymentTrouble(targetDeployment);
    if (canaryMode && !state.aborted && trouble?.reason === 'ProgressDeadlineExceeded') {
      state.aborted = {
        ...t.ref,
        reason: 'ProgressDeadlineExceeded',
        message: `revision ${t.revision} (model version ${t.ref.modelVersion}) was not available within spec.progressDeadlineSeconds (${md.spec.progressDeadlineSeconds} s)${podProblemOf(o, t.revision)}`,
        at: rfc3339(now),
      };
    }
    let promote = !rollingOut;

    if (rollingOut && state.aborted) {
      const a = state.aborted;
      // All traffic back on stable at once (the route first, then the canary's pods), the canary removed.
      desired.push(desiredService(md, stableRef.revision, port));
      canaryService(stableRef.revision, stableRef.revision);
      stableDeployment();
      setRouteWeight(0);
      routesFirst = true;
      retireAllBut([stableRef.revision], []);
      blocker = {
        reason: a.reason,
        message: `${a.reason === 'RolledBack' ? `revision ${a.revision} (model version ${a.modelVersion}) rolled back` : `rollout of revision ${a.revision} (model version ${a.modelVersion}) stopped`}: ${a.message}. Stable revision ${stableRef.revision} serves all traffic; kubectl slipway retry starts the rollout again, a spec change starts a new one`,
        stalled: true,
      };
      if (previous.aborted?.revision !== a.revision && a.reason !== 'RolledBack') {
        events.push({ type: 'Warning', reason: 'RolloutAborted', message: `rollout of revision ${a.revision} (model version ${a.modelVersion}) stopped: ${a.message}; all traffic is back on stable revision ${stableRef.revision}` });
      }
    } else if (rollingOut && (md.spec.paused || state.pause || (canaryMode && routeProblem))) {
      // Nothing moves: what runs keeps its scale, the route its weights; the revision started is still reported.
      paused = !routeProblem;
      if (routeProblem) {
        blocker = routeProblem;
        requeueAt(ROUTE_RETRY_MS, blocker.reason);
      }
      const wide = routing.kind === 'replicaRatio' && canaryMode && targetDeployment !== undefined;
      desired.push(desiredService(md, stableRef.revision, port, wide));
      canaryService(targetDeployment ? t.revision : stableRef.revision, stableRef.revision);
      const carried = previous.canary?.revision === t.revision ? previous.canary : undefined;
      // The scale in force still reaches what runs, split as the weight the rollout holds at.
      const held = split(carried?.weight ?? 0);
      stableDeployment(canaryMode && targetDeployment ? held.stable : wanted);
      if (canaryMode && targetDeployment) desired.push(deploymentOf(md, t.revision, 'canary', t.rendered(), t.ref.modelVersion, held.canary));
      if (targetDeployment) {
        canaryStatus = { ...(carried ?? {}), ...t.ref, weight: carried?.weight ?? 0, ...countsOf(targetDeployment) };
        delete canaryStatus.pauseUntil;
      }
      progressing = md.spec.paused || state.pause
        ? { reason: 'Paused', message: md.spec.paused ? 'spec.paused is true: the rollout waits' : `paused by ${state.pause?.by} at ${state.pause?.at}: kubectl slipway resume continues` }
        : undefined;
    } else if (canaryMode) {
      // The canary walks the steps; all it has done is in status.canary, so any evaluation resumes where it stands.
      const carried = previous.canary?.revision === t.revision && previous.canary.step !== undefined ? previous.canary : undefined;
      if (!carried) {
        state.promotedAtStep = undefined;
        state.promotedFull = undefined;
      }
      const progressIn: StepProgress | undefined = carried ? { step: carried.step ?? 0, weight: carried.weight ?? 0, since: carried.stepStartedAt ?? rfc3339(now) } : undefined;
      const readyFor = (w: number): boolean => isAvailable(targetDeployment, split(w).canary);
      // By replica ratio the share is the pods': the stable side must be down to its part too (a surplus pod, e.g.
      // while a replicas change in the same spec scales it down, gives the canary less than the step's weight).
      const stableWithin = (w: number): boolean => (byRevision.get(stableRef.revision)?.status?.availableReplicas ?? 0) <= split(w).stable;
      // A step's weight is carried once the canary's pods for it are available, and the route (behind a router)
      // or the stable side's pods (by replica ratio) give it that weight.
      const carries = (w: number): boolean => readyFor(w) && (router ? routeWeight >= w : stableWithin(w));
      // An undo goes back to a revision that served before: it skips the steps (as a promote-full would).
      const full = state.promotedFull === true || state.override !== undefined;
      const outcome = evaluateSteps(steps, progressIn, { now, canaryReady: carries(progressIn?.weight ?? 0), promoteAt: state.promotedAtStep, promoteFull: full, analysisPassedAt });
      if (outcome.complete && isAvailable(targetDeployment, wanted)) {
        promote = true;
      } else {
        // On the last step the canary grows to full size before it takes all traffic.
        const w = outcome.complete ? lastWeight(steps) : outcome.progress.weight;
        const s = split(w);
        const canaryReplicas = outcome.complete ? wanted : s.canary;
        keep(t);
        desired.push(deploymentOf(md, t.revision, 'canary', t.rendered(), t.ref.modelVersion, canaryReplicas));
        stableDeployment(s.stable);
        desired.push(desiredService(md, stableRef.revision, port, routing.kind === 'replicaRatio'));
        canaryService(t.revision, stableRef.revision);
        // The route gives the canary a share only once its pods for that share are available.
        const carry = readyFor(w) ? w : Math.min(w, routeWeight);
        setRouteWeight(carry);
        // A canary replaced by a newer revision goes: drained if it took traffic (at once by replica ratio).
        const ratio = routing.kind === 'replicaRatio';
        retireAllBut([t.revision, stableRef.revision], [previous.canary?.weight ? previous.canary.revision : undefined], ratio);
        const stableLive = byRevision.get(stableRef.revision);
        const achieved = router ? carry : shareOf(stableLive?.status?.availableReplicas ?? 0, targetDeployment?.status?.availableReplicas ?? 0);
        const p = outcome.progress;
        canaryStatus = {
          ...t.ref,
          weight: outcome.complete ? 100 : p.weight,
          achievedWeight: achieved,
          step: p.step,
          steps: steps.length,
          stepStartedAt: p.since,
          ...(outcome.waiting?.until ? { pauseUntil: rfc3339(outcome.waiting.until) } : {}),
          ...(state.promotedAtStep === p.step ? { promotedAtStep: p.step } : {}),
          ...(state.promotedFull ? { promotedFull: true } : {}),
          ...countsOf(targetDeployment),
        };
        const why = outcome.complete
          ? `all ${steps.length} steps done: scaling revision ${t.revision} to ${wanted} replica(s) before it takes all traffic${podProblemOf(o, t.revision)}`
          : `${outcome.waiting?.message ?? ''}${outcome.waiting?.reason === 'CanaryNotReady' ? podProblemOf(o, t.revision) : ''}`;
        progressing = { reason: outcome.complete ? 'CanaryScalingUp' : (outcome.waiting?.reason ?? 'RolloutInProgress'), message: `canary revision ${t.revision} (model version ${t.ref.modelVersion}) at ${achieved}% of traffic: ${why}` };
        blocker = trouble?.reason === 'ReplicaFailure' ? trouble : undefined;
        if (outcome.waiting?.until) requeueAt(outcome.waiting.until.getTime() - now.getTime(), 'PauseEnds');
        if (outcome.waiting?.reason === 'AwaitingAnalysis' && analysisSpec && !(analysis?.step === p.step && analysis.stepStartedAt === p.since)) {
          // Just arrived at an analysis step: its first measurement is an interval away.
          requeueAt(Date.parse(p.since) + durationMs(analysisSpec.interval) - now.getTime(), 'AnalysisInterval');
        }
        if (!carried) events.push({ type: 'Normal', reason: 'RolloutStarted', message: `rolling out revision ${t.revision} (model version ${t.ref.modelVersion}) beside stable revision ${stableRef.revision} in ${steps.length} steps` });
        for (const e of outcome.entered) {
          events.push({ type: 'Normal', reason: 'RolloutStep', message: e.step < steps.length ? `step ${e.step + 1} of ${steps.length}: ${e.description}` : `all ${steps.length} steps done: the canary takes all traffic once it has ${wanted} available replica(s)` });
        }
      }
    } else if (rollingOut && !isAvailable(targetDeployment, wanted)) {
      // Without steps the new revision starts beside the stable one; traffic stays on stable until it is available.
      keep(t);
      desired.push(deploymentOf(md, t.revision, 'canary', t.rendered(), t.ref.modelVersion), desiredService(md, stableRef.revision, port));
      canaryService(stableRef.revision, stableRef.revision);
      setRouteWeight(0);
      stableDeployment();
      canaryStatus = { ...t.ref, weight: 0 };
      // A revision superseded before it became stable (the spec changed again) never served: it goes now.
      retireAllBut([t.revision, stableRef.revision], []);
      blocker = withPodProblem(trouble, o, t.revision);
      progressing = { reason: 'RolloutInProgress', message: `revision ${t.revision} (model version ${t.ref.modelVersion}) is starting beside stable revision ${stableRef.revision}${podProblemOf(o, t.revision)}` };
      if (!targetDeployment) events.push({ type: 'Normal', reason: 'RevisionCreated', message: `starting revision ${t.revision} for model ${md.spec.model.name} version ${t.ref.modelVersion}` });
    } else {
      promote = true;
    }

    if (promote) {
      // The target revision is, or now becomes, the stable one: both Services select it, the route sends
      // everything to stable (after the Services have switched), the batch job and HPA follow.
      keep(t);
      desired.push(deploymentOf(md, t.revision, 'stable', t.rendered(), t.ref.modelVersion), desiredService(md, t.revision, port));
      canaryService(t.revision, t.revision);
      setRouteWeight(0);
      const batch = t.template ? desiredCronJob(md, t.template, t.revision) : undefined;
      const hpa = desiredHpa(md);
      if (batch) desired.push(batch);
      if (hpa) desired.push(hpa);
      if (rollingOut) {
        events.push({ type: 'Normal', reason: 'Promoted', message: `revision ${t.revision} (model version ${t.ref.modelVersion}) is available and now serves; revision ${stableRef.revision} drains for ${drainMs / 1000} s, then is removed`, notify: 'Promoted' });
      }
      servingRef = t.ref;
      state.promotedAtStep = undefined;
      state.promotedFull = undefined;
      if (!rollingOut && previous.canary?.weight) routesFirst = true; // a canary that took traffic is dropped (undo)
      if (isAvailable(targetDeployment, wanted)) {
        retireAllBut([t.revision], [stableRef?.revision, previous.canary?.weight ? previous.canary.revision : undefined]);
      } else {
        blocker = withPodProblem(trouble, o, t.revision);
        progressing = { reason: targetDeployment ? 'ScalingUp' : 'Creating', message: `waiting for ${wanted} available replica(s) of revision ${t.revision}${podProblemOf(o, t.revision)}` };
      }
    }
  }
  // Revision history beyond spec.revisionHistoryLimit goes, oldest first; what runs is always kept.
  const live = new Set([servingRef?.revision, canaryStatus?.revision, state.override?.revision, ...byRevision.keys()]);
  const old = [...kept.entries()].filter(([r]) => !live.has(r)).sort(([, a], [, b]) => (b.revision ?? 0) - (a.revision ?? 0));
  for (const [, cr] of old.slice(md.spec.revisionHistoryLimit)) deletes.push(childRef('ControllerRevision', cr));
  // The canary Service exists only for a traffic router.
  for (const svc of o.services) {
    if (svc.metadata.name !== md.metadata.name && !(router && svc.metadata.name === canaryServiceName(md))) deletes.push(childRef('Service', svc));
  }
  if (!md.spec.batch) for (const c of o.cronJobs) deletes.push(childRef('CronJob', c));
  if (!md.spec.autoscaling) for (const h of o.hpas) deletes.push(childRef('HorizontalPodAutoscaler', h));

  const children = [...o.deployments, ...o.services, ...o.cronJobs, ...o.hpas, ...o.revisions];
  const liveOf = (d: KubeObject): KubeObject | undefined => children.find((l) => l.kind === d.kind && l.metadata.name === d.metadata.name);
  const apply = desired.filter((d) => {
    const current = liveOf(d);
    if (!current || !isSubset(d, current)) return true;
    // A selector with fewer labels is still a subset of the live one: compare Service selectors whole.
    return d.kind === 'Service' && !jsonEqual((d.spec as { selector?: unknown }).selector, (current.spec as { selector?: unknown } | undefined)?.selector);
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
    phase: state.aborted?.reason === 'RolledBack' && stalled ? 'RolledBack' : phaseOf({ stalled, paused, reconciling, available }),
    ...(servingRef ? { stable: servingRef } : {}),
    ...(canaryStatus ? { canary: canaryStatus } : {}),
    replicas: serving?.status?.replicas ?? 0,
    readyReplicas: serving?.status?.readyReplicas ?? 0,
    availableReplicas: serving?.status?.availableReplicas ?? 0,
    ...(servingRef ? { serviceName: md.metadata.name, selector: podSelector(md, servingRef.revision) } : {}),
    ...(retiring.size > 0 ? { retiring: [...retiring].map(([revision, since]) => ({ revision, since })) } : {}),
    ...(state.aborted ? { aborted: state.aborted } : {}),
    ...(state.pause ? { pause: state.pause } : {}),
    ...(state.override ? { override: state.override } : {}),
    ...(lastRequest ? { lastRequest } : {}),
    // The analysis of the rollout in progress, or of the last one (what promoted stable, or why it rolled back).
    ...(analysis && [canaryStatus?.revision, state.aborted?.revision, servingRef?.revision].includes(analysis.revision) ? { analysis } : {}),
    history: historyOf(kept, created, deletes),
    // Written by the audit trail and the GitOps write-back, carried as they are.
    ...(previous.audit ? { audit: previous.audit } : {}),
    ...(previous.writeBack ? { writeBack: previous.writeBack } : {}),
    conditions,
  };
  if (canaryStatus) stripUndefined(canaryStatus);
  stripUndefined(status);
  // A promotion's Event already says the new revision serves: a Ready Event beside it would say it twice.
  const promoted = events.some((e) => e.reason === 'Promoted');
  events.push(...transitionEvents(previous.conditions, conditions).filter((e) => !(promoted && e.reason === 'Ready')));

  if (foreign.length > 0) {
    return { apply: [], create: [], delete: [], routes: [], routesFirst: false, status, statusChanged: !jsonEqual(status, md.status ?? {}), events, requeue: { afterMs: NOT_OWNED_RETRY_MS, reason: 'ObjectNotOwned' } };
  }
  if (blocker?.reason === 'EnvironmentNotFound' || blocker?.reason === 'EnvironmentNotReady') {
    // Watches on ProjectEnvironments bring the change; this is the safety net.
    requeueAt(ENV_RETRY_MS, blocker.reason);
  }
  return { apply, create, delete: deletes, routes, routesFirst, status, statusChanged: !jsonEqual(status, md.status ?? {}), events, ...(requeue ? { requeue } : {}) };
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
  if (stalled?.status === 'True') events.push({ type: 'Warning', reason: stalled.reason, message: stalled.message, notify: stalled.reason === 'RolledBack' ? 'RolledBack' : 'Failed' });
  const ready = changed('Ready');
  if (ready?.status === 'True') events.push({ type: 'Normal', reason: 'Ready', message: ready.message });
  return events;
}

function stripUndefined(o: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(o)) if (v === undefined) delete o[k];
}
