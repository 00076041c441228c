// The ProjectEnvironment planner: from the environment, its build Jobs and their pods (all from caches), what its
// status is and which Job to create or delete. Pure: no I/O, the time passed in.
//   prebuilt (spec.image)         served as it is
//   built, content hash in history  served from that image again: no build (a package removed rolls back)
//   built, new content hash       one Job builds it; its pod's termination message reports the image, lock and
//                                 SBOM; the image joins the history (bounded) and is served. A failed build
//                                 keeps the last good image served and says why (Ready False, Stalled True).
import type { ProjectEnvironment } from '../../api/projectenvironment.ts';
import type { Condition } from '../../api/common.ts';
import type { EventSpec } from '../../kube/events.ts';
import type { KubeObject } from '../../kube/resources.ts';
import { rfc3339 } from '../../kube/time.ts';
import { buildJob, buildJobName, BUILD_CONTAINER, HASH_LABEL, hashLabel, type BuildConfig } from '../../environments/build-job.ts';
import { buildInputs, contentHash, type BuildInputs } from '../../environments/content.ts';
import { parseBuildReport, type BuildReport } from '../../environments/report.ts';
import { jsonEqual } from '../compare.ts';
import { mergeConditions, type ConditionInput } from '../conditions.ts';

export type ProjectEnvironmentStatus = NonNullable<ProjectEnvironment['status']>;
type Built = NonNullable<ProjectEnvironmentStatus['history']>[number];

export const DEFAULT_HISTORY_LIMIT = 10;
/** How soon a Job that finished is looked at again when its pod's report is not in the cache yet. */
const REPORT_WAIT_MS = 2000;

export interface JobLike extends KubeObject {
  spec?: { backoffLimit?: number };
  status?: { active?: number; failed?: number; succeeded?: number; startTime?: string; completionTime?: string; conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] };
}

export interface PodLike extends KubeObject {
  status?: {
    phase?: string;
    containerStatuses?: { name: string; state?: { terminated?: { exitCode: number; message?: string; reason?: string } } }[];
  };
}

export interface Observed {
  pe: ProjectEnvironment;
  /** The environment's build Jobs (owned by it). */
  jobs: JobLike[];
  /** Their pods. */
  pods: PodLike[];
  /** How builds run; undefined when this controller cannot build (no builder image configured). */
  build: BuildConfig | undefined;
}

export interface Plan {
  status: ProjectEnvironmentStatus;
  statusChanged: boolean;
  create?: KubeObject;
  /** Build Jobs to delete: done (their result is in status) or superseded (the spec moved on). */
  delete: { name: string; uid: string }[];
  events: EventSpec[];
  /** A build's outcome, planned once (with its Built or BuildFailed Event): for the build metrics. */
  finished?: BuildOutcome;
  requeue?: { afterMs: number; reason: string };
}

export interface BuildOutcome {
  /** `reused`: the registry already had the image for this content; nothing was built. */
  result: 'built' | 'reused' | 'failed';
  /** From the Job's start to its completion or failure, when the Job says both. */
  seconds?: number;
}

