// The local data plane, measured: set-up time, a serving pod from ModelDeployment applied to Ready, memory per
// model-server pod (PSS of every process in its network namespace, from /proc), inference throughput through the
// gateway with 1 and with 4 serving pods (open-model load at rising rates: achieved rate, p50, p99, errors), and
// how many serving pods this machine holds (memory, from /proc/meminfo, as pods are added). Needs root.
//   npm run bench:dataplane -- [--pods 12] [--step-seconds 5]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { installSlipwayCrds, startCluster } from '../local/cluster.ts';
import { eventually } from '../local/eventually.ts';
import { GATEWAY_NAME, GATEWAY_NAMESPACE } from '../local/gateway.ts';
import { MLSERVER_IMAGE } from '../local/images.ts';
import { runLoad, summarize } from '../local/loadgen.ts';
import { frameRequest, startModelStore, trainModel } from '../local/mlserver.ts';
import { namespaceOf } from '../local/podnet.ts';
import { freePorts } from '../local/processes.ts';
import { ensurePythonEnv } from '../local/python.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '12' }, 'step-seconds': { type: 'string', default: '5' } } });
const NS = 'bench';
const root = join(import.meta.dirname, '..');
const run = promisify(execFile);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const memAvailableMiB = (): number => Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024;

/** Proportional set size of every process in a pod's network namespace: its share of memory, shared pages split. */
async function podPssMiB(uid: string): Promise<number> {
  const out = await run('ip', ['netns', 'pids', namespaceOf(uid)]).then((r) => r.stdout, () => '');
  let kb = 0;
  for (const pid of out.split('\n').filter(Boolean)) {
    try {
      kb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kb / 1024;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:dataplane needs root: the data plane runs pods in network namespaces');
  const bin = await ensurePythonEnv((l) => console.error(l));
  const dir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-bench-dataplane-${process.pid}`);
  const t0 = performance.now();
  const cluster = await startCluster({ dir, serve: true, audit: false, log: (l) => console.error(`  ${l}`) });
  const setupSeconds = (performance.now() - t0) / 1000;
  const kubectl = cluster.kubectl;
  try {
    await installSlipwayCrds(kubectl);
    await kubectl(['create', 'namespace', NS]);
    await eventually('the default ServiceAccount', () => kubectl(['get', 'sa', 'default', '-n', NS, '-o', 'name']));
    const [port] = (await freePorts(1)) as [number];
    spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, join(root, 'src', 'main.ts'), `--kubeconfig=${cluster.kubeconfig}`, `--namespace=${NS}`,
      '--no-leader-elect', `--metrics-port=${port}`, '--metrics-host=127.0.0.1'], { stdio: 'ignore', env: { ...process.env, SLIPWAY_LOG_LEVEL: 'warn' } });
    await eventually('the controller', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000 });

    const models = mkdtempSync(join(tmpdir(), 'slipway-bench-models-'));
    const { offline } = await trainModel(bin, models, 'good', 1);
    const store = await startModelStore(models);
    const md = (name: string, replicas: number): string => JSON.stringify({
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'ModelDeployment',
      metadata: { name },
      spec: { model: { name: 'iris', version: '1', uri: `${store.url}/good-1/model.joblib`, format: 'sklearn' }, image: MLSERVER_IMAGE, runtime: { preset: 'mlserver' }, replicas, rollout: { scaleDownDelaySeconds: 0 } },
    });
    interface Pod { metadata: { name: string; uid: string; labels: Record<string, string> }; status?: { conditions?: { type: string; status: string }[] } }
    const pods = async (label: string): Promise<Pod[]> => (JSON.parse(await kubectl(['get', 'pods', '-n', NS, '-l', label, '-o', 'json'])) as { items: Pod[] }).items;
    const readyPods = async (label: string): Promise<Pod[]> => (await pods(label)).filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

    // 1. ModelDeployment applied → its pod Ready (controller, scheduler, pod runner, initializer, MLServer start, first probe).
    const toReady: number[] = [];
    for (let i = 0; i < 5; i++) {
      const name = `latency-${i}`;
      const start = performance.now();
      await kubectl(['apply', '-n', NS, '-f', '-'], md(name, 1));
      await eventually(`${name} Ready`, async () => (await readyPods(`slipway.dev/model-deployment=${name}`)).length === 1, { timeoutMs: 120_000, intervalMs: 100 });
      toReady.push((performance.now() - start) / 1000);
      await kubectl(['delete', '-n', NS, 'mdep', name, '--wait=true']);
    }

    // 2. Throughput through the gateway, 1 then 4 serving pods behind one Service.
    await kubectl(['apply', '-n', NS, '-f', '-'], md('tp', 1));
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'tp' },
      spec: { parentRefs: [{ name: GATEWAY_NAME, namespace: GATEWAY_NAMESPACE }], rules: [{ backendRefs: [{ name: 'tp', port: 80 }] }] },
    }));
    const url = `${cluster.gateway?.url}/v2/models/iris/infer`;
    const body = frameRequest(offline.columns, [offline.rows[0] ?? []]);
    const throughput: { servers: number; rate: number; achieved: number; p50: number; p99: number; errors: number }[] = [];
    for (const servers of [1, 4]) {
      await kubectl(['scale', '-n', NS, 'mdep/tp', `--replicas=${servers}`]);
      await eventually(`${servers} tp pods Ready`, async () => (await readyPods('slipway.dev/model-deployment=tp')).length === servers, { timeoutMs: 180_000, intervalMs: 250 });
      await eventually('the route serving every pod', async () => (await runLoad({ url, body, rate: 20, durationSeconds: 1 })).every((s) => s.status === 200), { timeoutMs: 60_000 });
      for (const rate of [50, 100, 200, 400]) {
        const seconds = Number(values['step-seconds']);
        const started = performance.now();
        const samples = await runLoad({ url, body, rate, durationSeconds: seconds, timeoutMs: 5000 });
        const elapsed = (performance.now() - started) / 1000;
        const ok = samples.filter((s) => s.status === 200);
        const s = summarize(ok.map((x) => ({ ...x, version: 'all' }))).all;
        throughput.push({ servers, rate, achieved: ok.length / elapsed, p50: s?.p50 ?? NaN, p99: s?.p99 ?? NaN, errors: samples.length - ok.length });
      }
    }

    // 3. Memory per serving pod, and how many this machine holds: add pods, watch MemAvailable fall.
    const target = Number(values.pods);
    const before = memAvailableMiB();
    await kubectl(['scale', '-n', NS, 'mdep/tp', `--replicas=${target}`]);
    const capacityStart = performance.now();
    await eventually(`${target} tp pods Ready`, async () => (await readyPods('slipway.dev/model-deployment=tp')).length === target, { timeoutMs: 600_000, intervalMs: 500 });
    const allReadySeconds = (performance.now() - capacityStart) / 1000;
    await new Promise((r) => setTimeout(r, 5000));
    const after = memAvailableMiB();
    const pss = await Promise.all((await pods('slipway.dev/model-deployment=tp')).map((p) => podPssMiB(p.metadata.uid)));
    const perPodFromMeminfo = (before - after) / (target - 4);

    console.log(`\nlocal data plane on ${process.env.HOSTNAME ?? 'this machine'} (2 cores), measured by npm run bench:dataplane`);
    console.log(`set-up (cluster + pod runner + gateway + Prometheus + registry, warm caches): ${setupSeconds.toFixed(1)} s`);
    console.log(`ModelDeployment applied → pod Ready (5 runs): p50 ${pct(toReady, 50).toFixed(1)} s, max ${Math.max(...toReady).toFixed(1)} s`);
    console.log('throughput through the gateway (open model, one row per request):');
    for (const r of throughput) {
      console.log(`  ${r.servers} server(s) at ${String(r.rate).padStart(3)}/s: achieved ${r.achieved.toFixed(0).padStart(4)}/s   p50 ${r.p50.toFixed(1).padStart(6)} ms   p99 ${r.p99.toFixed(1).padStart(7)} ms   errors ${r.errors}`);
    }
    console.log(`memory per serving pod: PSS p50 ${pct(pss, 50).toFixed(0)} MiB (min ${Math.min(...pss).toFixed(0)}, max ${Math.max(...pss).toFixed(0)}); MemAvailable fell ${perPodFromMeminfo.toFixed(0)} MiB per added pod`);
    console.log(`${target} serving pods Ready ${allReadySeconds.toFixed(0)} s after scaling from 4; MemAvailable ${before.toFixed(0)} → ${after.toFixed(0)} MiB: this machine holds about ${Math.floor(after / perPodFromMeminfo + target)} serving pods by memory`);
  } finally {
    await cluster.stop();
  }
}

await main();
process.exit(0);
