// The ProjectEnvironment controller: for each key, observe (caches of environments, their build Jobs and those
// Jobs' pods) → plan (pure) → act: create the build Job, write the status over the version it was planned from,
// delete the Jobs whose result is recorded or whose content is not wanted any more, record Events.
import { projectEnvironment, type ProjectEnvironment } from '../../api/projectenvironment.ts';
import type { BuildConfig } from '../../environments/build-job.ts';
import { ENVIRONMENT_LABEL } from '../../environments/build-job.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { isAlreadyExists, isNotFound } from '../../kube/errors.ts';
import type { Informer } from '../../kube/informer.ts';
import { objectKey, Resources, type KubeObject } from '../../kube/resources.ts';
import { Controller, type ReconcileResult, type Reconciler } from '../../runtime/controller.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Manager } from '../../runtime/manager.ts';
import { onlyStatusChanged } from '../compare.ts';
import { plan, type JobLike, type PodLike } from './plan.ts';

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
      await client.create(Resources.Job, p.create).catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err; // created by a reconcile that did not get to write its status
      });
    }
    if (p.statusChanged) {
      await client.apply(
        Resources.ProjectEnvironment,
        { metadata: { name: pe.metadata.name, namespace: ns, ...(pe.metadata.resourceVersion ? { resourceVersion: pe.metadata.resourceVersion } : {}) }, status: p.status },
        { subresource: 'status', force: true },
      );
    }
    // Only once the status holds the result: a crash before this line builds nothing twice.
    for (const job of p.delete) {
      await client.delete(Resources.Job, ns, job.name, { uid: job.uid, propagationPolicy: 'Background' }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    for (const e of p.events) await this.opts.events.record(pe, e);
  }
}

export function addProjectEnvironmentController(manager: Manager, opts: ProjectEnvironmentControllerOptions): Controller {
  const reconciler = new ProjectEnvironmentReconciler(manager, opts);
  const controller = new Controller(reconciler, { workers: opts.workers ?? 2, metrics: manager.metrics, logger: manager.log });
  reconciler.watch((key) => controller.enqueue(key));
  manager.addController(controller, reconciler.environments);
  return controller;
}
