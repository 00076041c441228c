// The mlserver preset against a real MLServer: the settings Slipway renders into a pod (runtimeParts) start a real
// server from the locked Python environment, loading a real scikit-learn model, and inference over the V2
// protocol returns exactly the predictions the model gives offline. Outside a pod the server binds loopback and
// free ports, and reads the model where the storage initializer would have put it; every other setting is the
// preset's, unchanged.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { modelDeploymentSpec, type ModelDeployment } from '../../src/api/modeldeployment.ts';
import { podTemplate, revisionTemplate } from '../../src/controllers/modeldeployment/children.ts';
import { runtimeParts } from '../../src/controllers/modeldeployment/runtimes.ts';
import { eventually } from '../../local/eventually.ts';
import { freePorts, startComponent, stopProcess, tailOf } from '../../local/processes.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { parseMetrics, total } from '../support/prometheus-text.ts';

const TRAIN = join(import.meta.dirname, '..', '..', 'local', 'models', 'train.py');

test('the mlserver preset\'s settings make a real MLServer serve a real model, answering as the model does offline', async (t) => {
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const dir = mkdtempSync(join(tmpdir(), 'slipway-mlserver-'));
  const modelDir = join(dir, 'model');
  await promisify(execFile)(join(bin, 'python'), [TRAIN, modelDir, '--version', '3']);
  const offline = JSON.parse(readFileSync(join(modelDir, 'offline.json'), 'utf8')) as { rows: number[][]; predictions: number[] };

  const [http, grpc, metrics] = (await freePorts(3)) as [number, number, number];
  const parts = runtimeParts({ preset: 'mlserver', model: { name: 'iris', version: '3', format: 'sklearn', uri: 's3://models/iris/3/' }, port: 8080, storageInitializerImage: 'x' });
  const outsideAPod: Record<string, string> = { MLSERVER_MODEL_URI: modelDir, MLSERVER_HTTP_PORT: String(http), MLSERVER_GRPC_PORT: String(grpc), MLSERVER_METRICS_PORT: String(metrics) };
  const env: Record<string, string> = { ...Object.fromEntries(parts.env.map((e) => [e.name, outsideAPod[e.name] ?? e.value])), MLSERVER_HOST: '127.0.0.1' };
  assert.equal(env.MLSERVER_MODEL_IMPLEMENTATION, 'mlserver_sklearn.SKLearnModel');

  // An empty model repository: the model comes from the MLSERVER_MODEL_* settings alone, as in the pod.
  const server = startComponent('mlserver', join(bin, 'mlserver'), ['start', mkdtempSync(join(dir, 'repo-'))], dir, false, env);
  t.after(() => stopProcess(server, 10_000));
  const base = `http://127.0.0.1:${http}`;
  await eventually('MLServer ready (/v2/health/ready)', async () => (await fetch(`${base}/v2/health/ready`)).ok, {
    timeoutMs: 120_000,
    intervalMs: 250,
    abort: server.exited.catch((err: unknown) => {
      throw new Error(`${String(err)}\n${tailOf(server.log)}`);
    }),
  });

  const res = await fetch(`${base}/v2/models/iris/infer`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input-0', shape: [offline.rows.length, 4], datatype: 'FP64', data: offline.rows.flat() }] }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const answer = (await res.json()) as { model_name: string; model_version?: string; outputs: { data: number[] }[] };
  assert.equal(answer.model_name, 'iris');
  assert.equal(answer.model_version, '3', 'the V2 response names the version that answered');
  assert.deepEqual(answer.outputs[0]?.data, offline.predictions);

  // The metrics port the preset declares serves the server's own request counts.
  const scraped = parseMetrics(await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text());
  assert.ok(total(scraped, 'model_infer_request_success_total') + total(scraped, 'model_infer_request_success') >= 1, 'MLServer counted the inference');
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
