// `npm start` with no kube context: it starts the local control plane, installs the CRDs, runs the controller
// there, and says how to apply the examples; the example then becomes Ready.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kubectlRunner, readState, stopClusterAt } from '../../local/cluster.ts';
import { cacheRoot } from '../../local/toolchain.ts';
import { eventually } from '../../local/eventually.ts';

const root = join(import.meta.dirname, '..', '..');

test('npm start without a kube context runs Slipway on a local control plane that serves the example', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'slipway-home-'));
  const clusterDir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-start-${process.pid}`);
  // A HOME without ~/.kube/config is a machine without a kube context; the build caches stay where they are.
  const names = ['GOCACHE', 'GOMODCACHE', 'GOPATH'];
  const values = execFileSync('go', ['env', ...names], { encoding: 'utf8' }).trim().split('\n');
  const goCaches: Record<string, string> = Object.fromEntries(names.map((n, i) => [n, values[i] ?? '']));
  const env: NodeJS.ProcessEnv = { ...process.env, ...goCaches, HOME: home, SLIPWAY_CACHE_DIR: cacheRoot(), SLIPWAY_CLUSTER_DIR: clusterDir, SLIPWAY_METRICS_PORT: '0' };
  delete env.KUBECONFIG;
  delete env.KUBERNETES_SERVICE_HOST;
  const start = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, join(root, 'scripts', 'start.ts')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  start.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.after(async () => {
    start.kill('SIGTERM');
    await stopClusterAt(clusterDir);
    rmSync(clusterDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  await eventually('the instructions', () => stderr.includes('kubectl apply -f'), { timeoutMs: 60_000 });
  assert.match(stderr, /No kube context is configured: starting the local control plane/);
  assert.match(stderr, new RegExp(`export KUBECONFIG=${join(clusterDir, 'kubeconfig')}`));
  const state = readState(clusterDir);
  assert.ok(state, 'the cluster keeps running for kubectl in another shell');
  const kubectl = kubectlRunner(state.binDir, state.kubeconfig);
  await kubectl(['apply', '-f', join(root, 'examples', 'churn.yaml')]);
  await kubectl(['wait', '--for=condition=Ready', '--timeout=60s', 'mdep/churn']);
});
