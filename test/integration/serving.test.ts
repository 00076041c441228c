// ModelDeployments that really serve: the mlserver preset's pods run on the local cluster's pod runner as real
// MLServer processes in their own network namespaces, fetching a real model through the storage initializer.
// What a user observes: Ready only once the server answers; the predictions the model gives offline; a killed
// server restarted and counted; deletion stopping the processes and freeing the addresses; and each bad input
// (a model URI that 404s, a host that is down, an image that cannot be had, a model that fails to load) named in
// the ModelDeployment's Ready condition while the stable revision keeps serving.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { eventually } from '../../local/eventually.ts';
import { localHttpRoute } from '../../local/gateway.ts';
import { MLSERVER_IMAGE } from '../../local/images.ts';
import { runLoad } from '../../local/loadgen.ts';
import { frameRequest, registerModel, startModelStore, trainModel, type Offline } from '../../local/mlserver.ts';
import { registryEnv } from '../../local/registry.ts';
import { SCRAPE_INTERVAL_SECONDS } from '../../local/prometheus.ts';
import { wilsonInterval } from '../../src/stats/binomial.ts';
import { GATEWAY, namespaceOf } from '../../local/podnet.ts';
import { freePorts } from '../../local/processes.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { startController } from './controller-process.ts';
import { getJson, onlyRoutesOf, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const serving = process.env.SLIPWAY_TEST_SERVING === '1';
const run = promisify(execFile);

type Obj = Record<string, unknown>;
interface Condition { type: string; status: string; reason: string; message: string }
interface Md { status?: { conditions?: Condition[]; stable?: { revision: string } } }
interface Pod {
  metadata: { name: string; uid: string; labels: Record<string, string> };
  status?: { podIP?: string; conditions?: Condition[]; containerStatuses?: { name: string; restartCount: number; ready: boolean; imageID?: string }[] };
}

/** The model store for one test, closed when it ends. */
async function modelStore(t: TestContext, root: string): Promise<string> {
  const store = await startModelStore(root);
  t.after(store.close);
  return store.url;
}

const manifest = (name: string, spec: Obj): string => JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name }, spec });
const mdSpec = (uri: string, version: string, image = MLSERVER_IMAGE): Obj => ({
  model: { name: 'iris', version, uri, format: 'sklearn' },
  image,
  runtime: { preset: 'mlserver' },
  replicas: 1,
  rollout: { scaleDownDelaySeconds: 0 },
});

const pods = async (ns: string): Promise<Pod[]> => (await getJson<{ items: Pod[] }>(cluster, ['get', 'pods', '-n', ns])).items;
const ready = (c: { conditions?: Condition[] } | undefined, type = 'Ready'): Condition | undefined => c?.conditions?.find((x) => x.type === type);

/** Waits until ModelDeployment iris says Ready=False with a message that names the cause; returns it. */
function readyFalseNaming(ns: string, what: string, message: RegExp): Promise<Md> {
  return eventually(`Ready=False naming ${what}`, async () => {
    const m = await getJson<Md>(cluster, ['get', 'mdep', 'iris', '-n', ns]);
    const r = ready(m.status);
    if (r?.status === 'False' && message.test(r.message)) return m;
    throw new Error(`Ready=${r?.status} ${r?.reason}: ${r?.message}`);
  }, { timeoutMs: 120_000, intervalMs: 500 });
}

