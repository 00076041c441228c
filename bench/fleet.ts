// A fleet of ModelDeployments at rest and under change, on a fresh local control plane (KWOK nodes enough for one
// pod each): the figures a platform team asks of a controller at 10,000 objects.
//   npm run bench:fleet -- [--count 10000] [--edits 1000] [--singles 40]
// Prints: create → all Ready; cold start (a new controller process: caches synced, then one full pass over the
// fleet); single-change latency on an idle fleet, one at a time: an edit's answer → its observedGeneration seen
// (the controller has acted on it), and → Ready at that generation (the new revision created, its pod started by
// KWOK, promoted), with where that time goes, step by step, from watches of the changed objects' children;
// a burst of edits (all converged); API requests a minute at rest as the API server counts them for the
// controller's identity (lease renewals included: the controller runs with leader election); peak RSS from /proc.
import { parseArgs } from 'node:util';
import { eventually } from '../local/eventually.ts';
import { KubeClient } from '../src/kube/client.ts';
import { ListWatch } from '../src/kube/list-watch.ts';
import { Resources, type KubeObject } from '../src/kube/resources.ts';
import { LABEL_MODEL_DEPLOYMENT } from '../src/controllers/modeldeployment/children.ts';
import { apiServerMetrics } from '../test/support/apiserver-writes.ts';
import { benchModelDeployment, dispatched, peakRssMiB, percentile, resetPeakRss, runBench, startBenchController, untilFullPass } from './support.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '10000' }, edits: { type: 'string', default: '1000' }, singles: { type: 'string', default: '40' }, concurrency: { type: 'string', default: '32' }, workers: { type: 'string', default: '8' }, 'rest-seconds': { type: 'string', default: '120' } } });
const COUNT = Number(values.count);
const CONCURRENCY = Number(values.concurrency);
const NS = 'fleet';

