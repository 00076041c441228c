// The judge: one metric's measurement of the canary and the stable revision → Pass, Fail, Inconclusive or Error,
// with the values, the statistic and the threshold in words. Pure; the statistics are in src/stats.
//
//   counts (events / trials, e.g. errors / requests): bounds on the canary's rate use its Wilson interval, so
//     noise alone does not cross them; compare uses the anytime-valid confidence sequence of the difference, so
//     measuring at every interval does not inflate false alarms. Fail only when the evidence says worse.
//   histogram (latency buckets): the Mann-Whitney rank test, one-sided (canary slower), with an effect size (the
//     chance a canary request is slower than a stable one); fail when significant and the mean (exact, from the
//     sum of the observed values) grew by more than maxIncrease. Without a sum, the median's bucket bound stands in
//     for the mean: coarse (the default buckets are 2-2.5x apart), so the presets always give the sum.
//   value (one number per revision): bounds and a plain relative comparison.
// Too few samples, no data or a provider error is never a Pass.
import type { ModelDeploymentSpec } from '../api/modeldeployment.ts';
import { wilsonInterval } from '../stats/binomial.ts';
import { mannWhitneyWeighted } from '../stats/mannwhitney.ts';
import { compareRates } from '../stats/sequential.ts';

export type MetricSpec = NonNullable<NonNullable<ModelDeploymentSpec['rollout']>['analysis']>['metrics'][number];

export type MetricValue =
  | { kind: 'counts'; events: number; trials: number }
  /** Cumulative bucket counts by upper bound, as Prometheus gives them (le = Infinity for +Inf), and the sum of the
   *  observed values when known. */
  | { kind: 'histogram'; buckets: { le: number; count: number }[]; sum?: number }
  | { kind: 'value'; value: number }
  /** A Job metric's Job, finished: it succeeded or failed (with the reason the Job gives). */
  | { kind: 'job'; job: string; succeeded: boolean; detail: string };

export interface MetricMeasurement {
  name: string;
  canary?: MetricValue | undefined;
  stable?: MetricValue | undefined;
  error?: string | undefined;
  /** Not measurable yet (a Job still running): the measurement waits, nothing is counted. */
  pending?: string | undefined;
}

export type Verdict = 'Pass' | 'Fail' | 'Inconclusive' | 'Error';

export interface MetricJudgement {
  name: string;
  verdict: Verdict;
  canary?: string;
  stable?: string;
  message: string;
}

const pct = (x: number, digits = 2): string => `${(100 * x).toFixed(digits)}%`;
const ratio = (s: string | undefined): number => (s ? Number(s.replace('%', '')) / 100 : 0);

function describe(v: MetricValue | undefined): string | undefined {
  if (!v) return undefined;
  if (v.kind === 'counts') return `${pct(v.trials ? v.events / v.trials : 0)} (${v.events}/${v.trials})`;
  if (v.kind === 'job') return `Job ${v.job} ${v.succeeded ? 'succeeded' : 'failed'}`;
  if (v.kind === 'histogram') {
    const m = mean(v);
    return `${m !== undefined ? `mean ${fmt(m)}, ` : ''}median ≤ ${fmt(median(v))} (${Math.round(total(v))} observations)`;
  }
  return fmt(v.value);
}
const pValue = (p: number): string => (p < 0.0001 ? '< 0.0001' : `= ${p.toPrecision(2)}`);
const fmt = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : Number(x.toPrecision(3)).toString()) : String(x));

function total(h: { buckets: { le: number; count: number }[] }): number {
  return Math.max(0, ...h.buckets.map((b) => b.count));
}

/** Per-bucket counts from cumulative ones, ordered by bound; +Inf counted at the last finite bound's next step. */
function perBucket(h: { buckets: { le: number; count: number }[] }): { v: number; w: number }[] {
  const sorted = [...h.buckets].sort((a, b) => a.le - b.le);
  const out: { v: number; w: number }[] = [];
  let prev = 0;
  sorted.forEach((b, i) => {
    const w = Math.max(0, Math.round(b.count - prev));
    prev = Math.max(prev, b.count);
    if (w > 0) out.push({ v: i, w });
  });
  return out;
}

/** The upper bound of the bucket holding the median (the last finite bound if it is in +Inf). */
function median(h: { buckets: { le: number; count: number }[] }): number {
  const sorted = [...h.buckets].sort((a, b) => a.le - b.le);
  const half = total(h) / 2;
  const finite = sorted.filter((b) => Number.isFinite(b.le));
  for (const b of sorted) if (b.count >= half) return Number.isFinite(b.le) ? b.le : (finite[finite.length - 1]?.le ?? NaN);
  return NaN;
}

/** The mean of the observed values, when the sum is known and there is at least one observation. */
function mean(h: { buckets: { le: number; count: number }[]; sum?: number }): number | undefined {
  const n = total(h);
  return h.sum !== undefined && Number.isFinite(h.sum) && n > 0 ? h.sum / n : undefined;
}

