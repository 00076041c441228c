// A controller's cold start on an existing fleet, process after process: one fleet of ModelDeployments made Ready
// on a fresh local control plane, then new controller processes started on it one at a time, each until it has
// listed everything and done one full pass; its peak RSS from /proc (VmHWM). Variants compare builds or flags on
// the same fleet:
//   npm run bench:cold-start -- [--count 3000] [--runs 3] [--variant NAME=MAIN_TS[,--node-flag…][,ENV_VAR=VALUE…]] …
// MAIN_TS is the controller's entry point (e.g. src/main.ts of another checkout: a git worktree of an earlier
// commit); without a variant, this checkout's. An upper-case NAME=VALUE is set in the controller's environment
// (e.g. MALLOC_ARENA_MAX=2).
import { parseArgs } from 'node:util';
import { eventually } from '../local/eventually.ts';
import { KubeClient } from '../src/kube/client.ts';
import { Resources } from '../src/kube/resources.ts';
import { benchModelDeployment, envAssignments, isEnvAssignment, peakRssMiB, rssMiB, rssSplit, runBench, startBenchController, untilFullPass } from './support.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '3000' }, runs: { type: 'string', default: '3' }, variant: { type: 'string', multiple: true, default: [] } } });
const COUNT = Number(values.count);
const NS = 'fleet';
const variants = (values.variant.length ? values.variant : ['this checkout=']).map((v) => {
  const [name = '', rest = ''] = v.split(/=(.*)/s);
  const [main = '', ...more] = rest.split(',');
  return { name, main, flags: more.filter((f) => !isEnvAssignment(f)), env: envAssignments(more) };
});

runBench({ namespace: NS, upstreamCrds: false, workers: '8', nodes: Math.ceil(COUNT / 1000) + 1 }, async ({ cluster, controller, kubeconfig }) => {
  const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: 32 });
  const names = Array.from({ length: COUNT }, (_, i) => `m-${String(i).padStart(5, '0')}`);
  let next = 0;
  console.log(`creating ${COUNT} ModelDeployments`);
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < names.length) await client.create(Resources.ModelDeployment, benchModelDeployment(names[next++] ?? '', NS, false));
  }));
  type Listed = { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
  await eventually(`all ${COUNT} Ready`, async () => {
    const list = await client.request<Listed>({ method: 'GET', path: `/apis/slipway.dev/v1alpha1/namespaces/${NS}/modeldeployments` });
    return list.items.filter((o) => o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === COUNT;
  }, { timeoutMs: 3 * 3600_000, intervalMs: 5000 });
  console.log(`the process that created them: peak RSS ${peakRssMiB(controller.pid).toFixed(0)} MiB`);
  controller.process.kill('SIGTERM');
  await new Promise((r) => controller.process.once('exit', r));

  const rows: string[] = [];
  for (const v of variants) {
    const peaks: number[] = [];
    for (let run = 0; run < Number(values.runs); run++) {
      const t = performance.now();
      const c = await startBenchController(kubeconfig, NS, '8', [], { main: v.main || undefined, nodeFlags: v.flags, env: v.env });
      await untilFullPass(c.metricsUrl, COUNT);
      const pass = (performance.now() - t) / 1000;
      await new Promise((r) => setTimeout(r, 3000));
      peaks.push(peakRssMiB(c.pid));
      console.log(`  ${v.name} run ${run + 1}: listed and one full pass in ${pass.toFixed(1)} s; peak RSS ${peakRssMiB(c.pid).toFixed(0)} MiB, RSS 3 s later ${rssMiB(c.pid).toFixed(0)} MiB (${rssSplit(c.pid)})`);
      if (process.env.SLIPWAY_BENCH_HEAP_SNAPSHOTS && run === 0) {
        // A heap snapshot of the first process of each variant, after its peak was read.
        c.process.kill('SIGUSR2');
        await new Promise((r) => setTimeout(r, 15_000));
      }
      c.process.kill('SIGTERM');
      await new Promise((r) => c.process.once('exit', r));
    }
    rows.push(`${v.name.padEnd(24)} peak RSS ${peaks.map((p) => p.toFixed(0)).join(' / ')} MiB`);
  }
  console.log(`\ncold start on ${COUNT} ModelDeployments (1 replica each, no batch), ${values.runs} processes each:\n${rows.join('\n')}`);
  client.close();
});
