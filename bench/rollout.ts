// Rollout benchmark on the local control plane: N ModelDeployments behind their own HTTPRoutes change model
// version at once (N = 1, then 100 by default) and walk steps [setWeight 10, setWeight 50] to promotion. Printed
// per round, as the API server and watches see it (never the controller's own clock):
//   spec change → first canary weight > 0 in the HTTPRoute   (the first step taking traffic)
//   last step (50%) in the HTTPRoute → old revision's Deployment deleted   (scaleDownDelaySeconds 0: the
//                                      canary scaling to full size, the promotion and the delete)
//   spec change → promoted
//   API requests per rollout, as the API server counts them (APF, the controller's own identity)
// KWOK pods are ready at once, so the times are the controller's and the API server's, not pod start-up.
//   npm run bench:rollout -- --counts 1,100
import { parseArgs } from 'node:util';
import { HTTP_ROUTE } from '../src/controllers/modeldeployment/routers/gateway-api.ts';
import { KubeClient } from '../src/kube/client.ts';
import { ListWatch } from '../src/kube/list-watch.ts';
import { Resources, type KubeObject } from '../src/kube/resources.ts';
import { eventually } from '../local/eventually.ts';
import { apiServerMetrics } from '../test/support/apiserver-writes.ts';
import { cpuSeconds, dispatched, peakRssMiB, percentiles, runBench } from './support.ts';

const { values } = parseArgs({ options: { counts: { type: 'string', default: '1,100' }, workers: { type: 'string', default: '8' }, concurrency: { type: 'string', default: '32' } } });
const NS = 'bench';
const STEPS = [{ setWeight: 10 }, { setWeight: 50 }];

interface Md extends KubeObject {
  status?: { stable?: { revision: string; modelVersion: string }; conditions?: { type: string; status: string }[] };
}

const spec = (name: string, version: string): Record<string, unknown> => ({
  model: { name: 'churn', version, uri: `s3://models/${name}/${version}/`, format: 'sklearn' },
  image: 'registry.example.com/mlserver:1.6.1',
  replicas: 2,
  rollout: { steps: STEPS, trafficRouting: { gatewayAPI: { httpRoute: name } }, scaleDownDelaySeconds: 0 },
});

async function inParallel<T>(items: T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}

runBench({ namespace: NS, upstreamCrds: true, workers: values.workers ?? '8' }, async ({ cluster, controller }) => {
    const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: Number(values.concurrency) });
    const concurrency = Number(values.concurrency);

    // What the watches see, by ModelDeployment name.
    const firstTraffic = new Map<string, number>();
    const lastStep = new Map<string, number>();
    const promoted = new Map<string, number>();
    const oldGone = new Map<string, number>();
    const stableAt = new Map<string, string>();
    const readyV1 = new Set<string>();
    const oldRevision = new Map<string, string>();
    let listed = 0;
    const watches = [
      new ListWatch<Md>(client, Resources.ModelDeployment, {
        onList: () => listed++,
        onEvent: (_t, md) => {
          const name = md.metadata.name;
          const stable = md.status?.stable;
          if (stable?.modelVersion === '1' && md.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) readyV1.add(name);
          if (stable) stableAt.set(name, stable.revision);
          if (stable?.modelVersion === '2' && !promoted.has(name)) promoted.set(name, performance.now());
        },
      }, { namespace: NS }),
      new ListWatch<KubeObject>(client, HTTP_ROUTE, {
        onList: () => listed++,
        onEvent: (_t, route) => {
          const rules = (route.spec as { rules?: { backendRefs?: { name: string; weight?: number }[] }[] }).rules ?? [];
          const canary = rules[0]?.backendRefs?.find((b) => b.name.endsWith('-canary'));
          const name = route.metadata.name;
          if ((canary?.weight ?? 0) > 0 && !firstTraffic.has(name)) firstTraffic.set(name, performance.now());
          if ((canary?.weight ?? 0) >= 50 && !lastStep.has(name)) lastStep.set(name, performance.now());
        },
      }, { namespace: NS }),
      new ListWatch<KubeObject>(client, Resources.Deployment, {
        onList: () => listed++,
        onEvent: (type, d) => {
          const owner = d.metadata.labels?.['slipway.dev/model-deployment'] ?? '';
          if (type === 'DELETED' && d.metadata.labels?.['slipway.dev/revision'] === oldRevision.get(owner) && !oldGone.has(owner)) oldGone.set(owner, performance.now());
        },
      }, { namespace: NS }),
    ];
    for (const w of watches) w.start();
    await eventually('the watches to have listed', () => listed >= watches.length);

    const rows: string[] = [];
    for (const count of (values.counts ?? '1,100').split(',').map(Number)) {
      const names = Array.from({ length: count }, (_, i) => `r${count}-${String(i).padStart(4, '0')}`);
      console.log(`round of ${count}: ${count} ModelDeployments at version 1, each with its HTTPRoute`);
      await inParallel(names, concurrency, async (name) => {
        await client.create(HTTP_ROUTE, {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name, namespace: NS },
          spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name, port: 80 }, { name: `${name}-canary`, port: 80, weight: 0 }] }] },
        });
        await client.create(Resources.ModelDeployment, { apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name, namespace: NS }, spec: spec(name, '1') });
      });
      await eventually(`${count} at version 1`, () => names.every((n) => readyV1.has(n)), { timeoutMs: 20 * 60_000, intervalMs: 500 });
      for (const n of names) oldRevision.set(n, stableAt.get(n) ?? '');
      await new Promise((r) => setTimeout(r, 2000)); // the tail of version 1's writes

      console.log(`round of ${count}: all change to version 2`);
      const before = await apiServerMetrics(cluster.kubectl);
      const cpuBefore = cpuSeconds(controller.pid);
      const changed = new Map<string, number>();
      await inParallel(names, concurrency, async (name) => {
        changed.set(name, performance.now());
        await client.mergePatch(Resources.ModelDeployment, NS, name, { spec: spec(name, '2') });
      });
      await eventually(`${count} promoted and their old revisions gone`, () => names.every((n) => oldGone.has(n)), { timeoutMs: 20 * 60_000, intervalMs: 500 });
      const after = await apiServerMetrics(cluster.kubectl);
      const secs = (from: Map<string, number>, to: Map<string, number>): number[] => names.map((n) => ((to.get(n) ?? NaN) - (from.get(n) ?? NaN)) / 1000);
      const requests = dispatched(after) - dispatched(before);
      rows.push(`
concurrent rollouts                     ${count} (2 replicas each, steps setWeight 10 → 50 → promote, Gateway API router)
spec change → first canary traffic      p50/p95/p99 ${percentiles(secs(changed, firstTraffic))} s
spec change → promoted                  p50/p95/p99 ${percentiles(secs(changed, promoted))} s
last step (50%) → old revision deleted  p50/p95/p99 ${percentiles(secs(lastStep, oldGone))} s (scaleDownDelaySeconds 0)
API requests per rollout                ${(requests / count).toFixed(1)} (${requests} dispatched for the controller's identity, apiserver_flowcontrol_dispatched_requests_total)
controller CPU for the round            ${(cpuSeconds(controller.pid) - cpuBefore).toFixed(1)} s`);
    }
    console.log(`${rows.join('\n')}
controller peak RSS                     ${peakRssMiB(controller.pid).toFixed(0)} MiB`);
    for (const w of watches) await w.stop();
    client.close();
});
