// The mlserver preset against a real MLServer: the settings Slipway renders into a pod (runtimeParts) start a real
// server from the locked Python environment, loading a real scikit-learn model, and inference over the V2
// protocol returns exactly the predictions the model gives offline. Outside a pod the server binds loopback and
// free ports, and reads the model where the storage initializer would have put it; every other setting is the
// preset's, unchanged.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { modelDeploymentSpec, type ModelDeployment } from '../../src/api/modeldeployment.ts';
import { podTemplate, revisionTemplate } from '../../src/controllers/modeldeployment/children.ts';
import { runtimeParts } from '../../src/controllers/modeldeployment/runtimes.ts';
import { eventually } from '../../local/eventually.ts';
import { frameRequest, startMlserver, trainModel, type RunningServer } from '../../local/mlserver.ts';
import { freePorts, startComponent, stopProcess } from '../../local/processes.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { parseMetrics, total } from '../support/prometheus-text.ts';

async function serve(t: TestContext, bin: string, dir: string, modelDir: string, version: string): Promise<RunningServer> {
  const server = await startMlserver({ bin, dir, modelDir, name: 'iris', version });
  t.after(() => server.stop());
  return server;
}

const infer = (base: string, body: string): Promise<Response> => fetch(`${base}/v2/models/iris/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

test('the mlserver preset\'s settings make a real MLServer serve a real model, answering as the model does offline', async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const dir = mkdtempSync(join(tmpdir(), 'slipway-mlserver-'));
  const { modelDir, offline } = await trainModel(bin, dir, 'good', 2);
  const { base, metricsUrl } = await serve(t, bin, dir, modelDir, '2');

  const res = await infer(base, frameRequest(offline.columns, offline.rows));
  assert.equal(res.status, 200, await res.clone().text());
  const answer = (await res.json()) as { model_name: string; model_version?: string; outputs: { data: number[] }[] };
  assert.equal(answer.model_name, 'iris');
  assert.equal(answer.model_version, '2', 'the V2 response names the version that answered');
  assert.deepEqual(answer.outputs[0]?.data, offline.predictions);

  // The metrics port the preset declares serves the server's own request counts.
  const scraped = parseMetrics(await (await fetch(metricsUrl)).text());
  assert.ok(total(scraped, 'model_infer_request_success_total') + total(scraped, 'model_infer_request_success') >= 1, 'MLServer counted the inference');
});

test('models that behave like real releases: better is more accurate, strict fails exactly the rows it cannot encode', async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const dir = mkdtempSync(join(tmpdir(), 'slipway-mlserver-'));
  const good = await trainModel(bin, dir, 'good', 2);
  const better = await trainModel(bin, dir, 'better', 2);
  assert.ok(better.offline.accuracy > good.offline.accuracy, `better ${better.offline.accuracy} vs good ${good.offline.accuracy} on the same held-out rows`);

  const strict = await trainModel(bin, dir, 'strict', 2);
  const goodBase = (await serve(t, bin, dir, good.modelDir, '2')).base;
  const strictBase = (await serve(t, bin, dir, strict.modelDir, '3')).base;
  // Traffic where every fifth row carries a band no model was trained on.
  const band = good.offline.columns.indexOf('band');
  const traffic = good.offline.rows.map((r, i) => (i % 5 === 0 ? r.map((v, c) => (c === band ? 'huge' : v)) : r));
  const codes = async (base: string) => Promise.all(traffic.map(async (row) => (await infer(base, frameRequest(good.offline.columns, [row]))).status));
  const strictCodes = await codes(strictBase);
  const unseen = traffic.filter((_, i) => i % 5 === 0).length;
  assert.equal(strictCodes.filter((c) => c >= 500).length, unseen, `strict fails the ${unseen} rows with an unseen band: ${strictCodes.join(',')}`);
  assert.equal(strictCodes.filter((c) => c === 200).length, traffic.length - unseen);
  assert.ok((await codes(goodBase)).every((c) => c === 200), 'the good model answers every row');
});

test('a model MLServer cannot load leaves the server "ready" but the model not: the preset probes the model', async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const dir = mkdtempSync(join(tmpdir(), 'slipway-mlserver-'));
  const [http, grpc, metrics] = (await freePorts(3)) as [number, number, number];
  const parts = runtimeParts({ preset: 'mlserver', model: { name: 'iris', version: '3', format: 'sklearn', uri: 's3://models/iris/3/' }, port: http, storageInitializerImage: 'x' });
  const env: Record<string, string> = { ...Object.fromEntries(parts.env.map((e) => [e.name, e.value])), MLSERVER_MODEL_URI: join(dir, 'no-model-here'), MLSERVER_GRPC_PORT: String(grpc), MLSERVER_METRICS_PORT: String(metrics), MLSERVER_HOST: '127.0.0.1' };
  const server = startComponent('mlserver', join(bin, 'mlserver'), ['start', mkdtempSync(join(dir, 'repo-'))], dir, false, env);
  t.after(() => stopProcess(server, 10_000));
  const base = `http://127.0.0.1:${http}`;
  await eventually('the server up', async () => (await fetch(`${base}/v2/health/ready`)).ok, { timeoutMs: 120_000, intervalMs: 250 });
  await eventually('the load to have failed', () => /Couldn't load model 'iris'|failed to load/.test(readFileSync(server.log, 'utf8')), { timeoutMs: 60_000 });
  assert.equal((await fetch(`${base}/v2/health/ready`)).status, 200, 'MLServer calls itself ready without its model');
  const probe = podTemplate(mdOf('iris'), revisionTemplate(mdOf('iris').spec, 'img'), 'r') as unknown as { spec: { containers: { readinessProbe: { httpGet: { path: string } } }[] } };
  const path = probe.spec.containers[0]?.readinessProbe.httpGet.path ?? '';
  assert.equal(path, '/v2/models/iris/ready');
  assert.notEqual((await fetch(`${base}${path}`)).status, 200, 'the preset\'s readiness probe fails, so the pod never becomes Ready');
});

function mdOf(name: string): ModelDeployment {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'm', namespace: 'ns', uid: 'u' },
    spec: modelDeploymentSpec.parse({ model: { name, version: '3', uri: 's3://m/', format: 'sklearn' }, image: 'img', runtime: { preset: 'mlserver' } }),
  };
}