async function infer(ip: string, offline: Offline): Promise<{ status: number; predictions?: number[]; version?: string }> {
  const res = await fetch(`http://${ip}:8080/v2/models/iris/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: frameRequest(offline.columns, offline.rows),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) return { status: res.status };
  const body = (await res.json()) as { model_version?: string; outputs: { data: number[] }[] };
  return { status: res.status, predictions: body.outputs[0]?.data ?? [], ...(body.model_version ? { version: body.model_version } : {}) };
}

async function netnsPids(namespace: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', namespace]).then((r) => r.stdout, () => '');
  return out.split('\n').map(Number).filter((p) => p > 0);
}

const namespaces = async (): Promise<string[]> => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '');

test('an mlserver ModelDeployment is Ready only once its server answers, predicts as offline, survives a killed server, and goes without a trace', { skip: !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)' }, async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  const store = await modelStore(t, root);
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);

  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], manifest('iris', mdSpec(`${store}/good-1/model.joblib`, '1')));
  // The moment the ModelDeployment says Ready, its pod answers: nothing was faked Ready before the server was up.
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=120s', '-n', ns, 'mdep/iris']);
  const [pod] = await pods(ns);
  assert.ok(pod?.status?.podIP, 'the pod has an address');
  const answer = await infer(pod.status.podIP, offline);
  assert.equal(answer.status, 200);
  assert.equal(answer.version, '1', 'the V2 response names the version the ModelDeployment serves');
  assert.deepEqual(answer.predictions, offline.predictions, 'the same predictions as the model gives offline on the same rows');
  // The server is the MLServer image's, pulled from the local registry's mirror, and runs inside its tree.
  const mirrored = process.env.SLIPWAY_TEST_MLSERVER_IMAGE ?? '';
  assert.equal(pod.status.containerStatuses?.find((c) => c.name === 'model-server')?.imageID, `docker.io/seldonio/mlserver@${mirrored.slice(mirrored.indexOf('@') + 1)}`);

  // A killed server process is restarted and counted, and the pod is Ready again.
  const netns = namespaceOf(pod.metadata.uid);
  const [main] = await netnsPids(netns);
  assert.ok(main, 'the server runs in the pod\'s network namespace');
  assert.notEqual(readlinkSync(`/proc/${main}/root`), '/', 'the server\'s root is the image\'s tree, not this machine\'s');
  assert.ok(existsSync(`/proc/${main}/root/usr/local/lib/python3.11/dist-packages/mlserver`), 'MLServer is installed in the image');
  process.kill(main, 'SIGKILL');
  const restarted = await eventually('the server restarted and Ready', async () => {
    const [p] = await pods(ns);
    const s = p?.status?.containerStatuses?.[0];
    return s && s.restartCount === 1 && s.ready ? p : undefined;
  }, { timeoutMs: 90_000, intervalMs: 500 });
  assert.equal(restarted.status?.podIP, pod.status.podIP, 'the pod keeps its address across a container restart');
  // kubectl logs reads the processes' output through the node (KWOK), the current run's and the previous one's.
  const podName = pod.metadata.name;
  assert.match(await cluster.kubectl(['logs', '-n', ns, podName, '-c', 'storage-initializer']), /fetched http:\/\/10\.244\.0\.1:\d+\/good-1\/model\.joblib into/);
  assert.match(await cluster.kubectl(['logs', '-n', ns, podName, '-c', 'model-server', '--previous']), /Uvicorn running on http:\/\/0\.0\.0\.0:8080/);
  await eventually('the restarted server\'s output', async () => /Uvicorn running on http:\/\/0\.0\.0\.0:8080/.test(await cluster.kubectl(['logs', '-n', ns, podName, '-c', 'model-server'])), { timeoutMs: 30_000 });
  assert.deepEqual((await infer(pod.status.podIP, offline)).predictions, offline.predictions);

  // Deleting the ModelDeployment stops its processes and frees its address and namespace.
  await cluster.kubectl(['delete', '-n', ns, 'mdep/iris', '--wait=true']);
  await eventually('the pods gone', async () => (await pods(ns)).length === 0, { timeoutMs: 60_000, intervalMs: 500 });
  assert.ok(!(await namespaces()).includes(netns), 'the pod\'s network namespace is gone');
  assert.deepEqual(await netnsPids(netns), []);
  await assert.rejects(fetch(`http://${pod.status.podIP}:8080/v2/health/live`, { signal: AbortSignal.timeout(2000) }), 'nothing answers at the freed address');
});

