// The judge, metric by metric: what passes, what fails, and what is not known.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeMetric, worst, type MetricSpec } from '../../src/analysis/judge.ts';

const spec = (s: Partial<MetricSpec>): MetricSpec => ({ name: 'm', minSamples: 100, ...s });
/** Cumulative buckets from per-bucket counts at bounds 0.005, 0.01, 0.025, 0.05, +Inf. */
const hist = (counts: number[]) => {
  const les = [0.005, 0.01, 0.025, 0.05, Infinity];
  let c = 0;
  return { kind: 'histogram' as const, buckets: les.map((le, i) => ({ le, count: (c += counts[i] ?? 0) })) };
};

test('latency: a canary shifted to slower buckets fails; the same distribution passes; a small shift within maxIncrease passes', () => {
  const s = spec({ compare: { baseline: 'stable', maxIncrease: '20%' } });
  const slow = judgeMetric(s, { name: 'm', canary: hist([10, 100, 300, 20, 0]), stable: hist([100, 300, 30, 0, 0]) }, 0.01);
  assert.equal(slow.verdict, 'Fail');
  assert.match(slow.message, /median 0.025 vs 0.01 \(allowed 0.012\)/);
  assert.equal(judgeMetric(s, { name: 'm', canary: hist([100, 300, 30, 0, 0]), stable: hist([100, 300, 30, 0, 0]) }, 0.01).verdict, 'Pass');
  // Significantly slower by rank, but the median did not move past maxIncrease: not a regression worth a rollback.
  assert.equal(judgeMetric(s, { name: 'm', canary: hist([60, 340, 30, 0, 0]), stable: hist([140, 260, 30, 0, 0]) }, 0.01).verdict, 'Pass');
});

test('latency with the sum of the observations: the mean decides, not a median known only to its bucket', () => {
  const s = spec({ compare: { baseline: 'stable', maxIncrease: '20%' } });
  const withSum = (counts: number[], sum: number) => ({ ...hist(counts), sum });
  // Stable's median just under 10 ms, a canary 12% slower whose median crosses the 10 ms bound: the medians' buckets
  // (<= 0.025 against <= 0.01) would say 150% slower; the means say 12%.
  const stable = withSum([60, 340, 30, 0, 0], 430 * 0.0085);
  const canary = withSum([20, 190, 220, 0, 0], 430 * 0.0095);
  const ok = judgeMetric(s, { name: 'm', canary, stable }, 0.01);
  assert.equal(ok.verdict, 'Pass');
  assert.match(ok.message, /^mean 0\.0095 vs 0\.0085 \(allowed 0\.0102\)/);
  assert.match(ok.canary ?? '', /^mean 0\.0095, median ≤ 0\.025 \(430 observations\)$/);
  const { sum: _c, ...canaryBuckets } = canary;
  const { sum: _s, ...stableBuckets } = stable;
  assert.equal(judgeMetric(s, { name: 'm', canary: canaryBuckets, stable: stableBuckets }, 0.01).verdict, 'Fail', 'without the sums, the bucket bounds judge');
  // Twice as slow within the neighbouring bucket: the mean doubled, the ranks agree.
  const slow = judgeMetric(s, { name: 'm', canary: withSum([0, 60, 370, 0, 0], 430 * 0.017), stable }, 0.01);
  assert.equal(slow.verdict, 'Fail');
  assert.match(slow.message, /the canary is slower: mean 0\.017 vs 0\.0085 \(allowed 0\.0102\)/);
  // A mean pushed up by a few slow requests while the ranks do not move: not significant, no rollback.
  assert.equal(judgeMetric(s, { name: 'm', canary: withSum([60, 340, 28, 2, 0], 430 * 0.011), stable }, 0.01).verdict, 'Pass');
});

test('too few samples, no data and provider errors are never a pass', () => {
  const rate = spec({ compare: { baseline: 'stable', maxIncrease: '0%' } });
  assert.equal(judgeMetric(rate, { name: 'm', canary: { kind: 'counts', events: 0, trials: 99 }, stable: { kind: 'counts', events: 0, trials: 1000 } }, 0.01).verdict, 'Inconclusive');
  assert.equal(judgeMetric(rate, { name: 'm', stable: { kind: 'counts', events: 0, trials: 1000 } }, 0.01).verdict, 'Inconclusive');
  assert.equal(judgeMetric(rate, { name: 'm', error: 'Prometheus answered 503' }, 0.01).verdict, 'Error');
  assert.equal(judgeMetric(spec({ compare: { baseline: 'stable' } }), { name: 'm', canary: hist([10, 10, 0, 0, 0]), stable: hist([500, 0, 0, 0, 0]) }, 0.01).verdict, 'Inconclusive');
  assert.equal(worst(['Pass', 'Inconclusive', 'Pass']), 'Inconclusive');
  assert.equal(worst(['Pass', 'Error', 'Fail', 'Inconclusive']), 'Fail');
});

test('a bound on a rate is crossed only when the evidence says so (Wilson interval), not by noise', () => {
  const max = spec({ max: 0.02 });
  // 3 errors in 100 is 3%, but 2% is well within what 100 requests at 2% give: not a failure.
  assert.equal(judgeMetric(max, { name: 'm', canary: { kind: 'counts', events: 3, trials: 100 } }, 0.01).verdict, 'Pass');
  const clear = judgeMetric(max, { name: 'm', canary: { kind: 'counts', events: 80, trials: 1000 } }, 0.01);
  assert.equal(clear.verdict, 'Fail');
  assert.match(clear.message, /the canary's rate is above 2.00% \(at least 6\.06% at 99% confidence\)/);
});

test('a single number: bounds and a relative comparison with stable', () => {
  const s = spec({ max: 10, compare: { baseline: 'stable', maxIncrease: '10%' } });
  assert.equal(judgeMetric(s, { name: 'm', canary: { kind: 'value', value: 12 } , stable: { kind: 'value', value: 5 } }, 0.01).verdict, 'Fail');
  assert.equal(judgeMetric(s, { name: 'm', canary: { kind: 'value', value: 6 }, stable: { kind: 'value', value: 5 } }, 0.01).verdict, 'Fail');
  assert.equal(judgeMetric(s, { name: 'm', canary: { kind: 'value', value: 5.4 }, stable: { kind: 'value', value: 5 } }, 0.01).verdict, 'Pass');
});
