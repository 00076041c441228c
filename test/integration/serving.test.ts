// ModelDeployments that really serve: the mlserver preset's pods run on the local cluster's pod runner as real
// MLServer processes in their own network namespaces, fetching a real model through the storage initializer.
// What a user observes: Ready only once the server answers; the predictions the model gives offline; a killed
// server restarted and counted; deletion stopping the processes and freeing the addresses; and each bad input
// (a model URI that 404s, a host that is down, an image that cannot be had, a model that fails to load) named in
// the ModelDeployment's Ready condition while the stable revision keeps serving.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { eventually } from '../../local/eventually.ts';
import { MLSERVER_IMAGE } from '../../local/images.ts';
import { frameRequest, trainModel, type Offline } from '../../local/mlserver.ts';
import { namespaceOf } from '../../local/pod-runner.ts';
import { GATEWAY } from '../../local/podnet.ts';
import { freePorts } from '../../local/processes.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const serving = process.env.SLIPWAY_TEST_SERVING === '1';
const run = promisify(execFile);

type Obj = Record<string, unknown>;
interface Condition { type: string; status: string; reason: string; message: string }
interface Md { status?: { conditions?: Condition[]; stable?: { revision: string } } }
interface Pod {
  metadata: { name: string; uid: string; labels: Record<string, string> };
  status?: { podIP?: string; conditions?: Condition[]; containerStatuses?: { name: string; restartCount: number; ready: boolean }[] };
}

/** Serves the files under `root` over HTTP on the pod network's host address, where pods can reach it. */
async function modelStore(t: TestContext, root: string): Promise<string> {
  const server: Server = createServer((req, res) => {
    try {
      const body = readFileSync(join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
      res.writeHead(200).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, GATEWAY, resolve));
  t.after(() => new Promise((r) => server.close(r)));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return `http://${GATEWAY}:${address.port}`;
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

  // A killed server process is restarted and counted, and the pod is Ready again.
  const netns = namespaceOf(pod.metadata.uid);
  const [main] = await netnsPids(netns);
  assert.ok(main, 'the server runs in the pod\'s network namespace');
  process.kill(main, 'SIGKILL');
  const restarted = await eventually('the server restarted and Ready', async () => {
    const [p] = await pods(ns);
    const s = p?.status?.containerStatuses?.[0];
    return s && s.restartCount === 1 && s.ready ? p : undefined;
  }, { timeoutMs: 90_000, intervalMs: 500 });
  assert.equal(restarted.status?.podIP, pod.status.podIP, 'the pod keeps its address across a container restart');
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
      const md = await eventually(`Ready=False naming ${c.what}`, async () => {
        const m = await getJson<Md>(cluster, ['get', 'mdep', 'iris', '-n', ns]);
        const r = ready(m.status);
        if (r?.status === 'False' && c.message.test(r.message)) return m;
        throw new Error(`Ready=${r?.status} ${r?.reason}: ${r?.message}`);
      }, { timeoutMs: 120_000, intervalMs: 500 });
      assert.equal(md.status?.stable?.revision, stable?.metadata.labels['slipway.dev/revision'], 'the stable revision stays stable');
      const canary = (await pods(ns)).find((p) => p.metadata.name !== stable?.metadata.name);
      assert.equal(ready(canary?.status)?.status, 'False', 'the new revision\'s pod is not Ready');
      assert.deepEqual((await infer(stableIp, offline)).predictions, offline.predictions, 'the stable revision keeps serving');
    });
  }
});