test('bad input on an mlserver ModelDeployment is named in its Ready condition while the stable revision keeps serving', { skip: !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)' }, async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  mkdirSync(join(root, 'broken'));
  writeFileSync(join(root, 'broken', 'model.joblib'), 'not a model');
  const store = await modelStore(t, root);
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], manifest('iris', mdSpec(`${store}/good-1/model.joblib`, '1')));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=120s', '-n', ns, 'mdep/iris']);
  const stable = (await pods(ns))[0];
  const stableIp = stable?.status?.podIP ?? '';

  const [down] = await freePorts(1); // nothing listens there
  const cases: { what: string; spec: Obj; message: RegExp }[] = [
    { what: 'a model URI that answers 404', spec: mdSpec(`${store}/missing/model.joblib`, '2'), message: /init container storage-initializer failed \(exit 1.*\): cannot fetch http:\/\/10\.244\.0\.1:\d+\/missing\/model\.joblib: 404 Not Found/ },
    { what: 'a model host that is down', spec: mdSpec(`http://${GATEWAY}:${down}/good-1/model.joblib`, '3'), message: /init container storage-initializer failed \(exit 1.*\): cannot fetch http:\/\/10\.244\.0\.1:\d+\/good-1\/model\.joblib: ECONNREFUSED/ },
    { what: 'an image the runner cannot have', spec: mdSpec(`${store}/good-1/model.joblib`, '4', 'docker.io/seldonio/mlserver:0.0.1'), message: /container model-server: (ErrImagePull|ImagePullBackOff): .*"docker\.io\/seldonio\/mlserver:0\.0\.1": not an image the local pod runner can run/ },
    { what: 'a model that fails to load', spec: mdSpec(`${store}/broken/model.joblib`, '5'), message: /container model-server keeps exiting \(exit 0, \d+ restarts?\)/ },
  ];
  for (const c of cases) {
    await t.test(c.what, async () => {
      await cluster.kubectl(['apply', '-n', ns, '-f', '-'], manifest('iris', c.spec));
      const md = await readyFalseNaming(ns, c.what, c.message);
      assert.equal(md.status?.stable?.revision, stable?.metadata.labels['slipway.dev/revision'], 'the stable revision stays stable');
      const canary = (await pods(ns)).find((p) => p.metadata.name !== stable?.metadata.name);
      assert.equal(ready(canary?.status)?.status, 'False', 'the new revision\'s pod is not Ready');
      assert.deepEqual((await infer(stableIp, offline)).predictions, offline.predictions, 'the stable revision keeps serving');
    });
  }
});

interface PromVector { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }

