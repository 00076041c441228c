// Slipway beside Argo Rollouts on the same local control plane: the same create-then-edit scenario for each
// controller in turn, each on a fresh cluster, at equal client limits; prints a table per run and the ratios.
//   npm run bench:peers -- [--count 1000] [--concurrency 32] [--runs slipway,slipway-no-batch,argo-qps40,argo-qps200] [--repeat N]
// With --repeat N each run is made N times, one after the other, and the combined table gives each figure's median
// over the N, with the spread (min–max) of the figures that move between runs.
// Scenario: N objects created `concurrency` at a time, each to be Ready/Healthy with 1 replica on KWOK nodes; then
// all N edited (a new version: a new pod template) and converged again. Measured at the source: create → Ready and
// create → first child from watches of the API server; CPU and peak RSS of the controller's process from /proc;
// requests from the API server's APF counter for the controller's own identity.
// Argo Rollouts v1.10.2 is built from its Go module (local/tools/argo-rollouts) on first use.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { installSlipwayCrds, startCluster, type Cluster } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { freePorts, runScript } from '../../local/processes.ts';
import { ARGO_ROLLOUTS_VERSION, ensureBinaries, moduleDir, PEER_TOOLS } from '../../local/toolchain.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { ListWatch } from '../../src/kube/list-watch.ts';
import { Resources, type KubeObject, type ResourceType } from '../../src/kube/resources.ts';
import { apiServerMetrics, writesBetween } from '../../test/support/apiserver-writes.ts';
import { scrape, total } from '../../test/support/prometheus-text.ts';
import { benchIdentity, benchModelDeployment, cpuSeconds, dispatched, peakRssMiB, percentile, startBenchController } from '../support.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '32' },
    runs: { type: 'string', default: 'slipway,slipway-no-batch,argo-qps40,argo-qps200' },
    // Equal client limits: Slipway runs at the limits of the Argo run it is compared with (qps 200 / burst 400).
    qps: { type: 'string', default: '200' },
    burst: { type: 'string', default: '400' },
    workers: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '1' },
  },
});
const COUNT = Number(values.count);
/**
 * The writes either controller makes, as the API server counts them (all clients: for Slipway, the ReplicaSets
 * are the Deployment controller's; status subresources of children, the kube-controller-manager's, are left out).
 */
const WRITES = [
  ...['modeldeployments', 'rollouts'].map((resource) => ({ resource, subresources: ['', 'status'] })),
  ...['deployments', 'replicasets', 'services', 'cronjobs', 'controllerrevisions', 'events'].map((resource) => ({ resource, subresources: [''] })),
];
const CONCURRENCY = Number(values.concurrency);
const NS = 'bench';

const ROLLOUT: ResourceType = { group: 'argoproj.io', version: 'v1alpha1', plural: 'rollouts', kind: 'Rollout', namespaced: true };
const REPLICA_SET: ResourceType = { group: 'apps', version: 'v1', plural: 'replicasets', kind: 'ReplicaSet', namespaced: true };

type Obj = KubeObject & { status?: Record<string, unknown> };

interface Peer {
  label: string;
  resource: ResourceType;
  child: ResourceType;
  /** The owner's name of a child, when the child is the controller's first for that object. */
  ownerOf: (child: KubeObject) => string | undefined;
  manifest: (name: string) => Obj;
  /** The merge patch that makes a new version (a new pod template). */
  edit: Record<string, unknown>;
  /** Converged at the object's current generation: Ready (Slipway) or Healthy (Argo Rollouts). */
  converged: (obj: Obj) => boolean;
  start: (kubeconfig: string) => Promise<{ process: ChildProcess; pid: number; metricsUrl?: string }>;
  differences: string;
}

