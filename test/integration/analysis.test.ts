// Metric analysis on the local data plane: real MLServer pods behind the real gateway, scraped by the real
// Prometheus, judged by the controller. A better model version is promoted through its analysis step; a version
// that fails on traffic the stable one handles (1% → ~6% errors) is rolled back automatically, with the failing
// metric and both revisions' values in status; with Prometheus unreachable mid-analysis the rollout pauses for a
// person and is never promoted.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { eventually } from '../../local/eventually.ts';
import { localHttpRoute } from '../../local/gateway.ts';
import { MLSERVER_IMAGE } from '../../local/images.ts';
import { runLoad, type Sample } from '../../local/loadgen.ts';
import { frameRequest, irisTrafficMix, startModelStore, trainModel, type Offline } from '../../local/mlserver.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';
import { startController, type ControllerProcess } from './controller-process.ts';
import { getJson, onlyRoutesOf, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const serving = process.env.SLIPWAY_TEST_SERVING === '1';
const skip = !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)';

interface Md {
  status?: {
    phase?: string;
    stable?: { revision: string; modelVersion: string };
    canary?: { revision: string; step?: number; weight?: number };
    aborted?: { reason: string; message: string };
    pause?: { by: string };
    analysis?: { verdict: string; message?: string; taken: number; measurements: { verdict: string; metrics: { name: string; verdict: string; canary?: string; stable?: string; message: string }[] }[] };
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

/** Models, a model store and a namespace with the controller, and a function that applies version `v` of `kind`. */
const ERROR_RATE = [{ name: 'error-rate', preset: 'mlserver-error-rate', compare: { maxIncrease: '0%' }, minSamples: 50 }];

/** What a test changes in the ModelDeployment: the metrics, the action on failure, a notifications Secret. */
interface Variant {
  metrics?: unknown[];
  onFailure?: 'rollback' | 'pause' | 'notify';
  /** Secret data with webhook-url / slack-url: created, and named by spec.notifications. */
  hooks?: Record<string, string>;
}

async function setUp(t: TestContext, prometheusUrl: string, variant: Variant = {}): Promise<{ ns: string; offline: Offline; controller: ControllerProcess; deploy: (version: string, model: string) => Promise<void> }> {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  await trainModel(bin, root, 'better', 1);
  await trainModel(bin, root, 'strict', 1);
  await trainModel(bin, root, 'slow', 1);
  const store = await startModelStore(root);
  t.after(store.close);
  const ns = await testNamespace(t);
  const controller = await startController(t, cluster, ns, { args: [`--prometheus-url=${prometheusUrl}`] });
  const rollout = {
    steps: [{ setWeight: 50 }, { analysis: {} }, { setWeight: 100 }],
    trafficRouting: { gatewayAPI: { httpRoute: 'iris' } },
    scaleDownDelaySeconds: 5,
    analysis: { interval: '10s', count: 6, metrics: variant.metrics ?? ERROR_RATE, ...(variant.onFailure ? { onFailure: variant.onFailure } : {}) },
  };
  if (variant.hooks) await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'hooks' }, stringData: variant.hooks }));
  const notifications = variant.hooks ? { notifications: { secretRef: { name: 'hooks' } } } : {};
  const deploy = async (version: string, model: string): Promise<void> => {
    await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], JSON.stringify({
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'ModelDeployment',
      metadata: { name: 'iris' },
      spec: { model: { name: 'iris', version, uri: `${store.url}/${model}/model.joblib`, format: 'sklearn' }, image: MLSERVER_IMAGE, runtime: { preset: 'mlserver' }, replicas: 1, rollout, ...notifications },
    }));
  };
  return { ns, offline, controller, deploy };
}

async function route(ns: string): Promise<void> {
  await onlyRoutesOf(cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], localHttpRoute('iris', [{ name: 'iris', port: 80 }, { name: 'iris-canary', port: 80, weight: 0 }], '/v2/models/iris'));
}

/** 1% of requests malformed (500 from every version), 5% with an unseen band (500 from strict only). */
const mix = (offline: Offline): ((i: number) => string) => irisTrafficMix(offline, { malformed: 0.01, unseenBand: 0.05 });

/** Steady load through the gateway until stopped; the samples when it is. */
function steadyLoad(t: TestContext, url: string, body: (i: number) => string): { stop: () => Promise<Sample[]> } {
  const ctl = new AbortController();
  const run = runLoad({ url, body, rate: 40, durationSeconds: 900, stop: ctl.signal });
  t.after(() => ctl.abort());
  return { stop: async () => (ctl.abort(), run) };
}

const getMd = (ns: string): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'iris', '-n', ns]);
const until = (ns: string, what: string, ok: (m: Md) => boolean, timeoutMs = 240_000): Promise<Md> =>
  eventually(what, async () => {
    const m = await getMd(ns);
    if (ok(m)) return m;
    throw new Error(`phase ${m.status?.phase}, analysis ${JSON.stringify(m.status?.analysis?.measurements.at(-1) ?? m.status?.analysis?.message)}, ready ${m.status?.conditions?.find((c) => c.type === 'Ready')?.message}`);
  }, { timeoutMs, intervalMs: 1000 });

