// The Event recorder's queue: record returns at once, a few senders write, repeats count on the Event they repeat,
// flush waits for what was queued.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeClient } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import type { KubeObject } from '../../src/kube/resources.ts';

/** Records each request; each answers when `release` is called (or at once when `hold` is false). */
function client(hold = true) {
  const requests: { verb: string; name: string; body: Record<string, unknown> }[] = [];
  const waiting: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const answer = async (verb: string, name: string, body: Record<string, unknown>): Promise<void> => {
    requests.push({ verb, name, body });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    if (hold) await new Promise<void>((r) => waiting.push(r));
    inFlight--;
  };
  const fake = {
    create: (_r: unknown, obj: { metadata: { name: string } }) => answer('create', obj.metadata.name, obj),
    mergePatch: (_r: unknown, _ns: string, name: string, body: Record<string, unknown>) => answer('patch', name, body),
  };
  return { kube: fake as unknown as KubeClient, requests, release: () => waiting.splice(0).forEach((r) => r()), maxInFlight: () => maxInFlight };
}

const md = (name: string): KubeObject => ({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name, namespace: 'ml', uid: `uid-${name}` } });
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('record returns before the Event is written; at most four are written at once; flush waits for all', async () => {
  const c = client();
  const rec = new EventRecorder(c.kube, { instance: 'test' });
  for (let i = 0; i < 10; i++) rec.record(md(`m${i}`), { type: 'Normal', reason: 'Ready', message: 'serving' });
  await tick();
  assert.equal(c.requests.length, 4, 'four senders');
  let flushed = false;
  const f = rec.flush().then(() => (flushed = true));
  while (c.requests.length < 10) {
    c.release();
    await tick();
  }
  assert.equal(flushed, false, 'the last ones are still in flight');
  c.release();
  await f;
  assert.equal(c.maxInFlight(), 4);
  assert.deepEqual(new Set(c.requests.map((r) => (r.body.involvedObject as { name: string }).name)), new Set(Array.from({ length: 10 }, (_, i) => `m${i}`)));
});

test('a repeat waits for its Event to be created, then counts on it; other Events do not wait behind it', async () => {
  const c = client();
  const rec = new EventRecorder(c.kube, { instance: 'test' });
  const failed = { type: 'Warning' as const, reason: 'Failed', message: 'refused' };
  rec.record(md('a'), failed);
  rec.record(md('a'), failed);
  rec.record(md('b'), failed);
  await tick();
  assert.deepEqual(c.requests.map((r) => r.verb), ['create', 'create'], 'the repeat of a waits; b goes');
  c.release();
  await tick();
  await tick();
  assert.equal(c.requests.length, 3);
  const patch = c.requests[2];
  assert.equal(patch?.verb, 'patch');
  assert.equal(patch?.name, c.requests[0]?.name, 'the count goes on the Event created first');
  assert.equal(patch?.body.count, 2);
  c.release();
  await rec.flush();
});

test('flush gives up after its timeout when the API server does not answer', async () => {
  const c = client();
  const rec = new EventRecorder(c.kube, { instance: 'test' });
  rec.record(md('a'), { type: 'Normal', reason: 'Ready', message: 'serving' });
  await rec.flush(50); // the request is still held: this returns only by the timeout
  assert.equal(c.requests.length, 1);
  c.release();
  await rec.flush();
});