type MD = KubeObject & { status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] } };
const converged = (o: MD): boolean => o.status?.observedGeneration === o.metadata.generation && o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
type Step = 'edited' | 'observed' | 'deployment' | 'pod' | 'scheduled' | 'podReady' | 'available' | 'ready';
interface Timeline { generation: number; at: Partial<Record<Step, number>>; created: Set<string> }
type Child = KubeObject & { spec?: { nodeName?: string }; status?: { availableReplicas?: number; conditions?: { type: string; status: string }[] } };
const fmt = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${(percentile(s, 50) * 1000).toFixed(0)} ms, p99 ${(percentile(s, 99) * 1000).toFixed(0)} ms`;
};

runBench({ namespace: NS, upstreamCrds: false, workers: values.workers ?? '8', nodes: Math.ceil(COUNT / 1000) + 1, controllerArgs: () => ['--leader-elect', `--leader-election-namespace=${NS}`] }, async ({ cluster, controller, kubeconfig }) => {
  const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: CONCURRENCY });
  // The latest state of every object, and who is waiting for which generation of which object.
  const latest = new Map<string, MD>();
  const waiters = new Map<string, { generation: number; resolve: (at: number) => void }>();
  let listed = false;
  // A single change's steps, each first seen through a watch (performance.now()), by ModelDeployment name; only
  // children created after the edit count (the old revision's pod is Ready too).
  const tracked = new Map<string, Timeline>();
  const mark = (t: Timeline, step: Step): void => {
    t.at[step] ??= performance.now();
  };
  const watch = new ListWatch<MD>(client, Resources.ModelDeployment, {
    onList: (items) => {
      for (const o of items) latest.set(o.metadata.name, o);
      listed = true;
    },
    onEvent: (_type, o) => {
      latest.set(o.metadata.name, o);
      const track = tracked.get(o.metadata.name);
      if (track && (o.status?.observedGeneration ?? 0) > track.generation) mark(track, 'observed');
      const w = waiters.get(o.metadata.name);
      if (w && converged(o) && (o.metadata.generation ?? 0) >= w.generation) {
        waiters.delete(o.metadata.name);
        w.resolve(performance.now());
      }
    },
  }, { namespace: NS });
  watch.start();
  await eventually('the watch to list', () => listed);
  const names = Array.from({ length: COUNT }, (_, i) => `m-${String(i).padStart(5, '0')}`);
  const inParallel = async (keys: string[], fn: (name: string) => Promise<unknown>): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < keys.length) await fn(keys[next++] ?? '');
    }));
  };
  const allConverged = (): boolean => names.every((n) => {
    const o = latest.get(n);
    return o !== undefined && converged(o);
  });

  console.log(`creating ${COUNT} ModelDeployments, ${CONCURRENCY} at a time`);
  const t0 = performance.now();
  await inParallel(names, (name) => client.create(Resources.ModelDeployment, benchModelDeployment(name, NS, false)));
  await eventually(`all ${COUNT} Ready`, allConverged, { timeoutMs: 3 * 60 * 60_000, intervalMs: 2000 });
  const createAll = (performance.now() - t0) / 1000;
  console.log(`  all Ready ${createAll.toFixed(0)} s after the first create`);

  // Cold start: a second controller process replaces the first (which leaves its lease): caches synced, one full pass.
  const rssFirst = peakRssMiB(controller.pid);
  controller.process.kill('SIGTERM');
  await new Promise((r) => controller.process.once('exit', r));
  const t1 = performance.now();
  const second = await startBenchController(kubeconfig, NS, values.workers ?? '8', ['--leader-elect', `--leader-election-namespace=${NS}`]);
  const synced = (performance.now() - t1) / 1000;
  await untilFullPass(second.metricsUrl, COUNT);
  const fullPass = (performance.now() - t1) / 1000;
  // The second process's peak, phase by phase (VmHWM reset at each phase's start).
  const phases: [string, number][] = [['cold start and full pass', peakRssMiB(second.pid)]];
  const phase = (name: string): void => {
    phases.push([name, peakRssMiB(second.pid)]);
    resetPeakRss(second.pid);
  };
  resetPeakRss(second.pid);
  if (process.env.SLIPWAY_BENCH_HEAP_SNAPSHOTS) second.process.kill('SIGUSR2');
  console.log(`  cold start: caches synced in ${synced.toFixed(1)} s, one full pass done ${fullPass.toFixed(1)} s after start`);

  // At rest: the API server's count of the controller's requests over a quiet period (watch restarts and lease
  // renewals included).
  const restSeconds = Number(values['rest-seconds']);
  const r0 = dispatched(await apiServerMetrics(cluster.kubectl));
  await new Promise((r) => setTimeout(r, restSeconds * 1000));
  const r1 = dispatched(await apiServerMetrics(cluster.kubectl));
  const perMinute = ((r1 - r0) / restSeconds) * 60;
  phase('at rest');

  const edit = async (name: string, version: string, answered?: (at: number) => void): Promise<number> => {
    const done = new Promise<number>((resolve) => waiters.set(name, { generation: Infinity, resolve }));
    const patched = await client.mergePatch<MD>(Resources.ModelDeployment, NS, name, { spec: { model: { version } } });
    const t = performance.now();
    answered?.(t);
    const w = waiters.get(name);
    if (w) w.generation = patched.metadata.generation ?? 0;
    // The watch may have delivered it already.
    const now = latest.get(name);
    if (w && now && converged(now) && (now.metadata.generation ?? 0) >= w.generation) {
      waiters.delete(name);
      w.resolve(performance.now());
    }
    return (await done) - t;
  };

  // Single changes on an idle fleet, one at a time, each followed through its children: watches of the Deployments
  // and pods of the ModelDeployments to be changed (a label selector: a few dozen objects), started after the rest.
  const singleNames = Array.from({ length: Number(values.singles) }, (_, i) => names[(i * 7919) % COUNT] ?? '');
  const selector = `${LABEL_MODEL_DEPLOYMENT} in (${[...new Set(singleNames)].join(',')})`;
  let childLists = 0;
  const childWatch = (r: typeof Resources.Pod, seen: (t: Timeline, type: string, o: Child) => void): ListWatch<Child> => new ListWatch<Child>(client, r, {
    onList: () => childLists++,
    onEvent: (type, o) => {
      const t = tracked.get(o.metadata.labels?.[LABEL_MODEL_DEPLOYMENT] ?? '');
      if (t && type !== 'DELETED') seen(t, type, o);
    },
  }, { namespace: NS, labelSelector: selector });
  const deployments = childWatch(Resources.Deployment, (t, type, o) => {
    if (type === 'ADDED') {
      t.created.add(`deployment/${o.metadata.name}`);
      mark(t, 'deployment');
    }
    if (t.created.has(`deployment/${o.metadata.name}`) && (o.status?.availableReplicas ?? 0) >= 1) mark(t, 'available');
  });
  const pods = childWatch(Resources.Pod, (t, type, o) => {
    if (type === 'ADDED') {
      t.created.add(`pod/${o.metadata.name}`);
      mark(t, 'pod');
    }
    if (t.created.has(`pod/${o.metadata.name}`) && o.spec?.nodeName) mark(t, 'scheduled');
    if (t.created.has(`pod/${o.metadata.name}`) && o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) mark(t, 'podReady');
  });
  deployments.start();
  pods.start();
  await eventually('the children\'s watches to list', () => childLists >= 2);
  const singles: number[] = [];
  const timelines: Timeline[] = [];
  for (const name of singleNames) {
    const t: Timeline = { generation: latest.get(name)?.metadata.generation ?? 0, at: {}, created: new Set() };
    tracked.set(name, t);
    const took = await edit(name, `s${timelines.length}`, (at) => (t.at.edited = at));
    t.at.ready = (t.at.edited ?? 0) + took;
    tracked.delete(name);
    singles.push(took / 1000);
    timelines.push(t);
  }
  phase('single changes');
  await deployments.stop();
  await pods.stop();
  // Each step's time from the step before it (a step not seen, or seen out of order, counts as 0 there and in full
  // at the next one seen).
  const stepsInOrder: [Step, string][] = [
    ['deployment', 'edit answered → the new revision\'s Deployment seen (Slipway\'s first reconcile)'],
    ['pod', '→ its pod seen (the Deployment and ReplicaSet controllers)'],
    ['scheduled', '→ the pod bound to a node (the scheduler)'],
    ['podReady', '→ the pod Ready (KWOK)'],
    ['available', '→ the Deployment available (the Deployment controller)'],
    ['ready', '→ Ready at the new generation seen (Slipway\'s promotion)'],
  ];
  const stepTimes = stepsInOrder.map(([step, label]) => {
    const xs = timelines.map((t) => {
      const before = stepsInOrder.slice(0, stepsInOrder.findIndex(([s]) => s === step)).map(([s]) => t.at[s]).filter((x): x is number => x !== undefined);
      const from = Math.max(t.at.edited ?? 0, ...before);
      const at = t.at[step];
      return at === undefined ? 0 : Math.max(0, at - from) / 1000;
    });
    return `    ${label.padEnd(82)} ${fmt(xs)}`;
  });
  const observed = timelines.map((t) => ((t.at.observed ?? NaN) - (t.at.edited ?? 0)) / 1000).filter((x) => Number.isFinite(x));

  // A burst of edits.
  const burst = names.filter((_, i) => i % Math.max(1, Math.floor(COUNT / Number(values.edits))) === 0).slice(0, Number(values.edits));
  const tb = performance.now();
  const burstLatency: number[] = [];
  await inParallel(burst, async (name) => burstLatency.push((await edit(name, 'burst')) / 1000));
  const burstAll = (performance.now() - tb) / 1000;
  phase('burst');

  console.log(`
