// The objects a ModelDeployment owns, as full server-side-apply configurations: one Deployment per live
// revision, the Service, the batch-scoring CronJob, the HPA. Pure functions of the spec and the revision.
import { createHash } from 'node:crypto';
import { API_VERSION } from '../../api/common.ts';
import type { ModelDeployment, ModelDeploymentSpec } from '../../api/modeldeployment.ts';
import { canonicalResources } from '../../kube/quantity.ts';
import { canonicalJson } from '../compare.ts';
import { DEFAULT_STORAGE_INITIALIZER_IMAGE, runtimeParts, type RuntimeParts } from './runtimes.ts';
import type { KubeObject, OwnerReference } from '../../kube/resources.ts';

export const LABEL_MODEL_DEPLOYMENT = 'slipway.dev/model-deployment';
export const LABEL_REVISION = 'slipway.dev/revision';
export const LABEL_ROLE = 'slipway.dev/role';
export const ANNOTATION_MODEL_VERSION = 'slipway.dev/model-version';
export const CONTAINER_NAME = 'model-server';

export type Role = 'stable' | 'canary';

/** The inputs pods of one revision are rendered from. Scale (replicas, HPA) is not in it. */
export interface RevisionTemplate {
  model: ModelDeploymentSpec['model'];
  image: string;
  runtime: ModelDeploymentSpec['runtime'];
  resources: ModelDeploymentSpec['resources'];
  /** The image that fetches the model (mlserver preset): the spec's, or the controller's default. */
  storageInitializerImage: string;
}

export function revisionTemplate(spec: ModelDeploymentSpec, image: string, defaultStorageInitializerImage = DEFAULT_STORAGE_INITIALIZER_IMAGE): RevisionTemplate {
  return {
    model: spec.model,
    image,
    runtime: spec.runtime,
    resources: spec.resources,
    storageInitializerImage: spec.runtime.storageInitializerImage ?? defaultStorageInitializerImage,
  };
}

/** What the runtime preset adds to the pods of a revision (nothing for `custom`). */
function partsOf(t: RevisionTemplate): RuntimeParts {
  return runtimeParts({ preset: t.runtime.preset, model: t.model, port: t.runtime.port, storageInitializerImage: t.storageInitializerImage });
}

/**
 * 10 hex characters of the hash of what the revision's pods run: the pod template as rendered, with the revision
 * itself left blank. A spec field that does not reach the pods (a new defaulted field after an upgrade of
 * Slipway, scale, rollout steps) leaves the revision as it is; quantities are in normal form, so `0.5` and
 * `500m` CPU are the same revision.
 */
export function revisionOf(md: ModelDeployment, t: RevisionTemplate): string {
  return createHash('sha256').update(canonicalJson(podTemplate(md, t, ''))).digest('hex').slice(0, 10);
}

