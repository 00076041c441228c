// `npm run demo`: Slipway's main job, end to end, on this machine. A local cluster with its data plane (real
// MLServer pods in network namespaces, a Traefik gateway, Prometheus), the controller, steady traffic through the
// gateway, and three new model versions rolled out as canaries with metric analysis:
//   1. a better model: promoted through every step;
//   2. a model that fails on traffic the stable one handles (errors): rolled back automatically;
//   3. a slower model: rolled back on latency.
// It prints what a person watching would want to see, then the status and a timeline. Needs root (network
// namespaces). `--keep` leaves the cluster running at the end.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { installSlipwayCrds, startCluster } from '../local/cluster.ts';
import { eventually } from '../local/eventually.ts';
import { localHttpRoute } from '../local/gateway.ts';
import { MLSERVER_IMAGE } from '../local/images.ts';
import { runLoad, type Sample } from '../local/loadgen.ts';
import { frameRequest, irisTrafficMix, startModelStore, trainModel } from '../local/mlserver.ts';
import { podRunnerHolder } from '../local/pod-runner.ts';
import { freePorts, runScript } from '../local/processes.ts';
import { ensurePythonEnv } from '../local/python.ts';
import type { ModelDeployment } from '../src/api/modeldeployment.ts';
import { eventOrder, plain, renderStatus, type EventView, type MdView } from '../src/cli/render.ts';

