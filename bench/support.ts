// What the benchmarks share: percentiles, the controller's CPU and memory from /proc, and a controller process
// running under an identity of its own that an API Priority and Fairness FlowSchema matches, so that the API
// server counts exactly the controller's requests (apiserver_flowcontrol_dispatched_requests_total).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { installSlipwayCrds, startCluster, type Cluster } from '../local/cluster.ts';
import { eventually } from '../local/eventually.ts';
import { writeTokenKubeconfig } from '../local/pki.ts';
import { freePorts, runScript } from '../local/processes.ts';
import { scrape, total, type Samples } from '../test/support/prometheus-text.ts';
import type { KubeObject } from '../src/kube/resources.ts';
import { NODE_FLAGS, PROCESS_ENV } from '../src/runtime/node-flags.ts';
import { stripTypes } from '../image/build.ts';

export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** p50 / p95 / p99 of seconds, formatted. */
export function percentiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return [50, 95, 99].map((p) => percentile(sorted, p).toFixed(2)).join(' / ');
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const procStatusMiB = (pid: number, field: 'VmHWM' | 'VmRSS' | 'RssAnon' | 'RssFile'): number =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** A process's peak resident memory so far (since it started, or since resetPeakRss). */
export const peakRssMiB = (pid: number): number => procStatusMiB(pid, 'VmHWM');

/** A process's resident memory now. */
export const rssMiB = (pid: number): number => procStatusMiB(pid, 'VmRSS');

/** What of a process's resident memory is anonymous (heaps: V8's and malloc's) and what is mapped files (code). */
export const rssSplit = (pid: number): string => `anonymous ${procStatusMiB(pid, 'RssAnon').toFixed(0)} MiB, files ${procStatusMiB(pid, 'RssFile').toFixed(0)} MiB`;

/** Until the controller has reconciled `count` keys and its queue is empty and idle: one full pass over a fleet. */
export async function untilFullPass(metricsUrl: string, count: number): Promise<void> {
  await eventually('one full pass', async () => {
    const m = await scrape(metricsUrl);
    return total(m, 'slipway_reconcile_total') >= count && total(m, 'slipway_workqueue_depth') === 0 && total(m, 'slipway_workqueue_in_flight') === 0;
  }, { timeoutMs: 60 * 60_000, intervalMs: 250 });
}

/** Resets a process's peak RSS (VmHWM) to its current RSS, so that the next peakRssMiB is a phase's own. */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** The benchmarks' ModelDeployment: one replica of a server on KWOK, and (the standard workload) a batch CronJob. */
export function benchModelDeployment(name: string, namespace: string, batch: boolean): KubeObject {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name, namespace },
    spec: {
      model: { name: 'churn', version: '1', uri: `s3://models/${name}/1/`, format: 'sklearn' },
      image: 'registry.example.com/mlserver:1.6.1',
      replicas: 1,
      ...(batch ? { batch: { schedule: '0 2 * * *' } } : {}),
    },
  };
}

export const FLOW_SCHEMA = 'slipway-bench';

/** Every request of the controller's identity the API server dispatched (watch starts included). */
export const dispatched = (m: Samples): number => total(m, 'apiserver_flowcontrol_dispatched_requests_total', new RegExp(`flow_schema="${FLOW_SCHEMA}"`));

type Kubectl = (args: string[], input?: string) => Promise<string>;

/** A ServiceAccount for the controller (cluster-admin: this measures requests, not RBAC), a FlowSchema matching it, and its kubeconfig. */
export async function benchIdentity(kubectl: Kubectl, namespace: string, adminKubeconfig: string, dir: string): Promise<string> {
  await kubectl(['create', 'serviceaccount', 'slipway-bench', '-n', namespace]);
  await kubectl(['create', 'clusterrolebinding', 'slipway-bench', '--clusterrole=cluster-admin', `--serviceaccount=${namespace}:slipway-bench`]);
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
    kind: 'FlowSchema',
    metadata: { name: FLOW_SCHEMA },
    spec: {
      priorityLevelConfiguration: { name: 'workload-high' },
      matchingPrecedence: 100,
      distinguisherMethod: { type: 'ByUser' },
      rules: [{
        subjects: [{ kind: 'ServiceAccount', serviceAccount: { name: 'slipway-bench', namespace } }],
        resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true }],
        nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
      }],
    },
  }));
  const token = (await kubectl(['create', 'token', 'slipway-bench', '-n', namespace, '--duration=6h'])).trim();
  return writeTokenKubeconfig(adminKubeconfig, token, join(dir, 'bench-controller.kubeconfig'));
}

const stripped = new Map<string, string>();

/**
 * The controller as its image runs it: the checkout's src/ as JavaScript with types stripped ahead of time
 * (image/build.ts), so that Node's type stripper (~18 MiB resident) is not counted as the controller's. Copied
 * once per benchmark process into the checkout's .cache/ (where its node_modules resolve) and removed at exit.
 */
