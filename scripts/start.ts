// `npm start`: runs the controller against the current kube context. With no context configured (no
// $KUBECONFIG, no ~/.kube/config, not in a cluster) it starts the local control plane, installs the CRDs,
// and runs there, printing how to apply the examples.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultClusterDir, installSlipwayCrds, kubectlRunner, readState, startCluster } from '../local/cluster.ts';
import { podRunnerHolder } from '../local/pod-runner.ts';
import { isOurProcess } from '../local/processes.ts';

const root = join(import.meta.dirname, '..');

function hasKubeContext(): boolean {
  return Boolean(process.env.KUBECONFIG) || existsSync(join(homedir(), '.kube', 'config')) || Boolean(process.env.KUBERNETES_SERVICE_HOST);
}

async function localCluster(): Promise<{ kubeconfig: string; binDir: string; prometheus?: { url: string }; gateway?: { url: string } }> {
  const dir = defaultClusterDir();
  const running = readState(dir);
  if (running?.components.every(isOurProcess)) return running;
  // As root, with the data plane: pods that really serve, a gateway and the Prometheus analysis asks (unless
  // another local cluster's data plane runs: one per machine).
  const other = podRunnerHolder();
  const serve = process.getuid?.() === 0 && other === undefined;
  if (process.getuid?.() === 0 && other !== undefined) console.error(`Another local data plane runs on this machine (pid ${other}): this control plane starts without one.`);
  console.error(`No kube context is configured: starting the local control plane${serve ? ' with its data plane' : ''} (npm run cluster:down stops it).`);
  return startCluster({ dir, persistent: true, serve, log: (l) => console.error(l) });
}

async function main(): Promise<void> {
  const passthrough = process.argv.slice(2);
  if (!hasKubeContext()) {
    const cluster = await localCluster();
    await installSlipwayCrds(kubectlRunner(cluster.binDir, cluster.kubeconfig));
    console.error(`
Slipway runs on the local control plane. In another shell:
  export KUBECONFIG=${cluster.kubeconfig}
  export PATH=${cluster.binDir}:$PATH
  kubectl apply -f ${join(root, 'examples', 'churn.yaml')}
  kubectl wait --for=condition=Ready mdep/churn && kubectl get mdep,deploy,svc,cronjob,pods
`);
    if (cluster.gateway) console.error(`The gateway answers at ${cluster.gateway.url}; Prometheus at ${cluster.prometheus?.url ?? '-'}.\n`);
    passthrough.push(`--kubeconfig=${cluster.kubeconfig}`, '--leader-election-namespace=default');
    if (cluster.prometheus) passthrough.push(`--prometheus-url=${cluster.prometheus.url}`);
  }
  process.argv = [process.argv[0] ?? 'node', join(root, 'src', 'main.ts'), ...passthrough];
  await import('../src/main.ts');
}

main().catch((err: unknown) => {
  console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