const POD_TEMPLATE = {
  metadata: { labels: { app: 'bench' } },
  spec: { containers: [{ name: 'server', image: 'registry.example.com/mlserver:1.6.1', ports: [{ containerPort: 8080 }], resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
};

function slipway(batch: boolean): Peer {
  return {
    label: batch ? 'Slipway' : 'Slipway, no batch CronJob',
    resource: Resources.ModelDeployment,
    child: Resources.Deployment,
    ownerOf: (c) => c.metadata.labels?.['slipway.dev/model-deployment'],
    manifest: (name) => benchModelDeployment(name, NS, batch),
    edit: { spec: { model: { version: '2' } } },
    converged: (o) => {
      const s = o.status as { observedGeneration?: number; conditions?: { type: string; status: string }[] } | undefined;
      return s?.observedGeneration === o.metadata.generation && s?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    },
    start: (kubeconfig) => startBenchController(kubeconfig, NS, values.workers ?? '10', [`--kube-api-qps=${values.qps}`, `--kube-api-burst=${values.burst}`]),
    differences: batch
      ? 'per object: a Deployment, a Service, a batch CronJob and a ControllerRevision (Argo: a ReplicaSet)'
      : 'per object: a Deployment, a Service and a ControllerRevision (Argo: a ReplicaSet)',
  };
}

function argo(qps: number, burst: number, binDir: string): Peer {
  return {
    label: `Argo Rollouts ${ARGO_ROLLOUTS_VERSION}, qps ${qps} / burst ${burst}`,
    resource: ROLLOUT,
    child: REPLICA_SET,
    ownerOf: (c) => c.metadata.ownerReferences?.find((r) => r.kind === 'Rollout')?.name,
    manifest: (name) => ({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Rollout',
      metadata: { name, namespace: NS },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'bench', rollout: name } },
        template: { ...POD_TEMPLATE, metadata: { labels: { app: 'bench', rollout: name } } },
        strategy: { canary: {} },
      },
    }),
    edit: { spec: { template: { metadata: { annotations: { version: '2' } } } } },
    converged: (o) => {
      const s = o.status as { observedGeneration?: string; phase?: string; stableRS?: string; currentPodHash?: string } | undefined;
      return s?.observedGeneration === String(o.metadata.generation) && s?.phase === 'Healthy' && s?.stableRS !== undefined && s.stableRS === s.currentPodHash;
    },
    start: async (kubeconfig) => {
      const [metrics, healthz] = (await freePorts(2)) as [number, number];
      const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', join(binDir, 'rollouts-controller'), `--kubeconfig=${kubeconfig}`, '--namespaced', `--namespace=${NS}`,
        `--qps=${qps}`, `--burst=${burst}`, `--metricsport=${metrics}`, `--healthzPort=${healthz}`, '--leader-elect=false', '--loglevel=error', '--rollout-resync=0'], { stdio: ['ignore', 'ignore', 'inherit'] });
      await eventually('Argo Rollouts to answer on /healthz', async () => (await fetch(`http://127.0.0.1:${healthz}/healthz`).catch(() => undefined))?.ok === true, { timeoutMs: 60_000 });
      return { process: child, pid: child.pid ?? 0 };
    },
    differences: 'per object: a ReplicaSet (no Service, no CronJob, no revision history object)',
  };
}

interface Result {
  label: string;
  createReady: number[];
  createChild: number[];
  createConverged: number;
  editConverged: number;
  rss: number;
  cpu: number;
  requests: number;
  differences: string;
  heap?: string;
}

