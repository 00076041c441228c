// The ProjectEnvironment controller: for each key, observe (caches of environments, their build Jobs and those
// Jobs' pods) → plan (pure) → act: create the build Job, write the status over the version it was planned from,
// delete the Jobs whose result is recorded or whose content is not wanted any more, record Events.
import { projectEnvironment, type ProjectEnvironment } from '../../api/projectenvironment.ts';
import type { BuildConfig } from '../../environments/build-job.ts';
import { ENVIRONMENT_LABEL } from '../../environments/build-job.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { classify, isAlreadyExists, isNotFound, KubeApiError } from '../../kube/errors.ts';
import type { Informer } from '../../kube/informer.ts';
import { objectKey, Resources, type KubeObject } from '../../kube/resources.ts';
import { Controller, type ReconcileResult, type Reconciler } from '../../runtime/controller.ts';
import { errorMessage, type Logger } from '../../runtime/log.ts';
import type { Manager } from '../../runtime/manager.ts';
import { onlyStatusChanged } from '../compare.ts';
import { plan, refusedStatus, type JobLike, type PodLike } from './plan.ts';
import { apiServerFailure, STALL_AFTER_FAILURES } from '../conditions.ts';

/** Build Jobs and their pods carry this label (and the environment's name): one list-watch each, few objects. */
const BUILD_SELECTOR = 'app.kubernetes.io/component=environment-build';
const BY_ENVIRONMENT = 'environment';
const environmentKeys = (o: KubeObject): string[] => {
  const env = o.metadata.labels?.[ENVIRONMENT_LABEL];
  return env ? [`${o.metadata.namespace}/${env}`] : [];
};

export interface ProjectEnvironmentControllerOptions {
  events: EventRecorder;
  /** How builds run; without it, built environments report BuilderNotConfigured (prebuilt ones still resolve). */
  build?: BuildConfig | undefined;
  namespaces?: string[];
  workers?: number;
  now?: () => Date;
}

export class ProjectEnvironmentReconciler implements Reconciler {
  readonly name = 'projectenvironment';
  readonly environments: Informer<KubeObject>;
  private readonly jobs: Informer<KubeObject>;
  private readonly pods: Informer<KubeObject>;
  private readonly manager: Manager;
  private readonly opts: ProjectEnvironmentControllerOptions;
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(manager: Manager, opts: ProjectEnvironmentControllerOptions) {
    this.manager = manager;
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
    this.log = manager.log.child({ controller: this.name });
    const ns = opts.namespaces?.length ? { namespaces: opts.namespaces } : {};
    this.environments = manager.informer(Resources.ProjectEnvironment, ns);
    this.jobs = manager.informer(Resources.Job, { ...ns, labelSelector: BUILD_SELECTOR, indexers: { [BY_ENVIRONMENT]: environmentKeys } });
    this.pods = manager.informer(Resources.Pod, { ...ns, labelSelector: BUILD_SELECTOR, indexers: { [BY_ENVIRONMENT]: environmentKeys } });
  }

