// The work queue keeps client-go's promises, checked with a fake clock: keys not events, one worker per key,
// re-add while processing, earliest delayed add wins, per-key exponential backoff, a global token bucket.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../../src/runtime/clock.ts';
import { ExponentialRateLimiter, MaxOfRateLimiter, TokenBucketRateLimiter, WorkQueue } from '../../src/runtime/work-queue.ts';

const queue = (clock = new FakeClock()) => ({ clock, q: new WorkQueue({ clock, rateLimiter: new ExponentialRateLimiter(100, 1000) }) });

test('a key added many times before a worker takes it is handed out once', async () => {
  const { q } = queue();
  for (let i = 0; i < 5; i++) q.add('ns/a');
  q.add('ns/b');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'ns/a');
  assert.equal(await q.get(), 'ns/b');
  assert.equal(q.length, 0);
});

test('keys come out in the order they were first added', async () => {
  const { q } = queue();
  for (const k of ['c', 'a', 'b', 'a', 'c']) q.add(k);
  assert.deepEqual([await q.get(), await q.get(), await q.get()], ['c', 'a', 'b']);
});

test('a key being processed is not handed to a second worker, and is queued again when the first is done', async () => {
  const { q } = queue();
  q.add('a');
  const first = await q.get();
  assert.equal(first, 'a');
  q.add('a'); // a change arrives while a worker reconciles 'a'
  q.add('b');
  assert.equal(await q.get(), 'b', 'the second worker gets another key, not a');
  assert.equal(q.length, 0);
  q.done('a');
  assert.equal(q.length, 1, 'a is queued again once its worker is done');
  assert.equal(await q.get(), 'a');
});

test('a worker waiting on an empty queue wakes when a key is added', async () => {
  const { q } = queue();
  const next = q.get();
  q.add('a');
  assert.equal(await next, 'a');
});

test('a delayed add comes out when due, and the earlier of two delays wins', async () => {
  const { q, clock } = queue();
  q.addAfter('a', 10_000);
  q.addAfter('a', 2_000);
  q.addAfter('a', 5_000);
  assert.equal(q.length, 0);
  clock.advance(1_999);
  assert.equal(q.length, 0);
  clock.advance(1);
  assert.equal(q.length, 1);
  assert.equal(await q.get(), 'a');
  q.done('a');
  clock.advance(10_000);
  assert.equal(q.length, 0, 'the superseded later delays do not fire');
});

test('failures back off exponentially per key up to a cap, and forget resets the backoff', async () => {
  const { q, clock } = queue();
  const dueAfter = async (key: string): Promise<number> => {
    q.addRateLimited(key);
    let waited = 0;
    while (q.length === 0 && waited < 60_000) {
      clock.advance(10);
      waited += 10;
    }
    q.done((await q.get()) ?? '');
    return waited;
  };
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) waits.push(await dueAfter('a'));
  assert.deepEqual(waits, [100, 200, 400, 800, 1000]);
  assert.equal(await dueAfter('b'), 100, 'another key has its own backoff');
  q.forget('a');
  assert.equal(await dueAfter('a'), 100);
});

test('the token bucket lets a burst through, then spaces retries at its rate', () => {
  const clock = new FakeClock();
  const bucket = new TokenBucketRateLimiter(10, 3, clock);
  assert.deepEqual([bucket.when(), bucket.when(), bucket.when()], [0, 0, 0]);
  assert.equal(Math.round(bucket.when()), 100);
  assert.equal(Math.round(bucket.when()), 200);
  clock.advance(1_000);
  assert.equal(bucket.when(), 0, 'refilled after a quiet second');
});

test('the combined limiter waits for the slower of backoff and bucket', () => {
  const clock = new FakeClock();
  const limiter = new MaxOfRateLimiter(new ExponentialRateLimiter(5, 1000), new TokenBucketRateLimiter(1, 1, clock));
  assert.equal(limiter.when('a'), 5);
  assert.equal(Math.round(limiter.when('b')), 1000, 'the bucket is empty');
  assert.equal(limiter.retries('a'), 1);
});

test('shutting down wakes idle workers with undefined and waits for keys in flight', async () => {
  const { q } = queue();
  q.add('a');
  const key = await q.get();
  const idle = q.get();
  let finished = false;
  const shutdown = q.shutDown().then(() => (finished = true));
  assert.equal(await idle, undefined);
  await Promise.resolve();
  assert.equal(finished, false, 'a key is still in flight');
  q.done(key ?? '');
  await shutdown;
  assert.equal(finished, true);
  q.add('b');
  assert.equal(q.length, 0, 'nothing is accepted after shutdown');
});

test('the age of the oldest ready key is measured from when it was added', async () => {
  const { q, clock } = queue();
  q.add('a');
  clock.advance(1_500);
  q.add('b');
  assert.equal(q.oldestAgeMs(), 1_500);
  await q.get();
  assert.equal(q.oldestAgeMs(), 0);
});

test('a high-priority key is served before the normal lane, a queued key is promoted in place, and each key once', async () => {
  const { q } = queue();
  for (let i = 0; i < 5; i++) q.add(`first-pass-${i}`);
  q.add('child-changed', 'high');
  q.add('first-pass-3', 'high'); // queued already: promoted, not queued twice
  q.add('child-changed', 'normal'); // a normal add never demotes
  assert.equal(q.length, 6);
  const order: string[] = [];
  for (let i = 0; i < 6; i++) {
    const k = (await q.get()) ?? '';
    order.push(k);
    q.done(k);
  }
  assert.deepEqual(order, ['child-changed', 'first-pass-3', 'first-pass-0', 'first-pass-1', 'first-pass-2', 'first-pass-4']);
  assert.equal(q.length, 0);
});

test('a key added with high priority while it is processed is queued again in the high lane when done', async () => {
  const { q } = queue();
  q.add('a');
  const a = (await q.get()) ?? '';
  q.add('b');
  q.add('a', 'high'); // its child changed while it was being reconciled
  q.done(a);
  assert.equal(await q.get(), 'a');
  q.done('a');
  assert.equal(await q.get(), 'b');
});

test('ten thousand keys pass through in order, and the queue is empty after', async () => {
  const { q } = queue();
  for (let i = 0; i < 10_000; i++) q.add(`k${i}`);
  for (let i = 0; i < 10_000; i++) {
    const k = await q.get();
    assert.equal(k, `k${i}`);
    q.done(k ?? '');
  }
  assert.equal(q.length, 0);
  assert.equal(q.oldestAgeMs(), 0);
});