async function runOne(peer: Peer): Promise<Result> {
  const dir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-peers-${process.pid}`);
  console.log(`\n== ${peer.label}: a fresh local control plane in ${dir}`);
  const cluster = await startCluster({ dir, upstreamCrds: false, audit: false, log: (l) => console.log(`  ${l}`) });
  try {
    if (peer.resource === ROLLOUT) {
      const crds = join(moduleDir('github.com/argoproj/argo-rollouts', ARGO_ROLLOUTS_VERSION, PEER_TOOLS[0]?.toolchain), 'manifests', 'crds');
      await cluster.kubectl(['apply', '--server-side', '-k', crds]);
      // The CRD may have no conditions yet the instant it is created: kubectl wait then fails rather than waits.
      await eventually('the Rollout CRD to be Established', async () => (await cluster.kubectl(['get', 'crd', 'rollouts.argoproj.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])).trim() === 'True', { timeoutMs: 60_000 });
    } else {
      await installSlipwayCrds(cluster.kubectl);
    }
    await cluster.kubectl(['create', 'namespace', NS]);
    await eventually('the default ServiceAccount', () => cluster.kubectl(['get', 'sa', 'default', '-n', NS, '-o', 'name']));
    const kubeconfig = await benchIdentity(cluster.kubectl, NS, cluster.kubeconfig, dir);
    const controller = await peer.start(kubeconfig);
    try {
      const result = await scenario(cluster, peer, controller.pid);
      if (controller.metricsUrl) {
        // What the heap holds at the end, beside the process's peak: the rest is V8's spaces and Node itself.
        const m = await scrape(controller.metricsUrl);
        result.heap = `${(total(m, 'slipway_nodejs_heap_size_used_bytes') / 1048576).toFixed(0)} MiB used of ${(total(m, 'slipway_nodejs_heap_size_total_bytes') / 1048576).toFixed(0)} MiB`;
      }
      return result;
    } finally {
      controller.process.kill('SIGTERM');
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scenario(cluster: Cluster, peer: Peer, pid: number): Promise<Result> {
  const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: CONCURRENCY });
  const created = new Map<string, number>();
  const firstChild = new Map<string, number>();
  const ready = new Map<string, number>();
  const edited = new Map<string, number>();
  const reconverged = new Map<string, number>();
  let listed = 0;
  const objects = new ListWatch<Obj>(client, peer.resource, {
    onList: () => listed++,
    onEvent: (_type, obj) => {
      const name = obj.metadata.name;
      if (!peer.converged(obj)) return;
      if (!ready.has(name)) ready.set(name, performance.now());
      else if (edited.has(name) && !reconverged.has(name) && obj.metadata.generation === 2) reconverged.set(name, performance.now());
    },
  }, { namespace: NS });
  const children = new ListWatch<KubeObject>(client, peer.child, {
    onList: () => listed++,
    onEvent: (type, obj) => {
      const owner = peer.ownerOf(obj);
      if (type === 'ADDED' && owner && !firstChild.has(owner)) firstChild.set(owner, performance.now());
    },
  }, { namespace: NS });
  objects.start();
  children.start();
  await eventually('both watches to have listed', () => listed >= 2);
  const names = Array.from({ length: COUNT }, (_, i) => `model-${String(i).padStart(5, '0')}`);
  const inParallel = async (fn: (name: string) => Promise<unknown>): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < names.length) await fn(names[next++] ?? '');
    }));
  };
  // The writes the API server counts, by verb and resource, per object: on create and on the edit.
  const perObject = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${(n / COUNT).toFixed(2)}`).join(', ');
  const scrape0 = await apiServerMetrics(cluster.kubectl);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await inParallel(async (name) => {
    created.set(name, performance.now());
    await client.create(peer.resource, peer.manifest(name));
  });
  await eventually(`all ${COUNT} Ready`, () => ready.size >= COUNT, { timeoutMs: 60 * 60_000, intervalMs: 500 });
  const createConverged = (Math.max(...ready.values()) - t0) / 1000;
  const scrape1 = await apiServerMetrics(cluster.kubectl);
  console.log(`  created and converged in ${createConverged.toFixed(1)} s; writes per object: ${perObject(writesBetween(scrape0, scrape1, WRITES))}; editing all ${COUNT}`);
  const t1 = performance.now();
  await inParallel(async (name) => {
    edited.set(name, performance.now());
    await client.mergePatch(peer.resource, NS, name, peer.edit);
  });
  await eventually(`all ${COUNT} converged on the edit`, () => reconverged.size >= COUNT, { timeoutMs: 60 * 60_000, intervalMs: 500 });
  const editConverged = (Math.max(...reconverged.values()) - t1) / 1000;
  const scrape2 = await apiServerMetrics(cluster.kubectl);
  console.log(`  edited and converged in ${editConverged.toFixed(1)} s; writes per object: ${perObject(writesBetween(scrape1, scrape2, WRITES))}`);
  const requests = dispatched(scrape2);
  const since = (at: Map<string, number>): number[] => names.map((n) => ((at.get(n) ?? NaN) - (created.get(n) ?? NaN)) / 1000).sort((a, b) => a - b);
  const result = {
    label: peer.label,
    createReady: since(ready),
    createChild: since(firstChild),
    createConverged,
    editConverged,
    rss: peakRssMiB(pid),
    cpu: cpuSeconds(pid) - cpu0,
    requests,
    differences: peer.differences,
  };
  await objects.stop();
  await children.stop();
  client.close();
  return result;
}

/** One run's figures, or the median of several runs' figures. */
interface Summary {
  label: string;
  readyP50: number;
  readyP99: number;
  createConverged: number;
  editConverged: number;
  childP50: number;
  childP95: number;
  rss: number;
  cpu: number;
  requests: number;
  heap?: string;
  /** With several runs: each figure's min–max, for the figures that move between runs. */
  spread?: string;
}

