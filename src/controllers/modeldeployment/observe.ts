// observe: what a ModelDeployment reconcile reads, all from the informer caches: the resource, the children it
// controls (by owner uid), and the ProjectEnvironment it references. No writes, no API calls.
import type { ModelDeployment } from '../../api/modeldeployment.ts';
import type { ProjectEnvironment } from '../../api/projectenvironment.ts';
import { byControllerUid, type Informer } from '../../kube/informer.ts';
import { objectKey, Resources, type KubeObject, type ResourceType } from '../../kube/resources.ts';
import type { Manager } from '../../runtime/manager.ts';
import type { Priority } from '../../runtime/work-queue.ts';
import { jsonEqual, onlyStatusChanged } from '../compare.ts';
import type { ChildKind, Observed } from './plan.ts';
import { podForCache, type CachedPod, type PodSummary } from './pods.ts';
import { LABEL_MODEL_DEPLOYMENT, LABEL_REVISION } from './children.ts';

const MANAGED = 'app.kubernetes.io/managed-by=slipway';
const NOT_MANAGED = 'app.kubernetes.io/managed-by!=slipway';
const OWNER_INDEX = 'owner';
const ENV_INDEX = 'environment';
const REVISION_INDEX = 'revision';
const ROUTE_INDEX = 'route';

export const CHILD_RESOURCES: Record<ChildKind, ResourceType> = {
  Deployment: Resources.Deployment,
  Service: Resources.Service,
  CronJob: Resources.CronJob,
  HorizontalPodAutoscaler: Resources.HorizontalPodAutoscaler,
  ControllerRevision: Resources.ControllerRevision,
};

/** The caches a ModelDeployment reconcile reads, and how their changes map to ModelDeployment keys. */
export class ModelDeploymentCaches {
  readonly modelDeployments: Informer<KubeObject>;
  private readonly children: Record<ChildKind, Informer<KubeObject>>;
  /** The names of everything else of those kinds (metadata only): what Slipway must not take. */
  private readonly others: Record<ChildKind, Informer<KubeObject>>;
  private readonly environments: Informer<KubeObject>;
  /** The pods of Slipway's revisions: why a revision is not ready, for its condition. */
  private readonly pods: Informer<CachedPod>;

  constructor(manager: Manager, namespaces: string[] | undefined) {
    const ns = namespaces?.length ? { namespaces } : {};
    this.modelDeployments = manager.informer(Resources.ModelDeployment, { ...ns, indexers: { [ENV_INDEX]: environmentKeys, [ROUTE_INDEX]: routeKeys } });
    // Only what Slipway manages is cached: a cluster's other Deployments and Services cost nothing.
    const child = (r: ResourceType): Informer<KubeObject> => manager.informer(r, { ...ns, labelSelector: MANAGED, indexers: { [OWNER_INDEX]: byControllerUid } });
    this.children = {
      Deployment: child(Resources.Deployment),
      Service: child(Resources.Service),
      CronJob: child(Resources.CronJob),
      HorizontalPodAutoscaler: child(Resources.HorizontalPodAutoscaler),
      ControllerRevision: child(Resources.ControllerRevision),
    };
    const other = (r: ResourceType): Informer<KubeObject> => manager.informer(r, { ...ns, labelSelector: NOT_MANAGED, metadataOnly: true });
    this.others = {
      Deployment: other(Resources.Deployment),
      Service: other(Resources.Service),
      CronJob: other(Resources.CronJob),
      HorizontalPodAutoscaler: other(Resources.HorizontalPodAutoscaler),
      ControllerRevision: other(Resources.ControllerRevision),
    };
    this.environments = manager.informer(Resources.ProjectEnvironment, ns);
    this.pods = manager.informer<CachedPod>(Resources.Pod, { ...ns, labelSelector: MANAGED, indexers: { [REVISION_INDEX]: revisionKeys }, transform: podForCache });
  }

