// The analysis of an `analysis` step, as a pure function of the spec, the progress in status, the clock and the
// measurement just taken (if any): when the next measurement is due, and the verdict once there is one.
//
//   Running       measurements every `interval`, each covering the whole window since the analysis began
//   Passed        `count` measurements taken, the last one passing, failures within failureLimit
//   Failed        failures beyond failureLimit: the rollout's onFailure (rollback, pause, notify)
//   Inconclusive  inconclusive measurements beyond inconclusiveLimit, or provider errors in a row beyond
//                 consecutiveErrorLimit: the rollout pauses for a person; a resume starts the analysis again
import type { ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus } from '../api/modeldeployment.ts';
import { rfc3339 } from '../kube/time.ts';
import { durationMs } from '../controllers/modeldeployment/steps.ts';
import { judgeMetric, worst, type MetricMeasurement } from './judge.ts';

export type AnalysisSpec = NonNullable<NonNullable<ModelDeploymentSpec['rollout']>['analysis']>;
export type AnalysisStatus = NonNullable<ModelDeploymentStatus['analysis']>;

export interface Measurement {
  at: Date;
  metrics: MetricMeasurement[];
}

/** How soon a measurement that waits for a Job looks again. */
export const JOB_POLL_MS = 5000;

/** Measurements kept in status. */
export const KEPT_MEASUREMENTS = 10;

/** The analysis step a ModelDeployment stands at, if it runs one now. */
export interface AnalysisContext {
  revision: string;
  step: number;
  stepStartedAt: string;
}

export function analysisContext(md: ModelDeployment): AnalysisContext | undefined {
  const c = md.status?.canary;
  const spec = md.spec.rollout?.analysis;
  if (!spec || !c || c.step === undefined || !c.stepStartedAt) return undefined;
  if (!md.spec.rollout?.steps?.[c.step]?.analysis) return undefined;
  if (md.status?.aborted || md.spec.paused) return undefined;
  return { revision: c.revision, step: c.step, stepStartedAt: c.stepStartedAt };
}

const sameAnalysis = (a: AnalysisStatus | undefined, ctx: AnalysisContext): a is AnalysisStatus =>
  a !== undefined && a.revision === ctx.revision && a.step === ctx.step && a.stepStartedAt === ctx.stepStartedAt;

/** A fresh analysis whose window starts at `from`. */
function begin(spec: AnalysisSpec, ctx: AnalysisContext, from: Date): AnalysisStatus {
  return { ...ctx, startedAt: rfc3339(from), nextAt: rfc3339(new Date(from.getTime() + durationMs(spec.interval))), taken: 0, failures: 0, inconclusives: 0, consecutiveErrors: 0, verdict: 'Running', measurements: [] };
}

/**
 * Whether a measurement is due now, and the window it covers (seconds since the analysis began). Undefined when
 * none is: no analysis step, a verdict already given, a pause, or not yet time.
 */
export function measurementDue(md: ModelDeployment, now: Date): { windowSeconds: number } | undefined {
  const ctx = analysisContext(md);
  const spec = md.spec.rollout?.analysis;
  if (!ctx || !spec || md.status?.pause) return undefined;
  const a = md.status?.analysis;
  const current = sameAnalysis(a, ctx) ? a : begin(spec, ctx, new Date(ctx.stepStartedAt));
  if (current.verdict === 'Inconclusive') {
    // Resumed after an inconclusive analysis: a new one begins now; its first measurement is an interval away.
    return undefined;
  }
  if (current.verdict !== 'Running' || !current.nextAt || now.getTime() < Date.parse(current.nextAt)) return undefined;
  return { windowSeconds: Math.max(1, Math.round((now.getTime() - Date.parse(current.startedAt)) / 1000)) };
}

/** The analysis after this evaluation: begun, advanced by a measurement, or as it was. */
export function advanceAnalysis(spec: AnalysisSpec, previous: AnalysisStatus | undefined, ctx: AnalysisContext, paused: boolean, m: Measurement | undefined, now: Date): AnalysisStatus {
  let a = sameAnalysis(previous, ctx) ? previous : begin(spec, ctx, new Date(ctx.stepStartedAt));
  if (a.verdict === 'Inconclusive' && !paused) a = begin(spec, ctx, now); // resumed: start again
  if (!m || a.verdict !== 'Running') return a;
  const pending = m.metrics.find((x) => x.pending);
  if (pending) {
    // A Job still running: nothing is counted and nothing in status moves (nextAt stays due), so looking again
    // writes nothing; the planner requeues the look (JOB_POLL_MS).
    const message = `${pending.name}: ${pending.pending ?? ''}; measurements wait for it`;
    return a.message === message ? a : { ...a, message };
  }
  const judged = spec.metrics.map((metric) => judgeMetric(metric, m.metrics.find((x) => x.name === metric.name) ?? { name: metric.name, error: 'not measured' }, spec.alpha));
  const verdict = worst(judged.map((j) => j.verdict));
  const next: AnalysisStatus = {
    ...a,
    taken: a.taken + 1,
    failures: a.failures + (verdict === 'Fail' ? 1 : 0),
    inconclusives: a.inconclusives + (verdict === 'Inconclusive' ? 1 : 0),
    consecutiveErrors: verdict === 'Error' ? a.consecutiveErrors + 1 : 0,
    nextAt: rfc3339(new Date(m.at.getTime() + durationMs(spec.interval))),
    measurements: [...a.measurements, { at: rfc3339(m.at), verdict, metrics: judged }].slice(-KEPT_MEASUREMENTS),
  };
  const first = (v: string) => judged.find((j) => j.verdict === v);
  const line = (j: { name: string; canary?: string; stable?: string; message: string } | undefined): string =>
    j ? `${j.name}: ${j.message}${j.canary ? ` (canary ${j.canary}${j.stable ? `, stable ${j.stable}` : ''})` : ''}` : '';
  if (next.failures > spec.failureLimit) {
    const { nextAt: _done, ...rest } = next;
    return { ...rest, verdict: 'Failed', message: line(first('Fail')) };
  }
  if (next.consecutiveErrors > spec.consecutiveErrorLimit) return { ...next, verdict: 'Inconclusive', message: `${next.consecutiveErrors} measurements in a row could not be taken: ${line(first('Error'))}` };
  if (next.inconclusives > spec.inconclusiveLimit) return { ...next, verdict: 'Inconclusive', message: `${next.inconclusives} inconclusive measurements: ${line(first('Inconclusive'))}` };
  if (next.taken >= spec.count && verdict === 'Pass') return { ...next, verdict: 'Passed', message: `${next.taken} measurements, the last one passing: ${judged.map((j) => `${j.name} ${j.message}`).join('; ')}` };
  return { ...next, message: verdict === 'Pass' ? `measurement ${next.taken} of ${spec.count} passed` : `measurement ${next.taken}: ${line(first(verdict))}` };
}
