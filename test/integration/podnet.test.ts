// The local pod network on this machine's kernel: the bridge owns the pod range before anything is sent, a pod's
// process serves on its own IP in its own namespace and the host reaches it through the bridge, a pod has no route
// off the machine, and removing the pod leaves nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { eventually } from '../../local/eventually.ts';
import { addPod, BRIDGE, ensureBridge, podNamespaces, routeDevice } from '../../local/podnet.ts';
import { startComponent, stopProcess } from '../../local/processes.ts';

const run = promisify(execFile);

test('a pod serves on its own IP inside its namespace, reached through the bridge, and has no way off the machine', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('network namespaces need root');
    return;
  }
  await ensureBridge();
  assert.equal(await routeDevice('10.244.3.7'), BRIDGE, 'the pod range is routed to the local bridge before anything is sent');

  const pod = await addPod(`test-${process.pid}`, '10.244.3.7');
  t.after(() => pod.remove());
  assert.ok((await podNamespaces()).includes(pod.namespace));

  const dir = mkdtempSync(join(tmpdir(), 'slipway-pod-'));
  writeFileSync(join(dir, 'hello.txt'), 'served from inside the pod\n');
  const [cmd, args] = pod.exec('python3', ['-m', 'http.server', '8000', '--bind', pod.ip, '--directory', dir]);
  const server = startComponent('pod-http', cmd, args, dir, false);
  t.after(() => stopProcess(server, 5_000));
  const body = await eventually('the pod\'s server to answer on its IP', async () => {
    const res = await fetch(`http://${pod.ip}:8000/hello.txt`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? res.text() : undefined;
  }, { timeoutMs: 20_000, intervalMs: 200 });
  assert.equal(body, 'served from inside the pod\n');

  // Inside the pod only the pod range is reachable: asking the kernel for a route elsewhere fails, nothing is sent.
  for (const elsewhere of ['192.0.2.1', '8.8.8.8', '127.0.0.1']) {
    const [c, a] = pod.exec('ip', ['route', 'get', elsewhere]);
    const out = await run(c, a).then((r) => r.stdout, (err: { stderr?: string }) => `refused: ${err.stderr ?? ''}`);
    assert.ok(out.startsWith('refused') || / dev lo /.test(out), `${elsewhere} from inside the pod: ${out}`);
  }
  const [c, a] = pod.exec('ip', ['route', 'get', '10.244.9.9']);
  assert.match((await run(c, a)).stdout, / dev eth0 /, 'other pods are reached on the pod network');

  await stopProcess(server, 5_000);
  await pod.remove();
  assert.ok(!(await podNamespaces()).includes(pod.namespace), 'the namespace is gone');
  assert.ok(!(await run('ip', ['-o', 'link', 'show'])).stdout.includes(`slwh${pod.namespace.slice(4)}`), 'and its veth pair with it');
});

test('removing the pod network takes the bridge and every pod namespace away', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('network namespaces need root');
    return;
  }
  // In a sandbox of its own: the data plane of this test run keeps its bridge and namespaces.
  const script = join(import.meta.dirname, '..', 'support', 'podnet-removal.ts');
  const sandbox = [
    'mkdir -p /run/netns && mount -t tmpfs slipway-test /run/netns',
    'ip link set lo up && ip link add host0 type veth peer name host1 && ip addr add 192.0.2.2/24 dev host0 && ip link set host0 up && ip link set host1 up',
    'ip route add default via 192.0.2.1',
    `exec "$0" ${JSON.stringify(script)}`,
  ].join(' && ');
  const { stdout } = await run('unshare', ['--net', '--mount', '--propagation', 'private', '--', 'sh', '-c', sandbox, process.execPath]);
  const r = JSON.parse(stdout) as { bridge: string; pod: string; before: { namespaces: string[]; route: string }; after: { namespaces: string[]; route: string }; refused: string };
  assert.ok(r.before.namespaces.includes(r.pod) && r.before.route === r.bridge, 'the pod and the bridge were there');
  assert.ok(!r.after.namespaces.includes(r.pod), 'the pod namespace is gone');
  assert.equal(r.after.route, 'host0', 'the bridge no longer owns the range: it would go out of the default route');
  assert.match(r.refused, /refusing to run pods: 10\.244\.0\.2 would be sent out of host0/, 'without the bridge no pod is started');
});
