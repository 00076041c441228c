// Starts one local control plane for the whole test run and hands it to the test files through the
// environment. SLIPWAY_TEST_REUSE_CLUSTER=1 uses the one `npm run cluster:up` keeps running instead.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditLogOf, defaultClusterDir, installSlipwayCrds, kubectlRunner, readState, startCluster, type Cluster, type ClusterState } from '../../local/cluster.ts';

let cluster: Cluster | undefined;

/** Where the data plane's gateway and Prometheus answer, for the tests that send traffic and read metrics. */
function dataPlaneEnv(state: ClusterState): void {
  if (state.gateway) process.env.SLIPWAY_TEST_GATEWAY_URL = state.gateway.url;
  if (state.prometheus) process.env.SLIPWAY_TEST_PROMETHEUS_URL = state.prometheus.url;
  if (state.registry) process.env.SLIPWAY_TEST_REGISTRY = JSON.stringify(state.registry);
  if (state.imageRegistry) process.env.SLIPWAY_TEST_IMAGE_REGISTRY = state.imageRegistry.host;
  if (state.mlserverImage) process.env.SLIPWAY_TEST_MLSERVER_IMAGE = state.mlserverImage;
  if (state.authImageRegistry) {
    process.env.SLIPWAY_TEST_AUTH_REGISTRY = state.authImageRegistry.host;
    process.env.SLIPWAY_TEST_AUTH_REGISTRY_USERNAME = state.authImageRegistry.username ?? '';
    process.env.SLIPWAY_TEST_AUTH_REGISTRY_PASSWORD = state.authImageRegistry.password ?? '';
  }
}

export async function globalSetup(): Promise<void> {
  if (process.env.SLIPWAY_TEST_REUSE_CLUSTER === '1') {
    const state = readState(defaultClusterDir());
    if (!state) throw new Error('SLIPWAY_TEST_REUSE_CLUSTER=1 but no cluster is running: npm run cluster:up first');
    process.env.SLIPWAY_TEST_KUBECONFIG = state.kubeconfig;
    process.env.SLIPWAY_TEST_BIN_DIR = state.binDir;
    process.env.SLIPWAY_TEST_AUDIT_LOG = auditLogOf(state.dir);
    if (state.components.some((c) => c.name === 'pod-runner')) process.env.SLIPWAY_TEST_SERVING = '1';
    dataPlaneEnv(state);
    await installSlipwayCrds(kubectlRunner(state.binDir, state.kubeconfig));
    return;
  }
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  cluster = await startCluster({
    dir: join(base, `slipway-test-${process.pid}`),
    // The data plane (pods that really serve) needs root for network namespaces; tests that need it skip without.
    serve: process.getuid?.() === 0,
    log: (line) => process.stderr.write(`[cluster] ${line}\n`),
  });
  process.env.SLIPWAY_TEST_KUBECONFIG = cluster.kubeconfig;
  process.env.SLIPWAY_TEST_BIN_DIR = cluster.binDir;
  process.env.SLIPWAY_TEST_CLUSTER_DIR = cluster.dir;
  process.env.SLIPWAY_TEST_AUDIT_LOG = auditLogOf(cluster.dir);
  if (process.getuid?.() === 0) process.env.SLIPWAY_TEST_SERVING = '1';
  dataPlaneEnv(cluster);
  await installSlipwayCrds(cluster.kubectl);
  const stopOnSignal = (signal: NodeJS.Signals): void => {
    void cluster?.stop().finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
}

export async function globalTeardown(): Promise<void> {
  if (!cluster) return;
  await cluster.stop();
  if (process.env.SLIPWAY_TEST_KEEP_LOGS !== '1') {
    const { rmSync } = await import('node:fs');
    rmSync(cluster.dir, { recursive: true, force: true });
  }
}
