// Takes one measurement of every metric of an analysis, for the canary and the stable revision, over the window
// since the analysis began. Errors are per metric (a provider that cannot be reached is an Error verdict, counted
// against consecutiveErrorLimit), never thrown into the reconcile.
import type { ModelDeployment } from '../api/modeldeployment.ts';
import type { AnalysisSpec, Measurement } from './analysis.ts';
import type { MetricMeasurement } from './judge.ts';
import { measureRevision, presetQueries } from './prometheus.ts';

export async function takeMeasurement(md: ModelDeployment, spec: AnalysisSpec, windowSeconds: number, defaultPrometheus: string | undefined, now: Date): Promise<Measurement> {
  const canary = md.status?.canary?.revision ?? '';
  const stable = md.status?.stable?.revision ?? '';
  const base = { namespace: md.metadata.namespace ?? 'default', name: md.metadata.name, window: `${windowSeconds}s` };
  const metrics = await Promise.all(spec.metrics.map(async (m): Promise<MetricMeasurement> => {
    if (m.web) return { name: m.name, error: 'the web provider is not available in this version of Slipway: use prometheus or a preset' };
    const queries = m.preset ? presetQueries(m.preset) : m.prometheus;
    const address = m.prometheus?.address ?? defaultPrometheus;
    if (!queries) return { name: m.name, error: 'no queries' };
    if (!address) return { name: m.name, error: 'no Prometheus address: set the metric\'s prometheus.address or the controller\'s --prometheus-url' };
    try {
      const [c, s] = await Promise.all([
        measureRevision(address, queries, { ...base, revision: canary, role: 'canary' }),
        m.compare ? measureRevision(address, queries, { ...base, revision: stable, role: 'stable' }) : Promise.resolve(undefined),
      ]);
      return { name: m.name, canary: c, stable: s };
    } catch (err) {
      return { name: m.name, error: (err as Error).message };
    }
  }));
  return { at: now, metrics };
}