export function ownerReference(md: ModelDeployment): OwnerReference {
  return { apiVersion: API_VERSION, kind: 'ModelDeployment', name: md.metadata.name, uid: md.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/**
 * The replica count of each revision: spec.replicas, which the HPA writes through the ModelDeployment's scale
 * subresource when autoscaling is on, kept within the autoscaling bounds (the HPA has not acted yet at first).
 */
export function desiredReplicas(md: ModelDeployment): number {
  const a = md.spec.autoscaling;
  return a ? Math.min(a.maxReplicas, Math.max(a.minReplicas, md.spec.replicas)) : md.spec.replicas;
}

/** The label selector of the serving revision's pods, for the scale subresource (HPA pod metrics). */
export function podSelector(md: ModelDeployment, revision: string): string {
  return `${LABEL_MODEL_DEPLOYMENT}=${md.metadata.name},${LABEL_REVISION}=${revision}`;
}

export const deploymentName = (md: ModelDeployment, revision: string): string => `${md.metadata.name}-${revision}`;
export const batchName = (md: ModelDeployment): string => `${md.metadata.name}-batch`;

function commonLabels(md: ModelDeployment): Record<string, string> {
  return {
    'app.kubernetes.io/name': md.metadata.name,
    'app.kubernetes.io/component': 'model-server',
    'app.kubernetes.io/managed-by': 'slipway',
    [LABEL_MODEL_DEPLOYMENT]: md.metadata.name,
  };
}

function meta(md: ModelDeployment, name: string, labels: Record<string, string>, annotations?: Record<string, string>): KubeObject['metadata'] {
  return {
    name,
    namespace: md.metadata.namespace ?? 'default',
    labels,
    ...(annotations ? { annotations } : {}),
    ownerReferences: [ownerReference(md)],
  };
}

export function probePaths(t: RevisionTemplate): { readiness: string; liveness: string } {
  switch (t.runtime.protocol) {
    case 'v2': {
      // MLServer answers /v2/health/ready even when the model failed to load: its readiness is the model's.
      const ready = t.runtime.preset === 'mlserver' ? `/v2/models/${t.model.name}/ready` : '/v2/health/ready';
      return { readiness: t.runtime.readinessPath ?? ready, liveness: t.runtime.livenessPath ?? '/v2/health/live' };
    }
    case 'v1':
      return { readiness: t.runtime.readinessPath ?? `/v1/models/${t.model.name}`, liveness: t.runtime.livenessPath ?? `/v1/models/${t.model.name}` };
    case 'custom': {
      const readiness = t.runtime.readinessPath ?? '/';
      return { readiness, liveness: t.runtime.livenessPath ?? readiness };
    }
  }
}

/** What the runtime is told about the model it serves (the same for the server and the batch job). */
export function modelEnv(t: RevisionTemplate, revision: string): { name: string; value?: string }[] {
  return [
    { name: 'SLIPWAY_MODEL_NAME', value: t.model.name },
    { name: 'SLIPWAY_MODEL_VERSION', value: t.model.version },
    { name: 'SLIPWAY_MODEL_URI', value: t.model.uri },
    { name: 'SLIPWAY_MODEL_FORMAT', value: t.model.format },
    { name: 'SLIPWAY_PROTOCOL', value: t.runtime.protocol },
    { name: 'SLIPWAY_PORT', value: String(t.runtime.port) },
    { name: 'SLIPWAY_REVISION', value: revision },
    // An empty value is stored as no value at all: render it the way the API server keeps it.
    ...(t.runtime.env ?? []).map((e) => (e.value ? { name: e.name, value: e.value } : { name: e.name })),
  ];
}

/** Lists the API server drops when empty are left out rather than sent empty. */
const nonEmpty = <T>(list: T[] | undefined): T[] | undefined => (list && list.length > 0 ? list : undefined);

/** The pod template of a revision's Deployment. */
export function podTemplate(md: ModelDeployment, t: RevisionTemplate, revision: string): Record<string, unknown> {
  const podLabels = { ...commonLabels(md), [LABEL_REVISION]: revision };
  const probes = probePaths(t);
  const probe = (path: string, failureThreshold: number): Record<string, unknown> => ({
    httpGet: { path, port: 'http' },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold,
  });
  const args = nonEmpty(t.runtime.args);
  const parts = partsOf(t);
  const mounts = nonEmpty(parts.volumeMounts);
  const inits = nonEmpty(parts.initContainers);
  const volumes = nonEmpty(parts.volumes);
  return {
    metadata: { labels: podLabels, annotations: { [ANNOTATION_MODEL_VERSION]: t.model.version, ...parts.annotations } },
    spec: {
      ...(inits ? { initContainers: inits } : {}),
      containers: [
        {
          name: CONTAINER_NAME,
          image: t.image,
          ...(args ? { args } : {}),
          ports: [{ name: 'http', containerPort: t.runtime.port, protocol: 'TCP' }, ...parts.ports],
          env: [...modelEnv(t, revision), ...parts.env],
          ...(mounts ? { volumeMounts: mounts } : {}),
          readinessProbe: probe(probes.readiness, 3),
          livenessProbe: { ...probe(probes.liveness, 6), initialDelaySeconds: 10 },
          ...(t.resources ? { resources: canonicalResources(t.resources) } : {}),
        },
      ],
      ...(volumes ? { volumes } : {}),
    },
  };
}

/** A revision's Deployment around a given pod template: a new one, or one kept in a ControllerRevision. */
export function deploymentOf(md: ModelDeployment, revision: string, role: Role, template: Record<string, unknown>, modelVersion: string, replicas = desiredReplicas(md)): KubeObject {
  const labels = { ...commonLabels(md), [LABEL_REVISION]: revision, [LABEL_ROLE]: role };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(md, deploymentName(md, revision), labels, { [ANNOTATION_MODEL_VERSION]: modelVersion }),
    spec: {
      // Always ours: an HPA scales the ModelDeployment (its scale subresource), and the count flows from there.
      replicas,
      revisionHistoryLimit: 2,
      progressDeadlineSeconds: md.spec.progressDeadlineSeconds,
      selector: { matchLabels: { [LABEL_MODEL_DEPLOYMENT]: md.metadata.name, [LABEL_REVISION]: revision } },
      template,
    },
  };
}

/** What a ControllerRevision of Slipway's keeps: the pod template as rendered, and what it serves. */
export interface KeptRevision {
  podTemplate: Record<string, unknown>;
  modelVersion: string;
  image: string;
  /** spec.model as it was (what a GitOps write-back puts back); absent in revisions kept by older versions. */
  model?: Record<string, unknown>;
}

/**
 * The record of a revision, as a StatefulSet keeps its ControllerRevisions: the pod template exactly as it was
 * rendered, so the revision's Deployment can be rendered again at any scale (a stable revision during a rollout,
 * a rollback) whatever the spec says now. `number` orders revisions, oldest first. Immutable once created.
 */
export function desiredControllerRevision(md: ModelDeployment, t: RevisionTemplate, revision: string, number: number, rendered = podTemplate(md, t, revision)): KubeObject {
  const data: KeptRevision = { podTemplate: rendered, modelVersion: t.model.version, image: t.image, model: { ...t.model } };
  return {
    apiVersion: 'apps/v1',
    kind: 'ControllerRevision',
    metadata: meta(md, deploymentName(md, revision), { ...commonLabels(md), [LABEL_REVISION]: revision }, { [ANNOTATION_MODEL_VERSION]: t.model.version }),
    data,
    revision: number,
  };
}

export const canaryServiceName = (md: ModelDeployment): string => `${md.metadata.name}-canary`;

/**
 * The Service `<name>`: the stable revision's pods; or, with `allRevisions` (a replica-ratio rollout), the pods of
 * every running revision of the ModelDeployment, so that each side's share of requests is its share of the pods.
 */
export function desiredService(md: ModelDeployment, stableRevision: string, port: number, allRevisions = false): KubeObject {
  return serviceFor(md, md.metadata.name, allRevisions ? undefined : stableRevision, port);
}

/** The Service `<name>-canary` a traffic router sends the canary's share to: the canary's pods, or stable's when there is no canary. */
export function desiredCanaryService(md: ModelDeployment, revision: string, port: number): KubeObject {
  return serviceFor(md, canaryServiceName(md), revision, port);
}

function serviceFor(md: ModelDeployment, name: string, revision: string | undefined, port: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(md, name, commonLabels(md)),
    spec: {
      type: 'ClusterIP',
      selector: { [LABEL_MODEL_DEPLOYMENT]: md.metadata.name, ...(revision ? { [LABEL_REVISION]: revision } : {}) },
      ports: [{ name: 'http', port: 80, targetPort: port, protocol: 'TCP' }],
    },
  };
}

