// Analysis providers and notifications against real endpoints, on the local control plane (KWOK pods; no model
// traffic needed): a web metric read from a JSON endpoint with a bearer token from a Secret rolls a canary back,
// and the rollback is announced once to a JSON webhook and a Slack-compatible one (the first delivery refused, so
// it is retried) with no secret in either payload; a real Prometheus served over TLS with basic auth is asked
// with the credentials and CA of a Secret, and a wrong password is an Error naming the 401, not a pass.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import yaml from 'js-yaml';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { makePki } from '../../local/pki.ts';
import { freePorts, startComponent, stopProcess, type Started } from '../../local/processes.ts';
import { startPrometheus } from '../../local/prometheus.ts';
import { ensureBinaries } from '../../local/toolchain.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();

interface Md {
  status?: {
    phase?: string;
    stable?: { modelVersion: string };
    aborted?: { reason: string; message: string };
    analysis?: { message?: string; nextAt?: string; taken: number; measurements: { verdict: string; metrics: { name: string; verdict: string; canary?: string; stable?: string; message: string }[] }[] };
  };
}

/** The local API server's URL (the Prometheus's pod discovery points there; it finds no pods to scrape here). */
const apiServer = (): string => (yaml.load(readFileSync(cluster.kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] }).clusters[0]?.cluster.server ?? '';

const getMd = (ns: string): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns]);

async function secret(ns: string, name: string, data: Record<string, string>): Promise<void> {
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: data }));
}

/** Version 1 serving, then version 2 rolled out as a canary whose second step is the analysis given. */
async function rollOut(t: TestContext, ns: string, analysis: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<void> {
  const apply = (version: string): Promise<string> => cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn' },
    spec: {
      model: { name: 'churn-xgb', version, uri: `s3://models/churn/${version}/`, format: 'xgboost' },
      image: 'registry.example.com/mlserver:1.6.1',
      replicas: 2,
      rollout: { scaleDownDelaySeconds: 0, steps: [{ setWeight: 50 }, { analysis: {} }, { setWeight: 100 }], analysis: { interval: '2s', count: 3, ...analysis } },
      ...extra,
    },
  }));
  await startController(t, cluster, ns);
  await apply('1');
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);
  await apply('2');
}