async function servingV1(t: TestContext, prometheusUrl: string, variant?: Variant) {
  const gateway = process.env.SLIPWAY_TEST_GATEWAY_URL ?? '';
  assert.ok(gateway, 'the data plane has a gateway');
  const s = await setUp(t, prometheusUrl, variant);
  await s.deploy('1', 'good-1');
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=180s', '-n', s.ns, 'mdep/iris']);
  await route(s.ns);
  const url = `${gateway}/v2/models/iris/infer`;
  await eventually('the route serving', async () => (await runLoad({ url, body: frameRequest(s.offline.columns, [s.offline.rows[0] ?? []]), rate: 1, durationSeconds: 1 }))[0]?.status === 200, { timeoutMs: 60_000, intervalMs: 250 });
  return { ...s, url };
}

test('analysis: a better version passes its analysis step under real traffic and is promoted', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const { ns, offline, url, deploy } = await servingV1(t, prometheus);
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'better-1');
  const done = await until(ns, 'version 2 promoted', (m) => m.status?.stable?.modelVersion === '2' && !m.status.canary);
  const samples = await load.stop();
  const codes = new Map<number, number>();
  for (const s of samples) codes.set(s.status, (codes.get(s.status) ?? 0) + 1);
  t.diagnostic(`answers by status: ${JSON.stringify([...codes])}`);
  assert.equal(done.status?.analysis?.verdict, 'Passed', JSON.stringify(done.status?.analysis));
  assert.ok((done.status?.analysis?.taken ?? 0) >= 6);
  const last = done.status?.analysis?.measurements.at(-1)?.metrics[0];
  t.diagnostic(`last measurement: canary ${last?.canary}, stable ${last?.stable}: ${last?.message}`);
  assert.match(last?.canary ?? '', /^\d+\.\d+% \(\d+\/\d+\)$/);
  const events = await getJson<{ items: { reason: string; message: string }[] }>(cluster, ['get', 'events', '-n', ns, '--field-selector=involvedObject.kind=ModelDeployment']);
  assert.ok(events.items.some((e) => e.reason === 'AnalysisPassed'));
});

test('analysis: a version that fails on traffic stable handles is rolled back automatically, with the evidence in status', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const { ns, offline, url, deploy, controller } = await servingV1(t, prometheus);
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'strict-1');
  const started = Date.now();
  const m = await until(ns, 'rolled back', (x) => x.status?.phase === 'RolledBack');
  t.diagnostic(`rolled back ${((Date.now() - started) / 1000).toFixed(0)} s after the new version was applied: ${m.status?.aborted?.message}`);
  assert.equal(m.status?.stable?.modelVersion, '1');
  assert.equal(m.status?.aborted?.reason, 'RolledBack');
  assert.match(m.status?.aborted?.message ?? '', /error-rate: the canary's rate .* is above stable's .* by at least .* at 99% confidence.*\(canary \d+\.\d+% \(\d+\/\d+\), stable \d+\.\d+% \(\d+\/\d+\)\)/);
  assert.equal(m.status?.conditions?.find((c) => c.type === 'Stalled')?.reason, 'RolledBack');
  // All traffic back on stable: after a moment, every answer is version 1's.
  await new Promise((r) => setTimeout(r, 3000));
  await load.stop();
  const after = await runLoad({ url, body: frameRequest(offline.columns, [offline.rows[0] ?? []]), rate: 20, durationSeconds: 2 });
  assert.ok(after.every((s) => s.status === 200 && s.version === '1'), JSON.stringify(after.slice(0, 3)));
  assert.equal(await controller.metric('slipway_rollbacks_total'), 1);
  const events = await getJson<{ items: { type: string; reason: string; message: string }[] }>(cluster, ['get', 'events', '-n', ns, '--field-selector=involvedObject.kind=ModelDeployment']);
  assert.ok(events.items.some((e) => e.type === 'Warning' && e.reason === 'RolledBack'));
});

test('analysis: with Prometheus unreachable mid-analysis the rollout pauses for a person and is never promoted', { skip }, async (t) => {
  const prometheus = new URL(process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? 'http://127.0.0.1:1');
  const proxy = await tcpProxy(Number(prometheus.port));
  t.after(() => proxy.close());
  const { ns, offline, url, deploy } = await servingV1(t, `http://127.0.0.1:${proxy.port}`);
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'better-1');
  await until(ns, 'two measurements taken', (m) => (m.status?.analysis?.taken ?? 0) >= 2);
  await proxy.cut();
  const paused = await until(ns, 'paused for a person', (m) => m.status?.phase === 'Paused');
  await load.stop();
  assert.match(paused.status?.pause?.by ?? '', /inconclusive: 5 measurements in a row could not be taken: error-rate: Prometheus at http:\/\/127\.0\.0\.1:\d+ cannot be reached/);
  assert.equal(paused.status?.stable?.modelVersion, '1', 'never promoted');
  await new Promise((r) => setTimeout(r, 15_000));
  assert.equal((await getMd(ns)).status?.stable?.modelVersion, '1', 'still not promoted');
});