export function desiredCronJob(md: ModelDeployment, t: RevisionTemplate, revision: string): KubeObject | undefined {
  const batch = md.spec.batch;
  if (!batch) return undefined;
  const labels = { ...commonLabels(md), 'app.kubernetes.io/component': 'batch-scoring', [LABEL_REVISION]: revision };
  const batchResources = batch.resources ?? t.resources;
  // The batch scorer reads the same model the server does, fetched the same way.
  const parts = partsOf(t);
  const mounts = nonEmpty(parts.volumeMounts);
  const inits = nonEmpty(parts.initContainers);
  const volumes = nonEmpty(parts.volumes);
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: meta(md, batchName(md), labels, { [ANNOTATION_MODEL_VERSION]: t.model.version }),
    spec: {
      schedule: batch.schedule,
      ...(batch.timeZone ? { timeZone: batch.timeZone } : {}),
      suspend: batch.suspend,
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: 2,
          template: {
            metadata: { labels },
            spec: {
              restartPolicy: 'Never',
              ...(inits ? { initContainers: inits } : {}),
              ...(volumes ? { volumes } : {}),
              containers: [
                {
                  name: 'batch-scorer',
                  image: t.image,
                  ...(nonEmpty(batch.args) ? { args: batch.args } : {}),
                  env: [...modelEnv(t, revision), { name: 'SLIPWAY_MODE', value: 'batch' }],
                  ...(mounts ? { volumeMounts: mounts } : {}),
                  ...(batchResources ? { resources: canonicalResources(batchResources) } : {}),
                },
              ],
            },
          },
        },
      },
    },
  };
}

/** The HPA scales the ModelDeployment itself, so every revision (stable and new) gets the count it decides. */
export function desiredHpa(md: ModelDeployment): KubeObject | undefined {
  const a = md.spec.autoscaling;
  if (!a) return undefined;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta(md, md.metadata.name, commonLabels(md)),
    spec: {
      scaleTargetRef: { apiVersion: API_VERSION, kind: 'ModelDeployment', name: md.metadata.name },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.targetCPUUtilizationPercentage } } }],
    },
  };
}
