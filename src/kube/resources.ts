// The resource types Slipway reads and writes, with their REST paths. A fixed table instead of discovery:
// the set is small, known at build time, and a typo fails in a unit test rather than at 3 a.m.

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const apiVersionOf = (r: ResourceType): string => (r.group ? `${r.group}/${r.version}` : r.version);

const rt = (group: string, version: string, kind: string, plural: string, namespaced = true): ResourceType => ({ group, version, kind, plural, namespaced });

export const Resources = {
  Namespace: rt('', 'v1', 'Namespace', 'namespaces', false),
  Service: rt('', 'v1', 'Service', 'services'),
  Event: rt('', 'v1', 'Event', 'events'),
  Pod: rt('', 'v1', 'Pod', 'pods'),
  Secret: rt('', 'v1', 'Secret', 'secrets'),
  Job: rt('batch', 'v1', 'Job', 'jobs'),
  Deployment: rt('apps', 'v1', 'Deployment', 'deployments'),
  ControllerRevision: rt('apps', 'v1', 'ControllerRevision', 'controllerrevisions'),
  CronJob: rt('batch', 'v1', 'CronJob', 'cronjobs'),
  HorizontalPodAutoscaler: rt('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers'),
  Lease: rt('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  ModelDeployment: rt('slipway.dev', 'v1alpha1', 'ModelDeployment', 'modeldeployments'),
  Experiment: rt('slipway.dev', 'v1alpha1', 'Experiment', 'experiments'),
  ProjectEnvironment: rt('slipway.dev', 'v1alpha1', 'ProjectEnvironment', 'projectenvironments'),
} as const satisfies Record<string, ResourceType>;

/** `/api/v1/namespaces/ns/services/name[/sub]` or `/apis/apps/v1/…`; namespace omitted = all namespaces. */
export function resourcePath(r: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/** The minimum every object has, kept raw (as JSON.parse returns it): nothing in the cache is a class instance. */
export interface KubeObject {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  metadata: {
    name: string;
    namespace?: string | undefined;
    uid?: string | undefined;
    resourceVersion?: string | undefined;
    generation?: number | undefined;
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    ownerReferences?: OwnerReference[] | undefined;
    deletionTimestamp?: string | undefined;
    creationTimestamp?: string | undefined;
    /** Cache only: the field manager that wrote the spec last (from managedFields, which the cache drops). */
    specManager?: string | undefined;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export const objectKey = (o: { metadata: { namespace?: string | undefined; name: string } }): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
