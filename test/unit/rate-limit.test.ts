// The client-side rate limit: a burst goes at once, then requests are spaced at the sustained rate, in the order
// they asked, and a quiet period refills the bucket up to the burst.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientRateLimiter } from '../../src/kube/rate-limit.ts';

test('a burst goes at once, then one request per 1/qps seconds, in order; quiet time refills up to the burst', () => {
  let now = 0;
  const limiter = new ClientRateLimiter({ qps: 10, burst: 3 }, () => now);
  assert.deepEqual([1, 2, 3].map(() => limiter.reserve()), [0, 0, 0], 'the burst');
  const waits = [1, 2, 3].map(() => Math.round(limiter.reserve()));
  assert.deepEqual(waits, [100, 200, 300], 'each later request waits one more interval: none overtakes another');
  now = 10_000; // long quiet: the bucket is full again, but no fuller than the burst
  assert.deepEqual([1, 2, 3, 4].map(() => Math.round(limiter.reserve())), [0, 0, 0, 100]);
});

test('over a long run the rate is the qps, whatever the burst', () => {
  let now = 0;
  const limiter = new ClientRateLimiter({ qps: 50, burst: 300 }, () => now);
  let sent = 0;
  // 10 s of a caller that always has work: each request goes when its wait is over.
  while (now < 10_000) {
    now += limiter.reserve();
    sent++;
  }
  assert.ok(sent >= 300 + 50 * 10 - 1 && sent <= 300 + 50 * 10 + 1, `${sent} requests in 10 s at qps 50 after a burst of 300`);
});

test('a limit needs a positive rate and a burst of at least one', () => {
  assert.throws(() => new ClientRateLimiter({ qps: 0, burst: 10 }), /qps > 0/);
  assert.throws(() => new ClientRateLimiter({ qps: 5, burst: 0 }), /burst >= 1/);
});
