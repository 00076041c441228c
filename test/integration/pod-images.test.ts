// Pods of images on the local pod runner, as a container runtime runs them: each container gets a writable layer of
// its own over the image's one unpacked tree (what one container writes, another container of the same image does
// not see, and the image itself is unchanged for the next), and a read-only root refuses writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pushEnvironmentImages } from '../../image/environment-images.ts';
import { eventually } from '../../local/eventually.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const registry = process.env.SLIPWAY_TEST_IMAGE_REGISTRY ?? '';
const skip = (process.env.SLIPWAY_TEST_SERVING !== '1' || !registry) && 'needs the local data plane (root): the pod runner and the image registry';

interface Pod { status?: { phase?: string; containerStatuses?: { state?: { terminated?: { exitCode: number; message?: string } } }[] } }

/** A pod of `image` that runs a Python program once; `readOnlyRoot` as the securityContext field. */
const pod = (name: string, image: string, program: string, readOnlyRoot = false): string => JSON.stringify({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    containers: [{ name: 'main', image, command: ['python3', '-c', program], terminationMessagePath: '/dev/termination-log', securityContext: { readOnlyRootFilesystem: readOnlyRoot } }],
  },
});

/** Waits for the pod to end; its phase and the termination message (the program's verdict). */
async function ended(ns: string, name: string): Promise<{ phase: string; message: string }> {
  return eventually(`pod ${name} to end`, async () => {
    const p = await getJson<Pod>(cluster, ['get', 'pod', name, '-n', ns]);
    const phase = p.status?.phase ?? '';
    return phase === 'Succeeded' || phase === 'Failed' ? { phase, message: p.status?.containerStatuses?.[0]?.state?.terminated?.message ?? '' } : undefined;
  }, { timeoutMs: 120_000, intervalMs: 500 });
}

const verdict = (body: string): string => `import os, sys, time\ndef say(m):\n  open('/dev/termination-log', 'w').write(m)\n${body}`;

test('containers of one image each write to a layer of their own; a read-only root refuses writes', { skip }, async (t) => {
  const ns = await testNamespace(t);
  const { bases } = await pushEnvironmentImages(registry, (l) => t.diagnostic(l), ['python']);
  const image = bases.python ?? '';
  // The first writes into its home (the image's working directory) and stays up while the second looks.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], pod('writer', image, verdict([
    "open('/home/nonroot/written-by-writer', 'w').write('mine')",
    "print('wrote', flush=True)",
    'time.sleep(30)',
  ].join('\n'))));
  await eventually('the writer to have written', async () => (await cluster.kubectl(['logs', '-n', ns, 'writer']).catch(() => '')).includes('wrote'), { timeoutMs: 120_000, intervalMs: 500 });
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], pod('reader', image, verdict([
    "seen = os.path.exists('/home/nonroot/written-by-writer')",
    "open('/home/nonroot/written-by-reader', 'w').write('mine')",
    "say('saw the writer\\'s file' if seen else 'own layer')",
    'sys.exit(1 if seen else 0)',
  ].join('\n'))));
  assert.deepEqual(await ended(ns, 'reader'), { phase: 'Succeeded', message: 'own layer' });
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], pod('read-only', image, verdict([
    'try:',
    "  open('/home/nonroot/x', 'w').write('x')",
    "  say('wrote'); sys.exit(1)",
    'except OSError as e:',
    "  say(type(e).__name__ + ': ' + (e.strerror or '')); sys.exit(0)",
  ].join('\n')), true));
  assert.deepEqual(await ended(ns, 'read-only'), { phase: 'Succeeded', message: 'OSError: Read-only file system' });
  // A pod started after both sees the image as it was pushed: neither container's file.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], pod('later', image, verdict([
    "left = [f for f in ('written-by-writer', 'written-by-reader') if os.path.exists('/home/nonroot/' + f)]",
    "say(' '.join(left) or 'clean')",
  ].join('\n'))));
  assert.deepEqual(await ended(ns, 'later'), { phase: 'Succeeded', message: 'clean' });
});