  watch(enqueue: (key: string) => void): void {
    this.environments.on((e) => {
      if (e.type !== 'MODIFIED' || !e.old || !onlyStatusChanged(e.old, e.obj)) enqueue(objectKey(e.obj));
    });
    for (const informer of [this.jobs, this.pods]) informer.on((e) => environmentKeys(e.obj).forEach(enqueue));
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const raw = this.environments.store.get(key);
    if (!raw) return undefined; // deleted: the garbage collector takes its Jobs
    const parsed = projectEnvironment.safeParse(raw);
    if (!parsed.success) {
      this.log.warn({ key, issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'a ProjectEnvironment that does not match the schema (an older CRD?)');
      return undefined;
    }
    const pe = parsed.data;
    const uid = pe.metadata.uid;
    const owned = (o: KubeObject): boolean => (o.metadata.ownerReferences ?? []).some((r) => r.uid === uid);
    const jobs = this.jobs.store.byIndex(BY_ENVIRONMENT, key).filter(owned) as JobLike[];
    const names = new Set(jobs.map((j) => j.metadata.name));
    const pods = this.pods.store.byIndex(BY_ENVIRONMENT, key).filter((p) => (p.metadata.ownerReferences ?? []).some((r) => r.kind === 'Job' && names.has(r.name))) as PodLike[];
    const p = plan({ pe, jobs, pods, build: this.opts.build }, this.now());
    await this.act(pe, p);
    return p.requeue ? { requeueAfterMs: p.requeue.afterMs, reason: p.requeue.reason } : undefined;
  }

  private async act(pe: ProjectEnvironment, p: ReturnType<typeof plan>): Promise<void> {
    const client = this.manager.client;
    const ns = pe.metadata.namespace ?? 'default';
    if (p.create) {
      const job = p.create;
      await client.create(Resources.Job, job).catch(async (err: unknown) => {
        if (isAlreadyExists(err)) return; // created by a reconcile that did not get to write its status
        if (classify(err) === 'Terminal') {
          // Refused as built (a quota, an admission policy): retrying alone will not help, a person must act.
          await this.recordFailure(pe, 'BuildJobRefused', `the build Job ${job.metadata.name} was refused: ${err instanceof KubeApiError ? err.statusMessage : errorMessage(err)}`);
        }
        throw err; // retried with backoff: a quota may be raised, a policy changed
      });
    }
    if (p.statusChanged) await this.writeStatus(pe, p.status);
    if (p.finished) {
      // Counted once: the plan reports an outcome only until a status that records it is written (just above).
      this.manager.metrics.environmentBuilds.inc({ namespace: ns, name: pe.metadata.name, result: p.finished.result });
      if (p.finished.seconds !== undefined) this.manager.metrics.environmentBuildDuration.observe({ result: p.finished.result }, p.finished.seconds);
    }
    // Only once the status holds the result: a crash before this line builds nothing twice.
    for (const job of p.delete) {
      await client.delete(Resources.Job, ns, job.name, { uid: job.uid, propagationPolicy: 'Background' }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    for (const e of p.events) await this.opts.events.record(pe, e);
  }

  /** The status, written only over the version of the environment it was planned from (a conflict plans again). */
  private async writeStatus(pe: ProjectEnvironment, status: ReturnType<typeof plan>['status']): Promise<void> {
    const metadata = { name: pe.metadata.name, namespace: pe.metadata.namespace ?? 'default', ...(pe.metadata.resourceVersion ? { resourceVersion: pe.metadata.resourceVersion } : {}) };
    await this.manager.client.apply(Resources.ProjectEnvironment, { metadata, status }, { subresource: 'status', force: true });
  }

  /** A failure the planner could not foresee: Failed and Stalled with the API server's words, and a Warning, once. */
  private async recordFailure(pe: ProjectEnvironment, reason: string, message: string): Promise<void> {
    const status = refusedStatus(pe, reason, message, this.now());
    if (!status) return;
    await this.writeStatus(pe, status);
    await this.opts.events.record(pe, { type: 'Warning', reason, message });
  }

  /**
   * Retries back off on their own; after a few in a row the user is told, with the API server's words, instead of
   * the environment saying Building while nothing happens. Refusals are recorded at once by act().
   */
  async failed(key: string, err: unknown, failures: number): Promise<void> {
    if (failures < STALL_AFTER_FAILURES || classify(err) === 'Terminal') return;
    const parsed = projectEnvironment.safeParse(this.environments.store.get(key));
    if (!parsed.success) return;
    await this.recordFailure(parsed.data, 'ApiServerError', apiServerFailure(err));
  }
}

export function addProjectEnvironmentController(manager: Manager, opts: ProjectEnvironmentControllerOptions): Controller {
  const reconciler = new ProjectEnvironmentReconciler(manager, opts);
  const controller = new Controller(reconciler, { workers: opts.workers ?? 2, metrics: manager.metrics, logger: manager.log });
  reconciler.watch((key) => controller.enqueue(key));
  manager.addController(controller, reconciler.environments);
  return controller;
}