test('a web metric (JSON endpoint, bearer token from a Secret) rolls a canary back; the rollback is announced once to a webhook and to Slack, retried, with no secret in the payloads', async (t) => {
  const ns = await testNamespace(t);
  const TOKEN = 'score-token-5f1e9c';
  const asked: { role: string; revision: string; authorized: boolean }[] = [];
  // The team's scoring service: the canary's offline quality is worse than stable's.
  const scores = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const authorized = req.headers.authorization === `Bearer ${TOKEN}`;
    asked.push({ role: u.searchParams.get('role') ?? '', revision: u.searchParams.get('revision') ?? '', authorized });
    if (!authorized) return void res.writeHead(401).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { results: [{ 'error-rate': u.searchParams.get('role') === 'canary' ? 0.31 : 0.04 }] } }));
  });
  await new Promise<void>((r) => scores.listen(0, '127.0.0.1', r));
  t.after(() => scores.close());
  const hooks = await startWebhookReceiver({ refuseFirst: 1 });
  t.after(hooks.close);
  const slackPath = '/services/T0001/B0001/slack-hook-secret-path';
  await secret(ns, 'score-token', { token: TOKEN });
  await secret(ns, 'hooks', { 'webhook-url': hooks.url('/hook'), 'slack-url': hooks.url(slackPath) });

  await rollOut(t, ns, {
    metrics: [{
      name: 'offline-error-rate',
      web: { url: `http://127.0.0.1:${(scores.address() as AddressInfo).port}/score?revision={{revision}}&role={{role}}`, jsonPath: "$.data.results[0]['error-rate']", secretRef: { name: 'score-token' } },
      max: 0.1,
    }],
  }, { notifications: { secretRef: { name: 'hooks' } } });

  const m = await eventually('rolled back', async () => {
    const x = await getMd(ns);
    return x.status?.phase === 'RolledBack' ? x : undefined;
  }, { timeoutMs: 90_000, intervalMs: 250 });
  assert.equal(m.status?.stable?.modelVersion, '1');
  assert.match(m.status?.aborted?.message ?? '', /offline-error-rate: .*0\.31.*above.*0\.1/);
  const metric = m.status?.analysis?.measurements.at(-1)?.metrics[0];
  assert.equal(metric?.canary, '0.31');
  assert.ok(asked.length > 0 && asked.every((a) => a.authorized && a.revision !== ''), JSON.stringify(asked));

  // Delivered once each: the webhook after one refusal (the same id both times), Slack at once.
  await eventually('both notifications delivered', () => hooks.accepted('/hook').length === 1 && hooks.accepted(slackPath).length === 1, { timeoutMs: 30_000, intervalMs: 200 });
  await new Promise((r) => setTimeout(r, 4000));
  const webhookPosts = hooks.received.filter((r) => r.path === '/hook');
  assert.deepEqual(webhookPosts.map((r) => r.status), [503, 200], 'refused once, retried once, then never again');
  assert.equal(webhookPosts[0]?.headers['idempotency-key'], webhookPosts[1]?.headers['idempotency-key']);
  assert.equal(hooks.received.filter((r) => r.path === slackPath).length, 1);
  const body = hooks.accepted('/hook')[0]?.body ?? {};
  assert.equal(body.kind, 'RolledBack');
  assert.equal(body.namespace, ns);
  assert.equal(body.name, 'churn');
  assert.equal(body.modelVersion, '1', 'stable after the rollback');
  assert.match(String(body.message), /rolled back.*offline-error-rate/);
  const slack = hooks.accepted(slackPath)[0]?.body as { text?: string; blocks?: unknown[] };
  assert.match(slack.text ?? '', /ModelDeployment .*\/churn rolled back: /);
  assert.ok(Array.isArray(slack.blocks) && slack.blocks.length > 0);
  for (const r of hooks.received) {
    assert.ok(!r.raw.includes(TOKEN) && !r.raw.includes('slack-hook-secret-path'), `no secret in ${r.raw}`);
  }
});

test('Prometheus over TLS with basic auth: asked with the CA and credentials of a Secret; a wrong password is an Error naming the 401, never a pass', async (t) => {
  const ns = await testNamespace(t);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-prom-tls-'));
  const pki = makePki(dir);
  const { binDir } = await ensureBinaries(() => {}, 'dataplane');
  const [port] = (await freePorts(1)) as [number];
  const started: Started[] = [];
  t.after(async () => Promise.all(started.map((p) => stopProcess(p))));
  const password = 'slipway-test-password';
  const prometheus = await startPrometheus({
    start: (name, args, program) => {
      const s = startComponent(name, program, args, dir, false);
      started.push(s);
      return s;
    },
    binDir,
    dir,
    port,
    config: { server: apiServer(), caCert: pki.caCert, clientCert: pki.adminCert, clientKey: pki.adminKey, gatewayMetrics: 'http://127.0.0.1:1/metrics' },
    // crypt(3) with bcrypt, cost 10, of the password above (Python: crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))).
    web: { certFile: pki.adminCert, keyFile: pki.adminKey, caFile: pki.caCert, username: 'slipway', password, bcryptHash: '$2b$10$5DmfOch5PHLY.aJr5ms2iuInhYEXQk.to/duesNONiAaMS5pOdi/.' },
  });
  assert.match(prometheus.url, /^https:/);
  const ca = readFileSync(pki.caCert, 'utf8');
  await secret(ns, 'prom-creds', { username: 'slipway', password, 'ca.crt': ca });
  await secret(ns, 'prom-wrong', { username: 'slipway', password: 'not-the-password', 'ca.crt': ca });

  await rollOut(t, ns, {
    prometheus: { address: prometheus.url, secretRef: { name: 'prom-creds' } },
    metrics: [
      { name: 'authorized', prometheus: { query: 'vector(0.0125)' }, max: 0.05 },
      { name: 'refused', prometheus: { query: 'vector(0.0125)', secretRef: { name: 'prom-wrong' } }, max: 0.05 },
    ],
  });
  const first = await eventually('a measurement', async () => (await getMd(ns)).status?.analysis?.measurements[0], { timeoutMs: 90_000, intervalMs: 250 });
  const byName = new Map(first.metrics.map((x) => [x.name, x]));
  assert.equal(byName.get('authorized')?.verdict, 'Pass', JSON.stringify(first));
  assert.equal(byName.get('authorized')?.canary, '0.0125');
  assert.equal(byName.get('refused')?.verdict, 'Error');
  assert.match(byName.get('refused')?.message ?? '', /Prometheus at https:\/\/127\.0\.0\.1:\d+ answered 401/);
  assert.notEqual(first.verdict, 'Pass', 'one metric that cannot be measured makes the measurement no pass');
  assert.equal((await getMd(ns)).status?.stable?.modelVersion, '1');
});