/** Per-pod inference counts as Prometheus has them, keyed by the pod's model_deployment label. */
async function promCounts(prometheus: string, ns: string): Promise<Map<string, number>> {
  const query = `sum by (model_deployment, pod) ({__name__=~"model_infer_request_success(_total)?", namespace="${ns}"})`;
  const res = (await (await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(query)}`)).json()) as PromVector;
  return new Map(res.data.result.map((r) => [r.metric.model_deployment ?? '', Number(r.value[1])]));
}

test('an HTTPRoute weighted 80/20 over two ModelDeployments splits real traffic through the gateway, and Prometheus counts each pod\'s requests', { skip: !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)' }, async (t) => {
  const gateway = process.env.SLIPWAY_TEST_GATEWAY_URL ?? '';
  const prometheus = process.env.SLIPWAY_TEST_PROMETHEUS_URL ?? '';
  assert.ok(gateway && prometheus, 'the data plane has a gateway and a Prometheus');
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  // Trained with the same split as good (train.py's --version picks the held-out rows), so both predict the same rows.
  const better = (await trainModel(bin, root, 'better', 1)).offline;
  const store = await modelStore(t, root);
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], [manifest('iris-a', mdSpec(`${store}/good-1/model.joblib`, '1')), manifest('iris-b', mdSpec(`${store}/better-1/model.joblib`, '2'))].join('\n'));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=120s', '-n', ns, 'mdep/iris-a', 'mdep/iris-b']);
  await onlyRoutesOf(cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], localHttpRoute('iris', [{ name: 'iris-a', port: 80, weight: 80 }, { name: 'iris-b', port: 80, weight: 20 }]));
  const url = `${gateway}/v2/models/iris/infer`;
  const body = frameRequest(offline.columns, [offline.rows[0] ?? []]);
  // The route is live once Traefik has read it: until then the gateway answers 404.
  const sent = new Map<string, number>();
  await eventually('the route serving', async () => {
    const [s] = await runLoad({ url, body, rate: 1, durationSeconds: 1 });
    if (s?.version) sent.set(s.version, (sent.get(s.version) ?? 0) + 1);
    return s?.status === 200;
  }, { timeoutMs: 60_000, intervalMs: 250 });

  // Through the gateway, every held-out row at once: exactly what the version that answered predicts offline.
  for (let i = 0; i < 5; i++) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: frameRequest(offline.columns, offline.rows) });
    const answer = (await res.json()) as { model_version: string; outputs: { data: number[] }[] };
    sent.set(answer.model_version, (sent.get(answer.model_version) ?? 0) + 1);
    assert.deepEqual(answer.outputs[0]?.data, answer.model_version === '1' ? offline.predictions : better.predictions, `version ${answer.model_version} through the gateway`);
  }

  const samples = await runLoad({ url, body, rate: 100, durationSeconds: 20 });
  const failed = samples.filter((s) => s.status !== 200);
  assert.equal(failed.length, 0, `every request answered: ${JSON.stringify(failed.slice(0, 3))}`);
  for (const s of samples) sent.set(s.version ?? '', (sent.get(s.version ?? '') ?? 0) + 1);
  const toB = samples.filter((s) => s.version === '2').length;
  const interval = wilsonInterval(toB, samples.length, 0.99);
  t.diagnostic(`version 2 answered ${toB} of ${samples.length} (99% interval ${interval.low.toFixed(4)}–${interval.high.toFixed(4)})`);
  assert.ok(interval.low <= 0.2 && 0.2 <= interval.high, `the 99% interval of the measured share covers the 20% weight: ${JSON.stringify(interval)}`);
  assert.equal(samples.filter((s) => s.version !== '1' && s.version !== '2').length, 0, 'every answer names one of the two versions');

  // Prometheus, discovering the pods through the API server, has each pod's count within a scrape interval or two.
  const expected = new Map([['iris-a', sent.get('1') ?? 0], ['iris-b', sent.get('2') ?? 0]]);
  const counted = await eventually('Prometheus counts matching the load generator', async () => {
    const c = await promCounts(prometheus, ns);
    if ([...expected].every(([md, n]) => c.get(md) === n)) return c;
    throw new Error(`Prometheus ${JSON.stringify([...c])} vs sent ${JSON.stringify([...expected])}`);
  }, { timeoutMs: 3 * SCRAPE_INTERVAL_SECONDS * 1000, intervalMs: 500 });
  t.diagnostic(`Prometheus per pod: ${JSON.stringify([...counted])}`);
});

test('a ModelDeployment of an MLflow registry version (models:/name@alias) serves that version; a missing Secret, a missing version and wrong credentials are named', { skip: !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)' }, async (t) => {
  const registry = JSON.parse(process.env.SLIPWAY_TEST_REGISTRY ?? 'null') as { url: string; username: string; password: string } | null;
  assert.ok(registry, 'the data plane has a model registry');
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const registryBin = await ensurePythonEnv((line) => t.diagnostic(line), 'registry');
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { modelDir, offline } = await trainModel(bin, root, 'better', 1);
  // A name of this test's own: the registry outlives test runs on a reused cluster.
  const name = `iris-${Date.now().toString(36)}`;
  const registered = await registerModel(registryBin, registry, modelDir, name, 'champion');
  t.diagnostic(`registered ${name} version ${registered.version} at ${registered.source}`);
  const ns = await testNamespace(t);
  // The initializer finds the registry as MLflow clients do, from the model's Secret.
  const secret = (secretName: string, env: Record<string, string>): Promise<string> =>
    cluster.kubectl(['create', 'secret', 'generic', secretName, '-n', ns, ...Object.entries(env).map(([k, v]) => `--from-literal=${k}=${v}`)]);
  await secret('mlflow-wrong', registryEnv({ ...registry, password: 'not-the-password' }));
  await startController(t, cluster, ns);
  const spec = (uri: string, version: string, secretName = 'mlflow'): Obj => ({ ...mdSpec(uri, version), model: { name: 'iris', version, uri, format: 'sklearn', secretRef: { name: secretName } } });
  const failsWith = async (what: string, s: Obj, message: RegExp): Promise<void> => {
    await cluster.kubectl(['apply', '-n', ns, '-f', '-'], manifest('iris', s));
    await readyFalseNaming(ns, what, message);
  };
  // The Secret the model names does not exist yet: said so; once it is created, the pod goes on by itself.
  await failsWith('the missing Secret', spec(`models:/${name}@champion`, registered.version), /init container storage-initializer: CreateContainerConfigError: secret "mlflow" not found/);
  await secret('mlflow', registryEnv(registry));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=120s', '-n', ns, 'mdep/iris']);
  const [pod] = await pods(ns);
  const answer = await infer(pod?.status?.podIP ?? '', offline);
  assert.deepEqual(answer.predictions, offline.predictions, 'the registered model answers as it does offline');

  await failsWith('the missing version', spec(`models:/${name}/99`, '99'), /init container storage-initializer failed \(exit 1.*\): models:\/iris-\w+\/99: .*not found/i);
  await failsWith('wrong credentials', spec(`models:/${name}@champion`, '98', 'mlflow-wrong'), /init container storage-initializer failed \(exit 1.*\): .*401 .*wrong or missing credentials/);
  assert.deepEqual((await infer(pod?.status?.podIP ?? '', offline)).predictions, offline.predictions, 'the stable revision keeps serving');
});
