// Helm 4's --wait reads ModelDeployments with kstatus, as Flux does: a release containing one succeeds once the
// ModelDeployment is Ready, and fails, without waiting out its timeout, when it is Stalled.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const run = promisify(execFile);

function chartWith(modelDeployment: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-chart-'));
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: churn-model\nversion: 0.1.0\n');
  writeFileSync(join(dir, 'templates', 'model.yaml'), JSON.stringify(modelDeployment));
  return dir;
}

const model = (spec: object): object => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'ModelDeployment',
  metadata: { name: 'churn' },
  spec: { model: { name: 'churn-xgb', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' }, replicas: 2, ...spec },
});

const helmInstall = (ns: string, chart: string, timeout: string) =>
  run(join(cluster.binDir, 'helm'), ['install', 'churn', chart, '-n', ns, '--wait', `--timeout=${timeout}`], { env: { ...process.env, KUBECONFIG: cluster.kubeconfig } });

test('helm install --wait succeeds once the ModelDeployment is Ready', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await helmInstall(ns, chartWith(model({ image: 'registry.example.com/mlserver:1.6.1' })), '90s');
  const md = await getJson<{ status: { conditions: { type: string; status: string }[] } }>(cluster, ['get', 'mdep', 'churn', '-n', ns]);
  assert.equal(md.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', 'helm returned only after Ready');
});

test('helm install --wait fails fast on a Stalled ModelDeployment', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  // Had helm read the Stalled object as merely in progress, it would end on its timeout with another message.
  const started = performance.now();
  await assert.rejects(helmInstall(ns, chartWith(model({ environmentRef: { name: 'missing' } })), '2m'), (err: Error & { stderr?: string }) => {
    assert.match(`${err.message}\n${err.stderr ?? ''}`, /ModelDeployment\/[\w-]+\/churn not ready\. status: Failed, message: ProjectEnvironment "missing" does not exist/);
    return true;
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds < 40, `helm gave up after ${seconds.toFixed(1)} s of its 120 s timeout: it read Stalled as failed, not as in progress`);
});