test('a Job metric: the Job of the step runs once with the canary in its env; it succeeding passes the step, it failing rolls the canary back with the Job\'s reason', async (t) => {
  const ns = await testNamespace(t);
  const backtest = (image: string, extra: Record<string, unknown> = {}) => ({ name: 'backtest', job: { spec: { ...extra, template: { spec: { containers: [{ name: 'backtest', image, args: ['--against', 'stable'] }] } } } } });
  await rollOut(t, ns, { count: 2, metrics: [backtest('registry.example.com/backtest:1')] });
  const promoted = await eventually('promoted', async () => {
    const x = await getMd(ns);
    return x.status?.stable?.modelVersion === '2' ? x : undefined;
  }, { timeoutMs: 90_000, intervalMs: 250 });
  assert.match(promoted.status?.analysis?.measurements.at(-1)?.metrics[0]?.message ?? '', /^Job churn-analysis-\w+ succeeded$/);
  const jobs = await getJson<{ items: { metadata: { name: string; ownerReferences: { kind: string; name: string }[] }; spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } } }[] }>(cluster, ['get', 'jobs', '-n', ns]);
  assert.equal(jobs.items.length, 1, 'one Job for the step, however many measurements');
  const job = jobs.items[0];
  assert.equal(job?.metadata.ownerReferences[0]?.kind, 'ModelDeployment');
  const env = Object.fromEntries(job?.spec.template.spec.containers[0]?.env.map((e) => [e.name, e.value]) ?? []);
  assert.equal(env.SLIPWAY_NAME, 'churn');
  assert.equal(env.SLIPWAY_CANARY_URL, `http://churn-canary.${ns}.svc`);
  assert.match(env.SLIPWAY_REVISION ?? '', /^\w{10}$/);

  // Version 3's backtest never finishes: its deadline fails the Job, and the canary is rolled back.
  await cluster.kubectl(['patch', 'mdep', 'churn', '-n', ns, '--type=merge', '-p', JSON.stringify({
    spec: { model: { version: '3', uri: 's3://models/churn/3/' }, rollout: { analysis: { metrics: [backtest(NEVER_READY_IMAGE, { activeDeadlineSeconds: 25 })] } } },
  })]);
  // While it runs, the analysis in status stands still: the controller reads the Job, and writes nothing.
  const waiting = await eventually('waiting for the Job', async () => {
    const x = await getMd(ns);
    return /^backtest: Job churn-analysis-\w+ is running; measurements wait for it$/.test(x.status?.analysis?.message ?? '') ? x : undefined;
  }, { timeoutMs: 60_000, intervalMs: 250 });
  await new Promise((r) => setTimeout(r, 12_000)); // two looks or more
  const later = await getMd(ns);
  assert.equal(later.status?.phase, 'Progressing', 'still waiting for the Job');
  assert.deepEqual(later.status?.analysis, waiting.status?.analysis, 'the analysis in status did not move while the Job ran');
  const m = await eventually('rolled back', async () => {
    const x = await getMd(ns);
    return x.status?.phase === 'RolledBack' ? x : undefined;
  }, { timeoutMs: 90_000, intervalMs: 250 });
  assert.equal(m.status?.stable?.modelVersion, '2');
  assert.match(m.status?.aborted?.message ?? '', /backtest: Job churn-analysis-\w+ failed: DeadlineExceeded/);
});