  /**
   * Calls `enqueue` with the key of every ModelDeployment a change concerns: keys, never events. A new
   * ModelDeployment (created, or listed when the cache fills) is normal priority; a change to one already there —
   * its spec, its children, its pods, its environment — is high: it is mid-flight, and must not wait behind a
   * first pass over thousands. A change of status alone (the controller's own write) is not a reason to plan
   * again; `statusOnly` hears of it (a reconcile may be waiting for the cache to show it).
   */
  watch(enqueue: (key: string, priority: Priority) => void, statusOnly: (key: string) => void = () => {}): void {
    this.modelDeployments.on((e) => {
      if (e.type !== 'MODIFIED' || !e.old || !onlyStatusChanged(e.old, e.obj)) enqueue(objectKey(e.obj), e.type === 'MODIFIED' ? 'high' : 'normal');
      else statusOnly(objectKey(e.obj));
    });
    for (const informer of Object.values(this.children)) {
      informer.on((e) => {
        for (const ref of e.obj.metadata.ownerReferences ?? []) {
          if (ref.controller && ref.kind === 'ModelDeployment') enqueue(`${e.obj.metadata.namespace}/${ref.name}`, 'high');
        }
      });
    }
    this.pods.on((e) => {
      // Only a change in what the condition says (ready, or why not) concerns the ModelDeployment.
      if (e.type === 'MODIFIED' && e.old && jsonEqual(e.old.summary, e.obj.summary)) return;
      const md = e.obj.metadata.labels?.[LABEL_MODEL_DEPLOYMENT];
      if (md) enqueue(`${e.obj.metadata.namespace}/${md}`, 'high');
    });
    this.environments.on((e) => {
      for (const md of this.modelDeployments.store.byIndex(ENV_INDEX, objectKey(e.obj))) enqueue(objectKey(md), 'high');
    });
  }

  /** The object of that kind and name, from the caches (Slipway's whole children, or others' metadata). */
  lookup(kind: ChildKind, namespace: string, name: string): KubeObject | undefined {
    const key = `${namespace}/${name}`;
    return this.children[kind].store.get(key) ?? this.others[kind].store.get(key);
  }

  get(key: string): KubeObject | undefined {
    return this.modelDeployments.store.get(key);
  }

  /**
   * Another ModelDeployment that names the same routing object and was created first (then by name): the route
   * is its. Undefined when this one is the first.
   */
  routeClaimant(md: KubeObject): string | undefined {
    const key = routeKeys(md)[0];
    if (!key) return undefined;
    const order = (m: KubeObject): string => `${m.metadata.creationTimestamp ?? ''}/${m.metadata.name}`;
    const first = this.modelDeployments.store.byIndex(ROUTE_INDEX, key).sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))[0];
    return first && first.metadata.uid !== md.metadata.uid ? first.metadata.name : undefined;
  }

  /** What the pods of one revision of a ModelDeployment report. */
  podsOf(namespace: string, name: string, revision: string): PodSummary[] {
    return this.pods.store.byIndex(REVISION_INDEX, `${namespace}/${name}/${revision}`).map((p) => p.summary);
  }

  observe(md: ModelDeployment): Observed {
    const uid = md.metadata.uid ?? '';
    const owned = (kind: ChildKind): KubeObject[] => this.children[kind].store.byIndex(OWNER_INDEX, uid);
    const observed: Observed = {
      md,
      deployments: owned('Deployment'),
      services: owned('Service'),
      cronJobs: owned('CronJob'),
      hpas: owned('HorizontalPodAutoscaler'),
      revisions: owned('ControllerRevision'),
      occupant: (kind, name) => this.lookup(kind, md.metadata.namespace ?? 'default', name),
      pods: (revision) => this.podsOf(md.metadata.namespace ?? 'default', md.metadata.name, revision),
    };
    const ref = md.spec.environmentRef;
    if (ref) {
      const env = this.environments.store.get(`${md.metadata.namespace}/${ref.name}`) as ProjectEnvironment | undefined;
      observed.environment = env
        ? {
            found: true,
            // A prebuilt environment is pinned by digest in its spec; a built one reports its image in status
            // (the last one built, while a newer build runs or after one failed).
            image: env.spec.image ?? env.status?.image,
            phase: env.status?.phase,
            message: env.status?.conditions?.find((c) => c.type === 'Ready')?.message,
          }
        : { found: false };
    }
    return observed;
  }
}


function environmentKeys(o: KubeObject): string[] {
  const ref = (o as { spec?: { environmentRef?: { name?: string } } }).spec?.environmentRef?.name;
  return ref ? [`${o.metadata.namespace}/${ref}`] : [];
}

function routeKeys(o: KubeObject): string[] {
  const tr = (o as { spec?: { rollout?: { trafficRouting?: { gatewayAPI?: { httpRoute?: string }; istio?: { virtualService?: string } } } } }).spec?.rollout?.trafficRouting;
  if (tr?.gatewayAPI?.httpRoute) return [`${o.metadata.namespace}/HTTPRoute/${tr.gatewayAPI.httpRoute}`];
  if (tr?.istio?.virtualService) return [`${o.metadata.namespace}/VirtualService/${tr.istio.virtualService}`];
  return [];
}

function revisionKeys(o: KubeObject): string[] {
  const labels = o.metadata.labels ?? {};
  const md = labels[LABEL_MODEL_DEPLOYMENT];
  const revision = labels[LABEL_REVISION];
  return md && revision ? [`${o.metadata.namespace}/${md}/${revision}`] : [];
}
