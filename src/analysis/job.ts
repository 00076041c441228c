// The Kubernetes Job metric provider: a Job the user writes (e.g. an offline backtest of the canary) is run once
// per analysis step; it succeeding is a pass, it failing a failure with the Job's own reason. While it runs the
// measurement waits. The Job is named after the ModelDeployment, the revision, the step and when it began, so a
// reconcile that crashed after creating it finds it again instead of starting a second one; it is owned by the
// ModelDeployment (garbage-collected with it) and kept for `kubectl logs` after the step.
import { createHash } from 'node:crypto';
import type { ModelDeployment } from '../api/modeldeployment.ts';
import { apiVersionOf, Resources, type KubeObject } from '../kube/resources.ts';
import { canaryServiceName, LABEL_MODEL_DEPLOYMENT, LABEL_REVISION, ownerReference } from '../controllers/modeldeployment/children.ts';
import type { MetricSpec, MetricValue } from './judge.ts';

export const LABEL_ANALYSIS_METRIC = 'slipway.dev/analysis-metric';

export interface JobStep {
  canary: string;
  stable: string;
  step: number;
  stepStartedAt: string;
}

export function analysisJobName(md: ModelDeployment, metric: string, s: JobStep): string {
  const hash = createHash('sha256').update([md.metadata.uid ?? '', metric, s.canary, s.step, s.stepStartedAt].join('\n')).digest('hex').slice(0, 10);
  return `${md.metadata.name.slice(0, 40).replace(/[-.]+$/, '')}-analysis-${hash}`;
}

type Container = { name?: string; env?: { name: string; value?: string }[] } & Record<string, unknown>;

/** The Job for a metric at a step: the user's JobSpec with what the canary is added to every container's env. */
export function desiredAnalysisJob(md: ModelDeployment, metric: MetricSpec, s: JobStep): KubeObject {
  const ns = md.metadata.namespace ?? 'default';
  const spec = structuredClone(metric.job?.spec ?? {}) as { template?: { metadata?: { labels?: Record<string, string> }; spec?: { containers?: Container[]; initContainers?: Container[]; restartPolicy?: string } }; backoffLimit?: number };
  const env = [
    { name: 'SLIPWAY_NAMESPACE', value: ns },
    { name: 'SLIPWAY_NAME', value: md.metadata.name },
    { name: 'SLIPWAY_REVISION', value: s.canary },
    { name: 'SLIPWAY_STABLE_REVISION', value: s.stable },
    { name: 'SLIPWAY_CANARY_URL', value: `http://${canaryServiceName(md)}.${ns}.svc` },
  ];
  const labels = { [LABEL_MODEL_DEPLOYMENT]: md.metadata.name, [LABEL_REVISION]: s.canary, [LABEL_ANALYSIS_METRIC]: metric.name };
  const template = spec.template ?? {};
  template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...labels } };
  const podSpec = template.spec ?? {};
  podSpec.restartPolicy ??= 'Never';
  for (const c of [...(podSpec.containers ?? []), ...(podSpec.initContainers ?? [])]) {
    c.env = [...(c.env ?? []).filter((e) => !env.some((x) => x.name === e.name)), ...env];
  }
  template.spec = podSpec;
  spec.template = template;
  spec.backoffLimit ??= 0; // a test that fails once has failed
  return {
    apiVersion: apiVersionOf(Resources.Job),
    kind: 'Job',
    metadata: {
      name: analysisJobName(md, metric.name, s),
      namespace: ns,
      labels,
      ownerReferences: [ownerReference(md)],
    },
    spec,
  };
}

/** A Job's outcome: still running (undefined), or succeeded or failed with its condition's reason. */
export function jobOutcome(job: KubeObject): MetricValue | undefined {
  const conditions = ((job.status as { conditions?: { type: string; status: string; reason?: string; message?: string }[] } | undefined)?.conditions ?? []);
  const done = conditions.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  if (!done) return undefined;
  const name = job.metadata.name;
  if (done.type === 'Complete') return { kind: 'job', job: name, succeeded: true, detail: `Job ${name} succeeded` };
  return { kind: 'job', job: name, succeeded: false, detail: `Job ${name} failed: ${done.reason ?? 'Failed'}${done.message ? `: ${done.message}` : ''} (kubectl logs job/${name})` };
}