/** How long a finished Job ran, by its own status: start to completion, or to its Failed condition. */
function jobSeconds(j: JobLike): number | undefined {
  const start = Date.parse(j.status?.startTime ?? '');
  const end = Date.parse(j.status?.completionTime ?? j.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True')?.lastTransitionTime ?? '');
  return Number.isFinite(start) && Number.isFinite(end) && end >= start ? (end - start) / 1000 : undefined;
}

const jobCondition = (j: JobLike, type: string): { reason?: string; message?: string } | undefined => j.status?.conditions?.find((c) => c.type === type && c.status === 'True');

/** The pods of a Job, newest first. */
function podsOf(pods: PodLike[], job: string): PodLike[] {
  return pods
    .filter((p) => p.metadata.labels?.['job-name'] === job || p.metadata.labels?.['batch.kubernetes.io/job-name'] === job)
    .sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') || b.metadata.name.localeCompare(a.metadata.name));
}

const terminatedOf = (p: PodLike | undefined) => p?.status?.containerStatuses?.find((c) => c.name === BUILD_CONTAINER)?.state?.terminated;

export function plan(o: Observed, now: Date): Plan {
  const { pe } = o;
  const prev = pe.status ?? {};
  const history = prev.history ?? [];
  const events: EventSpec[] = [];
  const del = (jobs: JobLike[]): { name: string; uid: string }[] => jobs.map((j) => ({ name: j.metadata.name, uid: j.metadata.uid ?? '' }));
  let requeue: Plan['requeue'];
  let create: KubeObject | undefined;
  let toDelete: { name: string; uid: string }[];
  let finished: BuildOutcome | undefined;
  const outcome = (result: BuildOutcome['result'], j: JobLike): BuildOutcome => {
    const seconds = jobSeconds(j);
    return { result, ...(seconds !== undefined ? { seconds } : {}) };
  };

  // What is served, and how the conditions read.
  let serving: { image: string; lock?: string[] | undefined; sbom?: string | undefined } | undefined;
  let ready: ConditionInput;
  let stalled: ConditionInput | undefined;
  let phase: ProjectEnvironmentStatus['phase'];
  let hash: string | undefined;
  let build: ProjectEnvironmentStatus['build'];
  let newHistory = history;

  const lastGood = prev.image ? { image: prev.image, lock: prev.lock, sbom: prev.sbom } : undefined;

  if (pe.spec.image) {
    serving = { image: pe.spec.image };
    phase = 'Ready';
    ready = { type: 'Ready', status: 'True', reason: 'Prebuilt', message: `serving the prebuilt image ${pe.spec.image}` };
    toDelete = del(o.jobs);
  } else {
    const inputs = buildInputs(pe.spec);
    if (!inputs) throw new Error('a ProjectEnvironment without spec.image has spec.baseImage and spec.build (CRD rules)');
    const h = contentHash(inputs);
    hash = h;
    const known = history.find((b) => b.hash === h);
    const job = o.jobs.find((j) => j.metadata.labels?.[HASH_LABEL] === hashLabel(h));
    // Builds for any other content are not wanted any more: cancelled if running, cleared if done.
    toDelete = del(o.jobs.filter((j) => j !== job));
    if (known) {
      serving = known;
      phase = 'Ready';
      ready = { type: 'Ready', status: 'True', reason: 'Built', message: `serving ${known.image} (${(known.lock ?? []).length} packages locked)` };
      if (job) toDelete.push(...del([job]));
      if (prev.image && prev.image !== known.image && prev.contentHash !== hash) {
        events.push({ type: 'Normal', reason: 'ImageRestored', message: `serving ${known.image} again: built earlier for this content, nothing rebuilt` });
      }
    } else if (!o.build) {
      serving = lastGood;
      phase = 'Failed';
      ready = { type: 'Ready', status: 'False', reason: 'BuilderNotConfigured', message: 'this controller cannot build environments: it was started without --environment-builder-image (chart value environments.builderImage)' };
      stalled = ready;
    } else if (!job) {
      create = buildJob(pe, inputs, hash, o.build);
      serving = lastGood;
      phase = 'Building';
      build = { hash, job: buildJobName(pe.metadata.name, hash) };
      ready = { type: 'Ready', status: 'False', reason: 'Building', message: building(inputs, build.job) };
      events.push({ type: 'Normal', reason: 'BuildStarted', message: `Job ${build.job} builds content ${hash.slice(0, 12)}: ${packageCount(inputs)} on ${inputs.baseImage}` });
    } else {
      const pods = podsOf(o.pods, job.metadata.name);
      const attempts = job.status?.failed ?? 0;
      build = { hash, job: job.metadata.name, ...(attempts ? { attempts } : {}) };
      const complete = jobCondition(job, 'Complete');
      const failed = jobCondition(job, 'Failed');
      if (complete) {
        const pod = pods.find((p) => p.status?.phase === 'Succeeded');
        const report: BuildReport | undefined = pod ? parseBuildReport(terminatedOf(pod)?.message, inputs.repository) : undefined;
        if (!report) {
          serving = lastGood;
          phase = 'Building';
          ready = { type: 'Ready', status: 'False', reason: 'Building', message: `Job ${job.metadata.name} completed; reading its report` };
          requeue = { afterMs: REPORT_WAIT_MS, reason: 'the build Job completed before its pod\'s status reached the cache' };
        } else if (report.ok) {
          const entry: Built = { hash, image: report.image, lock: report.lock, ...(report.sbom ? { sbom: report.sbom } : {}), ...(report.python ? { python: report.python } : {}), builtAt: rfc3339(now) };
          newHistory = [entry, ...history.filter((h) => h.hash !== hash)].slice(0, pe.spec.historyLimit ?? DEFAULT_HISTORY_LIMIT);
          serving = entry;
          phase = 'Ready';
          build = undefined;
          ready = { type: 'Ready', status: 'True', reason: 'Built', message: `serving ${entry.image} (${report.lock.length} packages locked)` };
          events.push({ type: 'Normal', reason: 'Built', message: `${report.reused ? 'found' : 'built'} ${entry.image} for content ${hash.slice(0, 12)}: ${report.lock.length} packages${report.reused ? ' (already in the registry: not rebuilt)' : ''}` });
          finished = outcome(report.reused ? 'reused' : 'built', job);
          toDelete.push(...del([job]));
        } else {
          ({ serving, phase, ready, stalled } = failure(lastGood, job, report));
          if (prev.phase !== 'Failed' || prev.build?.job !== job.metadata.name) {
            events.push({ type: 'Warning', reason: 'BuildFailed', message: `Job ${job.metadata.name}: ${ready.reason}: ${ready.message}` });
            finished = outcome('failed', job);
          }
        }
      } else if (failed) {
        const report = pods[0] ? parseBuildReport(terminatedOf(pods[0])?.message, inputs.repository) : undefined;
        ({ serving, phase, ready, stalled } = failure(lastGood, job, report && !report.ok ? report : { ok: false, reason: failed.reason ?? 'BuildFailed', message: failed.message ?? 'the build Job failed' }));
        if (prev.phase !== 'Failed' || prev.build?.job !== job.metadata.name) {
          events.push({ type: 'Warning', reason: 'BuildFailed', message: `Job ${job.metadata.name}: ${ready.reason}: ${ready.message}` });
          finished = outcome('failed', job);
        }
      } else {
        serving = lastGood;
        phase = 'Building';
        // A failed attempt that the Job retries: its reason is said while the next one runs.
        const lastFailure = attempts ? pods.map((p) => terminatedOf(p)).find((t) => t && t.exitCode !== 0) : undefined;
        const why = lastFailure ? parseBuildReport(lastFailure.message, inputs.repository) : undefined;
        if (why && !why.ok) build = { ...build, lastFailure: `${why.reason}: ${why.message}`.slice(0, 1024) };
        ready = {
          type: 'Ready',
          status: 'False',
          reason: why && !why.ok ? why.reason : 'Building',
          message: why && !why.ok ? `attempt ${attempts} of Job ${job.metadata.name} failed (${why.message.split('\n').slice(-2).join(' ')}); retrying with back-off` : building(inputs, job.metadata.name),
        };
      }
    }
  }

  const reconciling = phase === 'Building';
  const conditionInputs: ConditionInput[] = [
    ready,
    reconciling
      ? { type: 'Reconciling', status: 'True', reason: ready.reason, message: ready.message }
      : { type: 'Reconciling', status: 'False', reason: stalled ? 'Stalled' : 'Succeeded', message: stalled ? 'reconciliation is stalled: see the Stalled condition' : 'the desired state is reached' },
    stalled ? { type: 'Stalled', status: 'True', reason: stalled.reason, message: stalled.message } : { type: 'Stalled', status: 'False', reason: 'Succeeded', message: 'no errors' },
  ];
  const conditions: Condition[] = mergeConditions(prev.conditions, conditionInputs, pe.metadata.generation, now);
  const status: ProjectEnvironmentStatus = {
    ...(pe.metadata.generation !== undefined ? { observedGeneration: pe.metadata.generation } : {}),
    ...(hash ? { contentHash: hash } : {}),
    ...(serving ? { image: serving.image } : {}),
    ...(serving?.lock ? { lock: serving.lock } : {}),
    ...(serving?.sbom ? { sbom: serving.sbom } : {}),
    phase,
    ...(build ? { build } : {}),
    ...(newHistory.length ? { history: newHistory } : {}),
    conditions,
  };
  if (prev.image !== status.image && status.image && !events.some((e) => e.reason === 'Built' || e.reason === 'ImageRestored')) {
    events.push({ type: 'Normal', reason: 'ImageResolved', message: `serving ${status.image}` });
  }
  return { status, statusChanged: !jsonEqual(status, prev), ...(create ? { create } : {}), delete: toDelete, events, ...(finished ? { finished } : {}), ...(requeue ? { requeue } : {}) };
}

/**
 * The status for a failure found only while acting (the API server refused the build Job, or keeps failing):
 * Ready False and Stalled with the server's words; the last good image is still served. Undefined when exactly
 * this failure is recorded already: a refusal that repeats on every retry writes nothing more.
 */
export function refusedStatus(pe: ProjectEnvironment, reason: string, message: string, now: Date): ProjectEnvironmentStatus | undefined {
  const prev = pe.status ?? {};
  const stalled = prev.conditions?.find((c) => c.type === 'Stalled');
  if (stalled?.status === 'True' && stalled.reason === reason && stalled.message === message) return undefined;
  const keeps = prev.image ? `; ${prev.image} is still served` : '';
  const ready: ConditionInput = { type: 'Ready', status: 'False', reason, message: `${message}${keeps}`.slice(0, 32_000) };
  const conditions = mergeConditions(
    prev.conditions,
    [ready, { type: 'Reconciling', status: 'False', reason: 'Stalled', message: 'reconciliation is stalled: see the Stalled condition' }, { type: 'Stalled', status: 'True', reason, message }],
    pe.metadata.generation,
    now,
  );
  return { ...prev, ...(pe.metadata.generation !== undefined ? { observedGeneration: pe.metadata.generation } : {}), phase: 'Failed', conditions };
}

const building = (inputs: BuildInputs, job: string): string => `building the image for ${packageCount(inputs)} on ${inputs.baseImage} (Job ${job})`;

/** "2 Python requirement(s), 3 R package(s)". */
function packageCount(inputs: BuildInputs): string {
  const parts = [[inputs.pip.length, 'Python requirement(s)'], [inputs.apt.length, 'Debian package(s)'], [inputs.r.length, 'R package(s)']] as const;
  return parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`).join(', ') || 'no packages';
}

function failure(lastGood: { image: string; lock?: string[] | undefined; sbom?: string | undefined } | undefined, job: JobLike, report: Extract<BuildReport, { ok: false }>) {
  const keeps = lastGood ? `; ${lastGood.image} is still served` : '';
  const ready: ConditionInput = { type: 'Ready', status: 'False', reason: report.reason, message: `the build (Job ${job.metadata.name}) failed: ${report.message}${keeps}`.slice(0, 32_000) };
  return { serving: lastGood, phase: 'Failed' as const, ready, stalled: ready };
}
