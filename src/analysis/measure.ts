// Takes one measurement of every metric of an analysis, for the canary and the stable revision, over the window
// since the analysis began, from the metric's provider (Prometheus, preset queries to Prometheus, a web endpoint,
// or a Kubernetes Job). Errors are per metric (a provider that cannot be reached, a Secret that is missing: an Error verdict,
// counted against consecutiveErrorLimit), never thrown into the reconcile.
import type { ModelDeployment } from '../api/modeldeployment.ts';
import type { Credentials } from '../runtime/http.ts';
import type { AnalysisSpec, Measurement } from './analysis.ts';
import type { MetricMeasurement, MetricSpec, MetricValue } from './judge.ts';
import { measureRevision, presetQueries, type RevisionVars } from './prometheus.ts';
import { measureWeb } from './web.ts';
import { desiredAnalysisJob, jobOutcome } from './job.ts';
import type { KubeObject } from '../kube/resources.ts';
import { canaryServiceName } from '../controllers/modeldeployment/children.ts';

/** Reads and creates the Jobs of job metrics (the controller's client). */
export interface JobAccess {
  get: (namespace: string, name: string) => Promise<KubeObject | null>;
  create: (job: KubeObject) => Promise<void>;
}

export interface MeasureContext {
  jobs?: JobAccess;
  /** The controller's --prometheus-url. */
  defaultPrometheus: string | undefined;
  /** The credentials in a Secret of the ModelDeployment's namespace (undefined name: none). */
  credentials: (secretName: string | undefined) => Promise<Credentials | undefined>;
  now: Date;
}

/**
 * The Prometheus a metric asks, and the Secret with its credentials. Credentials stay with the address they were
 * given for: a metric that names its own address never gets the analysis's credentials.
 */
export function prometheusOf(metric: MetricSpec, spec: AnalysisSpec, defaultPrometheus: string | undefined): { address: string | undefined; secret: string | undefined } {
  const own = metric.prometheus;
  if (own?.address) return { address: own.address, secret: own.secretRef?.name };
  return { address: spec.prometheus?.address ?? defaultPrometheus, secret: own?.secretRef?.name ?? spec.prometheus?.secretRef?.name };
}

async function measureJob(md: ModelDeployment, m: MetricSpec, ctx: MeasureContext): Promise<MetricMeasurement> {
  const a = md.status?.canary;
  if (!ctx.jobs || !a?.stepStartedAt || a.step === undefined) return { name: m.name, error: 'no analysis step to run a Job for' };
  const desired = desiredAnalysisJob(md, m, { canary: a.revision, stable: md.status?.stable?.revision ?? '', step: a.step, stepStartedAt: a.stepStartedAt });
  const ns = desired.metadata.namespace ?? 'default';
  const job = await ctx.jobs.get(ns, desired.metadata.name);
  if (!job) {
    await ctx.jobs.create(desired);
    return { name: m.name, pending: `Job ${desired.metadata.name} is running` };
  }
  const outcome = jobOutcome(job);
  return outcome ? { name: m.name, canary: outcome } : { name: m.name, pending: `Job ${desired.metadata.name} is running` };
}

async function measureMetric(md: ModelDeployment, m: MetricSpec, spec: AnalysisSpec, vars: (role: 'canary' | 'stable') => RevisionVars, ctx: MeasureContext): Promise<MetricMeasurement> {
  if (m.job) return measureJob(md, m, ctx);
  let measure: (v: RevisionVars) => Promise<MetricValue | undefined>;
  if (m.web) {
    const web = m.web;
    const credentials = await ctx.credentials(web.secretRef?.name);
    measure = (v) => measureWeb(web, v, credentials);
  } else {
    const queries = m.preset ? presetQueries(m.preset) : m.prometheus;
    const { address, secret } = prometheusOf(m, spec, ctx.defaultPrometheus);
    if (!queries) return { name: m.name, error: 'no queries' };
    if (!address) return { name: m.name, error: 'no Prometheus address: set rollout.analysis.prometheus.address, the metric\'s prometheus.address or the controller\'s --prometheus-url' };
    const credentials = await ctx.credentials(secret);
    measure = (v) => measureRevision(address, queries, v, credentials);
  }
  const [canary, stable] = await Promise.all([measure(vars('canary')), m.compare ? measure(vars('stable')) : Promise.resolve(undefined)]);
  return { name: m.name, canary, stable };
}

export async function takeMeasurement(md: ModelDeployment, spec: AnalysisSpec, windowSeconds: number, ctx: MeasureContext): Promise<Measurement> {
  const revisions = { canary: md.status?.canary?.revision ?? '', stable: md.status?.stable?.revision ?? '' };
  const vars = (role: 'canary' | 'stable'): RevisionVars => ({ namespace: md.metadata.namespace ?? 'default', name: md.metadata.name, window: `${windowSeconds}s`, revision: revisions[role], role, service: role === 'canary' ? canaryServiceName(md) : md.metadata.name });
  const metrics = await Promise.all(spec.metrics.map((m) => measureMetric(md, m, spec, vars, ctx).catch((err: unknown): MetricMeasurement => ({ name: m.name, error: (err as Error).message }))));
  return { at: ctx.now, metrics };
}