export function judgeMetric(spec: MetricSpec, m: MetricMeasurement, alpha: number): MetricJudgement {
  const dc = describe(m.canary);
  const ds = describe(m.stable);
  const base: { name: string; canary?: string; stable?: string } = { name: spec.name, ...(dc ? { canary: dc } : {}), ...(ds ? { stable: ds } : {}) };
  if (m.error) return { ...base, verdict: 'Error', message: m.error };
  const c = m.canary;
  const s = m.stable;
  if (!c || (spec.compare && !s)) return { ...base, verdict: 'Inconclusive', message: `no data for the ${!c ? 'canary' : 'stable revision'}` };
  if (s && s.kind !== c.kind) return { ...base, verdict: 'Error', message: 'the canary and stable queries give different kinds of result' };
  const confidence = `${pct(1 - alpha, 0)} confidence`;

  if (c.kind === 'job') return { ...base, verdict: c.succeeded ? 'Pass' : 'Fail', message: c.detail };

  if (c.kind === 'counts') {
    const sc = s as Extract<MetricValue, { kind: 'counts' }> | undefined;
    if (c.trials < spec.minSamples || (spec.compare && (sc?.trials ?? 0) < spec.minSamples)) {
      return { ...base, verdict: 'Inconclusive', message: `too few samples: canary ${c.trials}${spec.compare ? `, stable ${sc?.trials ?? 0}` : ''} of the ${spec.minSamples} needed` };
    }
    const w = wilsonInterval(Math.min(c.events, c.trials), c.trials, 1 - alpha);
    if (spec.max !== undefined && w.low > spec.max) return { ...base, verdict: 'Fail', message: `the canary's rate is above ${pct(spec.max)} (at least ${pct(w.low)} at ${confidence})` };
    if (spec.min !== undefined && w.high < spec.min) return { ...base, verdict: 'Fail', message: `the canary's rate is below ${pct(spec.min)} (at most ${pct(w.high)} at ${confidence})` };
    if (spec.compare && sc) {
      const r = compareRates(c, sc, alpha);
      const margin = (sc.trials ? sc.events / sc.trials : 0) * ratio(spec.compare.maxIncrease);
      if (r.low > margin) {
        return { ...base, verdict: 'Fail', message: `the canary's rate ${pct(r.canaryRate)} is above stable's ${pct(r.stableRate)} by at least ${pct(r.low)} at ${confidence} (allowed: ${spec.compare.maxIncrease ?? '0%'} of stable, ${pct(margin)}; anytime-valid p ${pValue(r.pValue)})` };
      }
      return { ...base, verdict: 'Pass', message: `difference ${pct(r.difference)} (between ${pct(r.low)} and ${pct(r.high)} at ${confidence}), allowed ${pct(margin)}` };
    }
    return { ...base, verdict: 'Pass', message: `the canary's rate is within bounds (between ${pct(w.low)} and ${pct(w.high)} at ${confidence})` };
  }

  if (c.kind === 'histogram') {
    const sh = s as Extract<MetricValue, { kind: 'histogram' }> | undefined;
    if (total(c) < spec.minSamples || (spec.compare && total(sh ?? { buckets: [] }) < spec.minSamples)) {
      return { ...base, verdict: 'Inconclusive', message: `too few samples: canary ${total(c)}${spec.compare ? `, stable ${total(sh ?? { buckets: [] })}` : ''} of the ${spec.minSamples} needed` };
    }
    const mc = median(c);
    if (spec.max !== undefined && mc > spec.max) return { ...base, verdict: 'Fail', message: `the canary's median ${fmt(mc)} is above ${fmt(spec.max)}` };
    if (spec.min !== undefined && mc < spec.min) return { ...base, verdict: 'Fail', message: `the canary's median ${fmt(mc)} is below ${fmt(spec.min)}` };
    if (spec.compare && sh) {
      const r = mannWhitneyWeighted(perBucket(c), perBucket(sh), { alternative: 'greater' });
      // The mean when both sums are known (exact at any bucket layout); else the median's bucket bound.
      const meanC = mean(c);
      const meanS = mean(sh);
      const [what, vc, vs] = meanC !== undefined && meanS !== undefined ? ['mean', meanC, meanS] : ['median', mc, median(sh)];
      const allowed = vs * (1 + ratio(spec.compare.maxIncrease));
      if (r.pValue < alpha && vc > allowed) {
        return { ...base, verdict: 'Fail', message: `the canary is slower: ${what} ${fmt(vc)} vs ${fmt(vs)} (allowed ${fmt(allowed)}); a canary request is slower than a stable one with probability ${r.effect.toFixed(2)} (Mann-Whitney p ${pValue(r.pValue)}, below ${alpha})` };
      }
      return { ...base, verdict: 'Pass', message: `${what} ${fmt(vc)} vs ${fmt(vs)} (allowed ${fmt(allowed)}); P(canary slower) ${r.effect.toFixed(2)}, p ${pValue(r.pValue)}` };
    }
    return { ...base, verdict: 'Pass', message: `the canary's median ${fmt(mc)} is within bounds` };
  }

  if (spec.max !== undefined && c.value > spec.max) return { ...base, verdict: 'Fail', message: `${fmt(c.value)} is above ${fmt(spec.max)}` };
  if (spec.min !== undefined && c.value < spec.min) return { ...base, verdict: 'Fail', message: `${fmt(c.value)} is below ${fmt(spec.min)}` };
  if (spec.compare && s?.kind === 'value') {
    const up = s.value * (1 + ratio(spec.compare.maxIncrease));
    if (spec.compare.maxIncrease !== undefined && c.value > up) return { ...base, verdict: 'Fail', message: `${fmt(c.value)} is more than ${spec.compare.maxIncrease} above stable's ${fmt(s.value)}` };
    const down = s.value * (1 - ratio(spec.compare.maxDecrease));
    if (spec.compare.maxDecrease !== undefined && c.value < down) return { ...base, verdict: 'Fail', message: `${fmt(c.value)} is more than ${spec.compare.maxDecrease} below stable's ${fmt(s.value)}` };
  }
  return { ...base, verdict: 'Pass', message: 'within bounds' };
}

const ORDER: Verdict[] = ['Pass', 'Inconclusive', 'Error', 'Fail'];
/** The verdict of a measurement of several metrics: its worst. */
export const worst = (vs: Verdict[]): Verdict => vs.reduce<Verdict>((a, b) => (ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a), 'Pass');
