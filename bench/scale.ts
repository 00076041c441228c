// Scale benchmark on the local control plane: N ModelDeployments created at once against one controller process.
// Prints create→Ready latency percentiles, total convergence time, API requests per reconcile, writes during a
// full no-op resync as the API server counts them (expected: 0), and the controller's peak RSS.
//   npm run bench:scale -- --count 1000
import { parseArgs } from 'node:util';
import { KubeClient } from '../src/kube/client.ts';
import { ListWatch } from '../src/kube/list-watch.ts';
import { Resources, type KubeObject } from '../src/kube/resources.ts';
import { eventually } from '../local/eventually.ts';
import { apiServerMetrics, sumOf, writesBetween } from '../test/support/apiserver-writes.ts';
import { scrape, total, type Samples } from '../test/support/prometheus-text.ts';
import { benchModelDeployment, cpuSeconds, dispatched, peakRssMiB, percentile, runBench } from './support.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '32' }, workers: { type: 'string', default: '8' } } });
const COUNT = Number(values.count);
const NS = 'bench';

// The controller's own count of its requests, printed beside the API server's (APF, for the controller's own
// identity); writes, below, are counted by the API server too.
const requests = (m: Samples): number => total(m, 'slipway_api_requests_total', /^(?!.*method="WATCH")/);
const reconciles = (m: Samples): number => total(m, 'slipway_reconcile_total');

runBench({ namespace: NS, upstreamCrds: false, workers: values.workers ?? '8' }, async ({ cluster, controller: { pid, metricsUrl } }) => {
    const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: Number(values.concurrency) });
    const created = new Map<string, number>();
    const ready = new Map<string, number>();
    let listed = 0;
    const watch = new ListWatch<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(client, Resources.ModelDeployment, {
      onList: () => listed++,
      onEvent: (_type, obj) => {
        const name = obj.metadata.name;
        if (!ready.has(name) && obj.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready.set(name, performance.now());
      },
    }, { namespace: NS });
    // When each ModelDeployment's Deployment appears: the controller's part of the latency, without the cluster's.
    const childCreated = new Map<string, number>();
    const children = new ListWatch<KubeObject>(client, Resources.Deployment, {
      onList: () => listed++,
      onEvent: (type, obj) => {
        const owner = obj.metadata.labels?.['slipway.dev/model-deployment'];
        if (type === 'ADDED' && owner && !childCreated.has(owner)) childCreated.set(owner, performance.now());
      },
    }, { namespace: NS });
    watch.start();
    children.start();
    await eventually('both watches to have listed', () => listed >= 2);

    console.log(`creating ${COUNT} ModelDeployments (${values.concurrency} at a time)`);
    const t0 = performance.now();
    const names = Array.from({ length: COUNT }, (_, i) => `model-${String(i).padStart(4, '0')}`);
    let next = 0;
    await Promise.all(Array.from({ length: Number(values.concurrency) }, async () => {
      while (next < names.length) {
        const name = names[next++] ?? '';
        created.set(name, performance.now());
        await client.create(Resources.ModelDeployment, benchModelDeployment(name, NS, true));
      }
    }));
    const createdIn = (performance.now() - t0) / 1000;
    await eventually(`all ${COUNT} Ready`, () => ready.size >= COUNT, { timeoutMs: 30 * 60_000, intervalMs: 1000 });
    const converged = (performance.now() - t0) / 1000;
    const since = (at: Map<string, number>) => names.map((n) => ((at.get(n) ?? NaN) - (created.get(n) ?? NaN)) / 1000).sort((a, b) => a - b);
    const latencies = since(ready);
    const toChild = since(childCreated);

    // Let the tail of status updates and Events settle, then measure a full resync of a converged system.
    let settled = await scrape(metricsUrl);
    await eventually('the queue to drain', async () => {
      const now = await scrape(metricsUrl);
      const quiet = reconciles(now) === reconciles(settled) && total(now, 'slipway_workqueue_depth') === 0;
      settled = now;
      return quiet;
    }, { timeoutMs: 120_000, intervalMs: 3000 });
    const before = await scrape(metricsUrl);
    const serverBefore = await apiServerMetrics(cluster.kubectl);
    process.kill(pid, 'SIGHUP');
    await eventually('the resync to finish', async () => {
      const now = await scrape(metricsUrl);
      return reconciles(now) - reconciles(before) >= COUNT && total(now, 'slipway_workqueue_depth') === 0 && total(now, 'slipway_workqueue_in_flight') === 0;
    }, { timeoutMs: 300_000, intervalMs: 500 });
    const after = await scrape(metricsUrl);
    // Writes as the API server counts them (apiserver_request_total), to everything Slipway writes.
    const serverWrites = writesBetween(serverBefore, await apiServerMetrics(cluster.kubectl));

    const rss = peakRssMiB(pid);
    const cpu = [['controller', pid] as const, ...cluster.components.map((c) => [c.name, c.pid] as const)]
      .map(([name, p]) => `${name} ${cpuSeconds(p).toFixed(0)}`)
      .join(', ');
    console.log(`
ModelDeployments           ${COUNT} (1 replica and a batch CronJob each; 3 KWOK nodes)
created in                 ${createdIn.toFixed(1)} s
create→Ready p50/p95/p99   ${percentile(latencies, 50).toFixed(2)} / ${percentile(latencies, 95).toFixed(2)} / ${percentile(latencies, 99).toFixed(2)} s
create→Deployment p50/p95/p99 ${percentile(toChild, 50).toFixed(2)} / ${percentile(toChild, 95).toFixed(2)} / ${percentile(toChild, 99).toFixed(2)} s (the controller's share)
total convergence          ${converged.toFixed(1)} s (first create to last Ready)
reconciles to converge     ${reconciles(before)} (${(reconciles(before) / COUNT).toFixed(2)} per ModelDeployment)
API requests per reconcile ${(requests(before) / reconciles(before)).toFixed(2)} (${requests(before)} requests, ${(requests(before) / COUNT).toFixed(1)} per ModelDeployment, watches excluded; the controller's own count)
API requests, server's count ${dispatched(serverBefore)} (${(dispatched(serverBefore) / COUNT).toFixed(1)} per ModelDeployment: every request of the controller's identity the API server dispatched up to convergence, watch starts included; apiserver_flowcontrol_dispatched_requests_total)
no-op resync               ${reconciles(after) - reconciles(before)} reconciles, ${sumOf(serverWrites)} writes counted by the API server ${JSON.stringify(Object.fromEntries(serverWrites))}, ${requests(after) - requests(before)} requests from the controller
controller peak RSS        ${rss.toFixed(0)} MiB
CPU seconds used           ${cpu}`);
    await watch.stop();
    await children.stop();
    client.close();
});