function asImageRuns(main: string): string {
  const src = dirname(main);
  let out = stripped.get(src);
  if (!out) {
    const dir = join(dirname(src), '.cache', 'bench-js', String(process.pid));
    out = join(dir, 'src');
    cpSync(src, out, { recursive: true });
    stripTypes(out);
    stripped.set(src, out);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return join(out, basename(main).replace(/\.ts$/, '.js'));
}

/** The items of a list that are environment assignments (`NAME=VALUE`), as an environment. */
export const isEnvAssignment = (f: string): boolean => /^[A-Z_][A-Z0-9_]*=/.test(f);
export const envAssignments = (items: string[]): Record<string, string> =>
  Object.fromEntries(items.filter(isEnvAssignment).map((f) => f.split(/=(.*)/s).slice(0, 2) as [string, string]));

/** The controller (src/main.ts) in a process of its own, dying with this one; ready when it returns. */
export async function startBenchController(kubeconfig: string, namespace: string, workers: string, extraArgs: string[] = [], opts: { main?: string | undefined; nodeFlags?: string[]; env?: Record<string, string> } = {}): Promise<{ process: ChildProcess; pid: number; metricsUrl: string }> {
  const [port] = (await freePorts(1)) as [number];
  // As JavaScript and with the V8 flags and environment the image runs it with (NODE_FLAGS, PROCESS_ENV), so that its memory is what a pod's would be; with
  // SLIPWAY_BENCH_HEAP_SNAPSHOTS=DIR, SIGUSR2 writes a heap snapshot there; SLIPWAY_BENCH_NODE_FLAGS adds flags
  // (e.g. `--cpu-prof --cpu-prof-dir=DIR`: a CPU profile written when the controller exits); SLIPWAY_BENCH_ENV
  // (`NAME=VALUE,…`) sets environment variables over the image's (e.g. `MALLOC_ARENA_MAX=16`, glibc's default here).
  const benchEnv = envAssignments((process.env.SLIPWAY_BENCH_ENV ?? '').split(','));
  const snapshots = process.env.SLIPWAY_BENCH_HEAP_SNAPSHOTS ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${process.env.SLIPWAY_BENCH_HEAP_SNAPSHOTS}`] : [];
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...NODE_FLAGS, ...(opts.nodeFlags ?? []), ...(process.env.SLIPWAY_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), ...snapshots, asImageRuns(opts.main ?? join(import.meta.dirname, '..', 'src', 'main.ts')),
    `--kubeconfig=${kubeconfig}`, `--namespace=${namespace}`, '--no-leader-elect', `--metrics-port=${port}`, '--metrics-host=127.0.0.1',
    // No client-side rate limit unless a bench asks for one: the figures are what the API server allows.
    `--workers=${workers}`, '--resync-seconds=0', '--kube-api-qps=0', ...extraArgs], { stdio: ['ignore', process.env.SLIPWAY_BENCH_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'], env: { ...process.env, ...PROCESS_ENV, ...benchEnv, ...opts.env, SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_BENCH_LOG_LEVEL ?? 'warn', SLIPWAY_LOG_FORMAT: 'json' } });
  await eventually('the controller to be ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, { timeoutMs: 30_000 });
  return { process: child, pid: child.pid ?? 0, metricsUrl: `http://127.0.0.1:${port}/metrics` };
}

export interface BenchContext {
  cluster: Cluster;
  /** The benchmark's scratch directory (removed afterwards). */
  dir: string;
  controller: { process: ChildProcess; pid: number; metricsUrl: string };
  /** The controller's kubeconfig (its own identity), to start another controller process with. */
  kubeconfig: string;
}

/**
 * Runs a benchmark on a fresh local control plane of its own: Slipway's CRDs, the namespace, and the controller
 * under its own identity (see benchIdentity) watching that namespace. Everything is torn down afterwards, and the
 * process exits 1 on failure.
 */
export function runBench(opts: { namespace: string; upstreamCrds: boolean; workers: string; nodes?: number; controllerArgs?: (dir: string) => string[] }, body: (b: BenchContext) => Promise<void>): void {
  const main = async (): Promise<void> => {
    const dir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-bench-${process.pid}`);
    console.log(`starting the local control plane in ${dir}`);
    const cluster = await startCluster({ dir, upstreamCrds: opts.upstreamCrds, audit: false, ...(opts.nodes ? { nodes: opts.nodes } : {}), log: (l) => console.log(`  ${l}`) });
    try {
      await installSlipwayCrds(cluster.kubectl);
      await cluster.kubectl(['create', 'namespace', opts.namespace]);
      await eventually('the default ServiceAccount', () => cluster.kubectl(['get', 'sa', 'default', '-n', opts.namespace, '-o', 'name']));
      // The controller runs as a ServiceAccount of its own, which an APF FlowSchema of its own matches: the API
      // server's apiserver_flowcontrol_dispatched_requests_total then counts exactly the controller's requests.
      const kubeconfig = await benchIdentity(cluster.kubectl, opts.namespace, cluster.kubeconfig, dir);
      const controller = await startBenchController(kubeconfig, opts.namespace, opts.workers, opts.controllerArgs?.(dir));
      try {
        await body({ cluster, controller, dir, kubeconfig });
      } finally {
        controller.process.kill('SIGTERM');
      }
    } finally {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  };
  runScript(main);
}
