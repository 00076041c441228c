// The ModelDeployment controller: watches ModelDeployments, their children and ProjectEnvironments, and for each
// key observes (from the caches), plans (pure), and acts (server-side apply, deletes, status, Events).
import { modelDeployment, type ModelDeployment } from '../../api/modeldeployment.ts';
import type { ProjectEnvironment } from '../../api/projectenvironment.ts';
import type { KubeClient } from '../../kube/client.ts';
import { classify, isNotFound, KubeApiError } from '../../kube/errors.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { byControllerUid, type Informer } from '../../kube/informer.ts';
import { objectKey, Resources, type KubeObject, type ResourceType } from '../../kube/resources.ts';
import { Controller, type ReconcileResult, type Reconciler } from '../../runtime/controller.ts';
import { errorMessage, type Logger } from '../../runtime/log.ts';
import type { Manager } from '../../runtime/manager.ts';
import { mergeConditions } from '../conditions.ts';
import { plan, type ChildKind, type Observed, type Plan } from './plan.ts';

const MANAGED = 'app.kubernetes.io/managed-by=slipway';
const ENV_INDEX = 'environment';

const CHILD_RESOURCES: Record<ChildKind, ResourceType> = {
  Deployment: Resources.Deployment,
  Service: Resources.Service,
  CronJob: Resources.CronJob,
  HorizontalPodAutoscaler: Resources.HorizontalPodAutoscaler,
};

export interface ModelDeploymentControllerOptions {
  events: EventRecorder;
  workers?: number;
  /** Restrict the controller to one namespace; all namespaces when unset. */
  namespace?: string;
  now?: () => Date;
}

export class ModelDeploymentReconciler implements Reconciler {
  readonly name = 'modeldeployment';
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly events: EventRecorder;
  private readonly now: () => Date;
  readonly mds: Informer<KubeObject>;
  private readonly children: Record<ChildKind, Informer<KubeObject>>;
  private readonly environments: Informer<KubeObject>;

  constructor(manager: Manager, opts: ModelDeploymentControllerOptions) {
    this.client = manager.client;
    this.log = manager.log.child({ controller: this.name });
    this.events = opts.events;
    this.now = opts.now ?? (() => new Date());
    const ns = opts.namespace ? { namespace: opts.namespace } : {};
    this.mds = manager.informer(Resources.ModelDeployment, {
      ...ns,
      indexers: { [ENV_INDEX]: (o) => envIndex(o) },
    });
    const child = (r: ResourceType): Informer<KubeObject> => manager.informer(r, { ...ns, labelSelector: MANAGED, indexers: { owner: byControllerUid } });
    this.children = {
      Deployment: child(Resources.Deployment),
      Service: child(Resources.Service),
      CronJob: child(Resources.CronJob),
      HorizontalPodAutoscaler: child(Resources.HorizontalPodAutoscaler),
    };
    this.environments = manager.informer(Resources.ProjectEnvironment, ns);
  }

  /** Wires the watches to a controller's queue: keys, never events. */
  register(controller: Controller): void {
    this.mds.on((e) => controller.enqueue(objectKey(e.obj)));
    for (const informer of Object.values(this.children)) {
      informer.on((e) => {
        for (const ref of e.obj.metadata.ownerReferences ?? []) {
          if (ref.controller && ref.kind === 'ModelDeployment') controller.enqueue(`${e.obj.metadata.namespace}/${ref.name}`);
        }
      });
    }
    this.environments.on((e) => {
      for (const md of this.mds.store.byIndex(ENV_INDEX, objectKey(e.obj))) controller.enqueue(objectKey(md));
    });
  }

