// Why a revision's pods are not ready, as the ModelDeployment's condition says it: one line per cause, read from
// pod statuses as a kubelet reports them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { podForCache, podProblem, revisionProblem, summarize, type PodStatusView } from '../../src/controllers/modeldeployment/pods.ts';

const pod = (name: string, status: NonNullable<PodStatusView['status']>): PodStatusView => ({ metadata: { name }, status });
const notReady = [{ type: 'Ready', status: 'False' }];

test('an init container that failed names its exit code, restarts and the last line of its message', () => {
  const p = pod('a', {
    conditions: notReady,
    initContainerStatuses: [{
      name: 'storage-initializer',
      restartCount: 2,
      state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } },
      lastState: { terminated: { exitCode: 1, reason: 'Error', message: 'Traceback…\ncannot fetch http://h/m: 404 Not Found\n' } },
    }],
    containerStatuses: [{ name: 'model-server', state: { waiting: { reason: 'PodInitializing' } } }],
  });
  assert.equal(podProblem(p), 'init container storage-initializer failed (exit 1, 2 restarts): cannot fetch http://h/m: 404 Not Found');
});

test('a completed init container is not a problem; a starting pod has none', () => {
  assert.equal(podProblem(pod('a', {
    conditions: notReady,
    initContainerStatuses: [{ name: 'init', state: { terminated: { exitCode: 0, reason: 'Completed' } } }],
    containerStatuses: [{ name: 'model-server', state: { running: {} }, ready: false }],
  })), undefined);
  assert.equal(podProblem(pod('b', { containerStatuses: [{ name: 'c', state: { waiting: { reason: 'ContainerCreating' } } }] })), undefined);
});

test('an image that cannot be pulled, a missing secret, a server that keeps exiting with 0, a pod that cannot be scheduled', () => {
  assert.equal(podProblem(pod('a', { containerStatuses: [{ name: 'c', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x:1"' } } }] })), 'container c: ImagePullBackOff: Back-off pulling image "x:1"');
  assert.equal(podProblem(pod('a', { containerStatuses: [{ name: 'c', state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "creds" not found' } } }] })), 'container c: CreateContainerConfigError: secret "creds" not found');
  assert.equal(podProblem(pod('a', {
    containerStatuses: [{ name: 'c', restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 0, reason: 'Completed' } } }],
  })), 'container c keeps exiting (exit 0, 1 restart): see kubectl logs -c c');
  assert.equal(podProblem(pod('a', { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' }] })), 'not scheduled: 0/3 nodes are available: 3 Insufficient cpu.');
});

test('a ready pod has no problem, whatever it went through; a long message is cut', () => {
  const s = summarize(pod('a', {
    conditions: [{ type: 'Ready', status: 'True' }],
    containerStatuses: [{ name: 'c', ready: true, restartCount: 3, state: { running: {} }, lastState: { terminated: { exitCode: 137, reason: 'Error' } } }],
  }));
  assert.deepEqual(s, { name: 'a', ready: true, problem: undefined });
  const long = podProblem(pod('b', { containerStatuses: [{ name: 'c', state: { waiting: { reason: 'ErrImagePull', message: 'x'.repeat(1000) } } }] })) ?? '';
  assert.ok(long.length < 360 && long.endsWith('…'), long);
});

test('a revision names its first troubled pod by name, and how many more there are', () => {
  assert.equal(revisionProblem([{ name: 'b', ready: false, problem: 'p2' }, { name: 'a', ready: false, problem: 'p1' }, { name: 'c', ready: true, problem: undefined }]), 'pod a: p1 (and 1 more pod)');
  assert.equal(revisionProblem([{ name: 'a', ready: false, problem: undefined }]), undefined);
});

test('the cache keeps a pod\'s summary and the labels it is found by, and drops the rest', () => {
  const full = {
    metadata: { name: 'a', namespace: 'ns', uid: 'u', resourceVersion: '7', labels: { 'slipway.dev/revision': 'r1', 'slipway.dev/model-deployment': 'churn', 'pod-template-hash': 'abc' }, annotations: { big: 'x'.repeat(1000) } },
    spec: { containers: [{ name: 'model-server', image: 'i', env: [{ name: 'A', value: 'x'.repeat(1000) }] }] },
    status: {
      conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: 't' }],
      initContainerStatuses: [{ name: 'init', restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, message: 'cannot fetch: 404 Not Found' } } }],
    },
  } as unknown as PodStatusView;
  const cached = podForCache(full);
  assert.deepEqual(cached.summary, summarize(full));
  assert.deepEqual(cached.summary, { name: 'a', ready: false, problem: 'init container init failed (exit 1, 1 restart): cannot fetch: 404 Not Found' });
  assert.deepEqual(cached.metadata, { name: 'a', namespace: 'ns', resourceVersion: '7', labels: { 'slipway.dev/model-deployment': 'churn', 'slipway.dev/revision': 'r1' } });
  assert.deepEqual(Object.keys(cached).sort(), ['metadata', 'summary']);
  const ready = podForCache({ metadata: { name: 'b' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  assert.deepEqual(ready.summary, { name: 'b', ready: true, problem: undefined });
});