const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false } } });
const NS = 'demo';
const t0 = Date.now();
const clock = (): string => `[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)}s]`;
const say = (line: string): void => console.log(`${clock()} ${line}`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('npm run demo runs model servers in network namespaces of their own, which needs root: run it as root (sudo -E npm run demo)');
    process.exit(1);
  }
  const other = podRunnerHolder();
  if (other !== undefined) {
    console.error(`another local data plane runs on this machine (pid ${other}); one at a time: npm run cluster:down stops it`);
    process.exit(1);
  }
  const dir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-demo-${process.pid}`);
  say('starting a local cluster with its data plane (control plane, pod runner, gateway, Prometheus)');
  const cluster = await startCluster({ dir, serve: true, persistent: values.keep, log: (l) => say(`  ${l}`) });
  const stops: (() => Promise<unknown>)[] = [];
  try {
    await installSlipwayCrds(cluster.kubectl);
    await cluster.kubectl(['create', 'namespace', NS]);
    await eventually('the default ServiceAccount', () => cluster.kubectl(['get', 'sa', 'default', '-n', NS, '-o', 'name']));
    const gateway = cluster.gateway?.url ?? '';
    const prometheus = cluster.prometheus?.url ?? '';

    say('training four versions of an iris model (scikit-learn): good, better, strict (fails on unseen categories), slow');
    const bin = await ensurePythonEnv((l) => say(`  ${l}`));
    const root = mkdtempSync(join(tmpdir(), 'slipway-demo-models-'));
    const { offline } = await trainModel(bin, root, 'good', 1);
    for (const kind of ['better', 'strict', 'slow']) await trainModel(bin, root, kind, 1);
    const store = await startModelStore(root);
    stops.push(async () => store.close());

    const [port] = (await freePorts(1)) as [number];
    const controller = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, join(import.meta.dirname, '..', 'src', 'main.ts'),
      `--kubeconfig=${cluster.kubeconfig}`, `--namespace=${NS}`, '--no-leader-elect', `--metrics-port=${port}`, '--metrics-host=127.0.0.1', `--prometheus-url=${prometheus}`],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SLIPWAY_LOG_LEVEL: 'warn' } });
    stops.push(() => Promise.resolve(controller.kill('SIGTERM')));
    await eventually('the controller', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, { timeoutMs: 30_000 });
    say(`the controller runs (metrics on http://127.0.0.1:${port}/metrics)`);

    const apply = (version: string, model: string): Promise<string> => cluster.kubectl(['apply', '--server-side', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'ModelDeployment',
      metadata: { name: 'iris' },
      spec: {
        model: { name: 'iris', version, uri: `${store.url}/${model}/model.joblib`, format: 'sklearn' },
        image: MLSERVER_IMAGE,
        runtime: { preset: 'mlserver' },
        replicas: 1,
        rollout: {
          trafficRouting: { gatewayAPI: { httpRoute: 'iris' } },
          steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 50 }, { analysis: {} }, { setWeight: 100 }],
          scaleDownDelaySeconds: 5,
          analysis: {
            interval: '10s',
            count: 6,
            metrics: [
              { name: 'error-rate', preset: 'mlserver-error-rate', compare: { maxIncrease: '0%' }, minSamples: 50 },
              { name: 'latency', preset: 'mlserver-latency', compare: { maxIncrease: '20%' }, minSamples: 50 },
            ],
          },
        },
      },
    }));
    const getMd = async (): Promise<ModelDeployment> => JSON.parse(await cluster.kubectl(['get', 'mdep', 'iris', '-n', NS, '-o', 'json'])) as ModelDeployment;

    say('version 1 (good) starts');
    await apply('1', 'good-1');
    await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=180s', '-n', NS, 'mdep/iris']);
    await cluster.kubectl(['apply', '-n', NS, '-f', '-'], localHttpRoute('iris', [{ name: 'iris', port: 80 }, { name: 'iris-canary', port: 80, weight: 0 }]));
    const url = `${gateway}/v2/models/iris/infer`;
    await eventually('the route', async () => (await runLoad({ url, body: frameRequest(offline.columns, [offline.rows[0] ?? []]), rate: 1, durationSeconds: 1 }))[0]?.status === 200, { timeoutMs: 60_000, intervalMs: 250 });

    say(`steady traffic through the gateway (${url}): 40 requests/s, 1% malformed, 5% with a category the models never saw`);
    const recent: Sample[] = [];
    const ctl = new AbortController();
    const load = runLoad({ url, body: irisTrafficMix(offline, { malformed: 0.01, unseenBand: 0.05 }), rate: 40, durationSeconds: 3600, stop: ctl.signal, onSample: (s) => recent.push(s) });
    stops.push(async () => {
      ctl.abort();
      await load;
    });

    /** Every 5 s until `done`: the step, the weight, each version's errors and latency over those 5 s, the analysis. */
    const watch = async (done: (md: ModelDeployment) => boolean): Promise<ModelDeployment> => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 5000));
        const md = await getMd();
        const batch = recent.splice(0);
        const byVersion = new Map<string, { n: number; latencies: number[] }>();
        for (const s of batch.filter((x) => x.status === 200)) {
          const v = byVersion.get(s.version ?? '?') ?? { n: 0, latencies: [] };
          v.n++;
          v.latencies.push(s.latencyMs);
          byVersion.set(s.version ?? '?', v);
        }
        const errors = batch.filter((x) => x.status !== 200).length;
        const versions = [...byVersion].sort().map(([v, x]) => {
          const sorted = x.latencies.sort((a, b) => a - b);
          return `v${v} ${x.n} ok p50 ${(sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(1)} ms`;
        }).join(', ');
        const st = md.status ?? {};
        const c = st.canary;
        const where = c ? `canary v${c.modelVersion} step ${Math.min((c.step ?? 0) + 1, c.steps ?? 0)}/${c.steps} at ${c.achievedWeight ?? c.weight}%` : `v${st.stable?.modelVersion} serves`;
        const a = st.analysis && c && st.analysis.revision === c.revision ? ` | analysis ${st.analysis.verdict.toLowerCase()}: ${st.analysis.message ?? ''}` : '';
        say(`${st.phase?.padEnd(11) ?? ''} ${where} | ${versions}${errors ? `, ${errors} errors` : ''}${a}`.slice(0, 240));
        if (done(md)) return md;
      }
    };

    say('SCENARIO 1: version 2 (better) rolls out: 20% → analysis → 50% → analysis → 100%');
    await apply('2', 'better-1');
    await watch((md) => md.status?.stable?.modelVersion === '2' && !md.status.canary);
    say('version 2 is promoted: it passed both analyses and serves all traffic');

    say('SCENARIO 2: version 3 (strict: fails on the unseen category, 5% of traffic) rolls out');
    await apply('3', 'strict-1');
    const rolled = await watch((md) => md.status?.phase === 'RolledBack');
    say(`version 3 is rolled back: ${rolled.status?.aborted?.message ?? ''}`);

    say('SCENARIO 3: version 4 (slow: a random forest of 300 trees, several times the latency) rolls out');
    await apply('4', 'slow-1');
    const slow = await watch((md) => md.status?.phase === 'RolledBack' && md.status.aborted?.modelVersion === '4');
    say(`version 4 is rolled back: ${slow.status?.aborted?.message ?? ''}`);
    await new Promise((r) => setTimeout(r, 3000));

    const events = (JSON.parse(await cluster.kubectl(['get', 'events', '-n', NS, '-o', 'json'])) as { items: EventView[] }).items;
    const mine = events.filter((e) => e.involvedObject?.kind === 'ModelDeployment');
    const pods = (JSON.parse(await cluster.kubectl(['get', 'pods', '-n', NS, '-o', 'json'])) as { items: [] }).items;
    console.log(`\n${renderStatus(slow as unknown as MdView, { pods, events: [] }, { now: new Date(), style: plain })}`);
    console.log('\nTimeline');
    for (const e of mine.sort(eventOrder)) {
      console.log(`  ${(e.lastTimestamp ?? e.eventTime ?? '').slice(11, 19)}  ${(e.type ?? '').padEnd(7)}  ${(e.reason ?? '').padEnd(20)}  ${e.message ?? ''}`);
    }
    if (values.keep) {
      console.log(`\nThe cluster keeps running: export KUBECONFIG=${cluster.kubeconfig}; kubectl -n ${NS} get mdep; npm run cluster:down stops it.`);
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (!values.keep) {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

runScript(main);