  observe(md: ModelDeployment): Observed {
    const uid = md.metadata.uid ?? '';
    const owned = (kind: ChildKind): KubeObject[] => this.children[kind].store.byIndex('owner', uid);
    const observed: Observed = {
      md,
      deployments: owned('Deployment'),
      services: owned('Service'),
      cronJobs: owned('CronJob'),
      hpas: owned('HorizontalPodAutoscaler'),
    };
    const ref = md.spec.environmentRef;
    if (ref) {
      const env = this.environments.store.get(`${md.metadata.namespace}/${ref.name}`) as ProjectEnvironment | undefined;
      observed.environment = env
        ? { found: true, image: env.status?.image ?? env.spec.image, phase: env.status?.phase, message: env.status?.conditions?.find((c) => c.type === 'Ready')?.message }
        : { found: false };
    }
    return observed;
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const raw = this.mds.store.get(key);
    if (!raw) return undefined; // deleted: the garbage collector removes the children
    const parsed = modelDeployment.safeParse(raw);
    if (!parsed.success) {
      // The CRD schema should make this impossible; a hand-installed older CRD does not.
      await this.writeFailure(raw as ModelDeployment, 'InvalidSpec', `the spec does not match the ModelDeployment schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      return undefined;
    }
    const md = parsed.data;
    const p = plan(this.observe(md), this.now());
    await this.act(md, p);
    return p.requeue ? { requeueAfterMs: p.requeue.afterMs, reason: p.requeue.reason } : undefined;
  }

  private async act(md: ModelDeployment, p: Plan): Promise<void> {
    for (const obj of p.apply) {
      const resource = CHILD_RESOURCES[obj.kind as ChildKind];
      try {
        await this.client.apply(resource, obj, { force: true });
      } catch (err) {
        if (classify(err) !== 'Terminal') throw err;
        // The API server refuses this child as we build it (quota, policy, validation): a person must act.
        const message = `${obj.kind} ${obj.metadata.name} was refused: ${err instanceof KubeApiError ? err.statusMessage : errorMessage(err)}`;
        await this.writeFailure(md, 'ApplyFailed', message, p);
        throw err;
      }
    }
    for (const child of p.delete) {
      try {
        await this.client.delete(CHILD_RESOURCES[child.kind], md.metadata.namespace, child.name, { uid: child.uid });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (p.statusChanged) await this.writeStatus(md, p.status);
    for (const e of p.events) await this.events.record(md, e);
  }

  private async writeStatus(md: ModelDeployment, status: Plan['status']): Promise<void> {
    await this.client.apply(Resources.ModelDeployment, { metadata: { name: md.metadata.name, namespace: md.metadata.namespace ?? 'default' }, status }, { subresource: 'status', force: true });
  }

  /** Records a failure the planner could not foresee as Stalled, unless the same failure is already recorded. */
  private async writeFailure(md: ModelDeployment, reason: string, message: string, p?: Plan): Promise<void> {
    const previous = md.status?.conditions;
    const stalled = previous?.find((c) => c.type === 'Stalled');
    if (stalled?.status === 'True' && stalled.reason === reason && stalled.message === message) return;
    const conditions = mergeConditions(
      previous,
      [
        { type: 'Ready', status: 'False', reason, message },
        { type: 'Reconciling', status: 'False', reason: 'Stalled', message: 'reconciliation is stalled: see the Stalled condition' },
        { type: 'Stalled', status: 'True', reason, message },
        ...(p?.status.conditions?.filter((c) => c.type === 'Available') ?? previous?.filter((c) => c.type === 'Available') ?? []),
      ],
      md.metadata.generation,
      this.now(),
    );
    this.log.warn({ key: objectKey(md), reason, message }, 'stalled');
    await this.writeStatus(md, { ...(p?.status ?? md.status ?? {}), observedGeneration: md.metadata.generation, phase: 'Failed', conditions });
    await this.events.record(md, { type: 'Warning', reason, message });
  }
}

function envIndex(o: KubeObject): string[] {
  const ref = (o as { spec?: { environmentRef?: { name?: string } } }).spec?.environmentRef?.name;
  return ref ? [`${o.metadata.namespace}/${ref}`] : [];
}

export function addModelDeploymentController(manager: Manager, opts: ModelDeploymentControllerOptions): Controller {
  const reconciler = new ModelDeploymentReconciler(manager, opts);
  const controller = new Controller(reconciler, { workers: opts.workers ?? 4, metrics: manager.metrics, logger: manager.log });
  reconciler.register(controller);
  manager.addController(controller, reconciler.mds);
  return controller;
}
