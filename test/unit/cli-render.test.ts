// What kubectl slipway prints, from objects alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { microTimeInOrder } from '../../src/kube/time.ts';
import { age, colour, eventOrder, plain, renderHistory, renderList, renderStatus, table, type MdView } from '../../src/cli/render.ts';

const now = new Date('2026-11-26T12:00:00Z');
const md = (over: Partial<MdView['status']> = {}): MdView => ({
  metadata: { name: 'iris', namespace: 'ml', creationTimestamp: '2026-11-26T11:00:00Z' },
  spec: { model: { name: 'iris', version: '2' }, replicas: 2, rollout: { steps: [{}, {}, {}] } },
  status: {
    stable: { revision: 'aaaaaaaaaa', modelVersion: '1', image: 'm:1' },
    canary: { revision: 'bbbbbbbbbb', modelVersion: '2', image: 'm:1', weight: 10, step: 1 },
    availableReplicas: 2,
    conditions: [{ type: 'Ready', status: 'False', reason: 'RolloutInProgress', message: 'step 2 of 3: paused', lastTransitionTime: 't' }],
    ...over,
  },
});

test('ages as kubectl writes them', () => {
  assert.equal(age('2026-11-26T11:59:30Z', now), '30s');
  assert.equal(age('2026-11-26T11:00:00Z', now), '60m');
  assert.equal(age('2026-11-25T00:00:00Z', now), '36h');
  assert.equal(age('2026-11-20T00:00:00Z', now), '6d');
});

test('a table pads to the widest cell, not counting colour codes', () => {
  assert.equal(table([['A', 'B'], [colour.good('long'), 'x']]), `A      B\n${colour.good('long')}   x`);
});

test('the list shows stable and canary with the canary\'s weight', () => {
  const out = renderList([md()], { now, style: plain, allNamespaces: true });
  assert.equal(out.split('\n')[1], 'ml          iris   iris    v1 (aaaaaaaaaa)   v2 (bbbbbbbbbb) 10%   False   2/2         60m');
  assert.equal(renderList([], { now, style: plain, allNamespaces: false }), 'No ModelDeployments found.');
});

test('status names the step of N, and why each pod is not ready', () => {
  const out = renderStatus(md(), {
    pods: [{ metadata: { name: 'iris-b-1', labels: { 'slipway.dev/revision': 'bbbbbbbbbb' } }, status: { conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'model-server', restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, message: 'boom' } } }] } }],
    events: [{ type: 'Warning', reason: 'BackOff', message: 'Back-off restarting', lastTimestamp: '2026-11-26T11:59:00Z' }],
  }, { now, style: plain });
  assert.match(out, /^Canary:\s+revision bbbbbbbbbb, model version 2, 0\/0 replicas available$/m);
  assert.match(out, /^Step:\s+2 of 3$/m);
  assert.match(out, /^Weight:\s+10% wanted$/m);
  assert.match(out, /^iris-b-1\s+bbbbbbbbbb\s+NotReady\s+2\s+container model-server failed \(exit 1, 2 restarts\): boom$/m);
  assert.match(out, /^60s\s+Warning\s+BackOff\s+Back-off restarting$/m);
});

test('Events of the same second keep the order they were recorded in (their eventTime); older seconds come first', () => {
  const events = [
    { type: 'Normal', reason: 'RolloutStep', lastTimestamp: '2026-11-26T11:59:00Z', eventTime: '2026-11-26T11:59:00.512003Z' },
    { type: 'Normal', reason: 'ScalingReplicaSet', lastTimestamp: '2026-11-26T11:59:00Z' },
    { type: 'Normal', reason: 'RolloutStarted', lastTimestamp: '2026-11-26T11:59:00Z', eventTime: '2026-11-26T11:59:00.512001Z' },
    { type: 'Warning', reason: 'RolledBack', lastTimestamp: '2026-11-26T11:58:59Z', eventTime: '2026-11-26T11:58:59.900000Z' },
  ];
  assert.deepEqual(events.sort(eventOrder).map((e) => e.reason), ['RolledBack', 'ScalingReplicaSet', 'RolloutStarted', 'RolloutStep']);
  const out = renderStatus(md(), { pods: [], events }, { now, style: plain });
  assert.deepEqual([...out.matchAll(/^6[01]s\s+\w+\s+(\w+)/gm)].map((m) => m[1]), ['RolledBack', 'ScalingReplicaSet', 'RolloutStarted', 'RolloutStep']);
});

test('Event times taken in order sort in order, at the wall clock\'s millisecond, even within one millisecond', () => {
  const d = new Date('2030-01-01T00:00:00.123Z');
  const times = [microTimeInOrder(d), microTimeInOrder(d), microTimeInOrder(new Date('2030-01-01T00:00:01.000Z'))];
  assert.deepEqual(times, ['2030-01-01T00:00:00.123000Z', '2030-01-01T00:00:00.123001Z', '2030-01-01T00:00:01.000000Z']);
});

test('history marks the stable and canary revisions, oldest first', () => {
  const out = renderHistory(md(), [
    { metadata: { name: 'iris-bbbbbbbbbb', labels: { 'slipway.dev/revision': 'bbbbbbbbbb' }, creationTimestamp: '2026-11-26T11:59:00Z' }, revision: 2, data: { modelVersion: '2', image: 'm:1' } },
    { metadata: { name: 'iris-aaaaaaaaaa', labels: { 'slipway.dev/revision': 'aaaaaaaaaa' }, creationTimestamp: '2026-11-26T11:00:00Z' }, revision: 1, data: { modelVersion: '1', image: 'm:1' } },
  ], { now, style: plain });
  assert.deepEqual(out.split('\n').slice(1).map((l) => l.split(/\s+/).filter(Boolean)), [['1', 'aaaaaaaaaa', '1', 'm:1', '60m', 'stable'], ['2', 'bbbbbbbbbb', '2', 'm:1', '60s', 'canary']]);
});