test('analysis: a slower version is rolled back on latency (rank test on the latency histograms of both revisions, means from their sums)', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const { ns, offline, url, deploy } = await servingV1(t, prometheus, { metrics: [{ name: 'latency', preset: 'mlserver-latency', compare: { maxIncrease: '20%' }, minSamples: 100 }] });
  const load = steadyLoad(t, url, () => frameRequest(offline.columns, [offline.rows[0] ?? []]));
  await deploy('2', 'slow-1');
  const m = await until(ns, 'rolled back', (x) => x.status?.phase === 'RolledBack');
  await load.stop();
  t.diagnostic(m.status?.aborted?.message ?? '');
  assert.match(m.status?.aborted?.message ?? '', /latency: the canary is slower: mean [0-9.]+ vs [0-9.]+ \(allowed .*\); a canary request is slower than a stable one with probability [01]\.\d+ \(Mann-Whitney p .*, below 0\.01\)/);
  assert.equal(m.status?.stable?.modelVersion, '1');
});

test('analysis: onFailure pause holds a failing canary at its weight for a person, and the webhook is told once', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const hooks = await startWebhookReceiver();
  t.after(hooks.close);
  const { ns, offline, url, deploy } = await servingV1(t, prometheus, { onFailure: 'pause', hooks: { 'webhook-url': hooks.url('/hook') } });
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'strict-1');
  const paused = await until(ns, 'paused for a person', (m) => m.status?.phase === 'Paused');
  assert.match(paused.status?.pause?.by ?? '', /analysis at step 2 of 3 failed: error-rate: the canary's rate/);
  assert.equal(paused.status?.stable?.modelVersion, '1');
  assert.equal(paused.status?.aborted, undefined, 'not rolled back');
  // Held where it was: the canary keeps its half of the traffic while a person looks.
  await new Promise((r) => setTimeout(r, 10_000));
  const held = await getMd(ns);
  await load.stop();
  assert.equal(held.status?.phase, 'Paused');
  assert.equal(held.status?.canary?.weight, 50);
  assert.deepEqual(hooks.received.map((r) => `${String(r.body.kind)}/${String(r.body.reason)}`), ['Paused/AnalysisFailed'], 'one notification');
  assert.match(String(hooks.received[0]?.body.message), /paused for a person: error-rate/);
});

test('analysis: onFailure notify is a dry run: the failure is recorded and announced, and the rollout goes on to promotion', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const slack = await startWebhookReceiver();
  t.after(slack.close);
  const { ns, offline, url, deploy } = await servingV1(t, prometheus, { onFailure: 'notify', hooks: { 'slack-url': slack.url('/slack') } });
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'strict-1');
  const done = await until(ns, 'version 2 promoted', (m) => m.status?.stable?.modelVersion === '2' && !m.status.canary);
  await load.stop();
  assert.equal(done.status?.analysis?.verdict, 'Failed', 'the analysis failed, and that did not stop the rollout');
  await eventually('the promotion announced', () => slack.received.length >= 2, { timeoutMs: 20_000, intervalMs: 200 });
  await new Promise((r) => setTimeout(r, 3000));
  const texts = slack.received.map((r) => String(r.body.text));
  assert.equal(texts.length, 2, texts.join('\n'));
  assert.match(texts[0] ?? '', /^:warning: ModelDeployment .*\/iris failed: analysis at step 2 of 3 failed \(onFailure: notify, the rollout goes on\): error-rate/);
  assert.match(texts[1] ?? '', /^:white_check_mark: ModelDeployment .*\/iris promoted: revision \w+ \(model version 2\)/);
});

test('analysis: the gateway preset (what Traefik saw of each revision\'s Service) rolls back the same regression', { skip }, async (t) => {
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  const { ns, offline, url, deploy } = await servingV1(t, prometheus, { metrics: [{ name: 'gateway-errors', preset: 'traefik-gateway-error-rate', compare: { maxIncrease: '0%' }, minSamples: 50 }] });
  const load = steadyLoad(t, url, mix(offline));
  await deploy('2', 'strict-1');
  const m = await until(ns, 'rolled back', (x) => x.status?.phase === 'RolledBack');
  await load.stop();
  t.diagnostic(m.status?.aborted?.message ?? '');
  assert.match(m.status?.aborted?.message ?? '', /gateway-errors: the canary's rate .* is above stable's .*\(canary \d+\.\d+% \(\d+\/\d+\), stable \d+\.\d+% \(\d+\/\d+\)\)/);
  assert.equal(m.status?.stable?.modelVersion, '1');
});