ModelDeployments           ${COUNT} (1 replica each, no batch; ${Math.ceil(COUNT / 1000) + 1} KWOK nodes; ${values.workers} workers; leader election on)
create → all Ready         ${createAll.toFixed(0)} s (${CONCURRENCY} creates at a time)
cold start                 caches synced ${synced.toFixed(1)} s; one full pass done ${fullPass.toFixed(1)} s after the start
single change, idle fleet  observedGeneration seen ${fmt(observed)}; Ready at it ${fmt(singles)} (${singles.length} edits of the model version one at a time, from the edit's answer, seen through watches)
  where the time to Ready goes, each step from the one before:
${stepTimes.join('\n')}
burst of ${burst.length} edits        all converged ${burstAll.toFixed(1)} s after the first; each ${fmt(burstLatency)}
API requests at rest       ${perMinute.toFixed(1)} a minute (the API server's count for the controller's identity over ${restSeconds} s: watches and lease renewals included)
controller peak RSS        first process ${rssFirst.toFixed(0)} MiB (create); second ${Math.max(...phases.map(([, v]) => v)).toFixed(0)} MiB (${phases.map(([n, v]) => `${n} ${v.toFixed(0)}`).join(', ')})`);
  second.process.kill('SIGTERM');
  await watch.stop();
  client.close();
});