function summary(r: Result): Summary {
  return {
    label: r.label,
    readyP50: percentile(r.createReady, 50),
    readyP99: percentile(r.createReady, 99),
    createConverged: r.createConverged,
    editConverged: r.editConverged,
    childP50: percentile(r.createChild, 50),
    childP95: percentile(r.createChild, 95),
    rss: r.rss,
    cpu: r.cpu,
    requests: r.requests,
    ...(r.heap ? { heap: r.heap } : {}),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/** Each figure's median over the runs of one peer (a median of each figure, not the figures of a median run). */
function medianOf(runs: Summary[]): Summary {
  const first = runs[0];
  if (!first || runs.length === 1) return first as Summary;
  const m = (f: (s: Summary) => number): number => median(runs.map(f));
  const range = (name: string, f: (s: Summary) => number, digits = 1): string => `${name} ${Math.min(...runs.map(f)).toFixed(digits)}–${Math.max(...runs.map(f)).toFixed(digits)}`;
  return {
    label: `${first.label} (median of ${runs.length})`,
    readyP50: m((s) => s.readyP50),
    readyP99: m((s) => s.readyP99),
    createConverged: m((s) => s.createConverged),
    editConverged: m((s) => s.editConverged),
    childP50: m((s) => s.childP50),
    childP95: m((s) => s.childP95),
    rss: m((s) => s.rss),
    cpu: m((s) => s.cpu),
    requests: m((s) => s.requests),
    spread: [range('create → Ready p50', (s) => s.readyP50), range('edited → converged', (s) => s.editConverged), range('RSS', (s) => s.rss, 0), range('CPU', (s) => s.cpu)].join(', '),
  };
}

function table(results: Summary[]): string {
  const f1 = (n: number): string => n.toFixed(1);
  const rows: [string, (r: Summary) => string][] = [
    ['create → Ready p50 / p99 (s)', (r) => `${f1(r.readyP50)} / ${f1(r.readyP99)}`],
    ['all created → converged (s)', (r) => f1(r.createConverged)],
    ['all edited → converged (s)', (r) => f1(r.editConverged)],
    ['controller\'s share: create → first child p50 / p95 (s)', (r) => `${f1(r.childP50)} / ${f1(r.childP95)}`],
    ['controller peak RSS (MiB)', (r) => r.rss.toFixed(0)],
    ['controller heap at the end (its own report; RSS above is from /proc)', (r) => r.heap ?? (r.spread ? '(see each run)' : '(not a Node process)')],
    ['controller CPU, create + edit (s)', (r) => f1(r.cpu)],
    ['API requests (the API server\'s count, per object)', (r) => `${r.requests} (${(r.requests / COUNT).toFixed(1)})`],
  ];
  const head = `| | ${results.map((r) => r.label).join(' | ')} |\n|---|${results.map(() => '---').join('|')}|`;
  return `${head}\n${rows.map(([name, f]) => `| ${name} | ${results.map(f).join(' | ')} |`).join('\n')}`;
}

function ratios(results: Summary[]): string {
  const base = results.find((r) => r.label.includes('qps 200')) ?? results.find((r) => r.label.startsWith('Argo'));
  if (!base) return '';
  const lines = results.filter((r) => r.label.startsWith('Slipway')).map((r) => {
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
    return `${r.label} ÷ ${base.label}: create → Ready p50 ${ratio(r.readyP50, base.readyP50)}, `
      + `all edited → converged ${ratio(r.editConverged, base.editConverged)}, peak RSS ${ratio(r.rss, base.rss)}, CPU ${ratio(r.cpu, base.cpu)}, `
      + `first child p50 ${ratio(r.childP50, base.childP50)}`;
  });
  return lines.join('\n');
}

runScript(async () => {
  const runs = (values.runs ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  const needArgo = runs.some((r) => r.startsWith('argo'));
  const argoBin = needArgo ? (await ensureBinaries((l) => console.log(`  ${l}`), 'peers')).binDir : '';
  const peers: Peer[] = runs.map((r) => {
    if (r === 'slipway') return slipway(true);
    if (r === 'slipway-no-batch') return slipway(false);
    const m = /^argo-qps(\d+)$/.exec(r);
    if (m) return argo(Number(m[1]), Number(m[1]) * 2, argoBin);
    throw new Error(`unknown run ${r}: slipway, slipway-no-batch, argo-qps<N>`);
  });
  const repeat = Math.max(1, Number(values.repeat));
  const results: Summary[] = [];
  const differences: string[] = [];
  for (const peer of peers) {
    const runs: Summary[] = [];
    for (let i = 0; i < repeat; i++) {
      const r = await runOne(peer);
      runs.push(summary(r));
      if (i === 0) differences.push(`${r.label}: ${r.differences}`);
      // Each run's figures as soon as it ends: a later run that fails loses nothing.
      console.log(table([summary(r)]));
    }
    results.push(medianOf(runs));
  }
  console.log(`\n${new Date().toISOString().slice(0, 10)} on ${hostname()} (${(await import('node:os')).cpus().length} cores): ${COUNT} objects created ${CONCURRENCY} at a time, then all edited; `
    + `1 replica each on KWOK nodes; Slipway with --workers=${values.workers} at --kube-api-qps=${values.qps} --kube-api-burst=${values.burst}, Argo Rollouts with its 10 rollout threads\n`);
  console.log(table(results));
  for (const r of results.filter((x) => x.spread)) console.log(`\n${r.label}, spread over the runs (s, MiB): ${r.spread ?? ''}`);
  console.log(`\n${ratios(results)}`);
  console.log(`\nWhat still differs: ${differences.join('; ')}. Slipway also writes Events and a status with conditions per step; Argo Rollouts' canary with no steps promotes at once.`);
});
