// kubectl slipway, found by kubectl on PATH as a user installs it (package.json bin), against the local cluster:
// the list, JSON output for scripts, the history after a new model version, and the errors a person can act on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../../local/eventually.ts';
import { startController } from './controller-process.ts';
import { testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const pluginDir = mkdtempSync(join(tmpdir(), 'slipway-plugin-'));
symlinkSync(join(import.meta.dirname, '..', '..', 'src', 'cli', 'kubectl-slipway.ts'), join(pluginDir, 'kubectl-slipway'));
// kubectl looks plugins up on PATH; the plugin's `#!/usr/bin/env node` finds this Node first.
process.env.PATH = `${pluginDir}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

const md = (version: string): string => JSON.stringify({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'ModelDeployment',
  metadata: { name: 'churn' },
  spec: { model: { name: 'churn-xgb', version, uri: 's3://models/churn/', format: 'xgboost' }, image: 'registry.example.com/mlserver:1.6.1', replicas: 2, rollout: { scaleDownDelaySeconds: 0 } },
});

test('kubectl slipway lists ModelDeployments, prints JSON for scripts, shows the revision history and says what is missing', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], md('8'));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);

  const listed = await cluster.kubectl(['slipway', 'get', '-n', ns]);
  assert.match(listed, /^NAME\s+MODEL\s+STABLE\s+CANARY\s+READY\s+AVAILABLE\s+AGE$/m);
  assert.match(listed, /^churn\s+churn-xgb\s+v8 \([0-9a-f]{10}\)\s+-\s+True\s+2\/2\s+\d+s$/m);
  assert.ok(!listed.includes('\u001b['), 'no colour when the output is not a terminal');

  const json = JSON.parse(await cluster.kubectl(['slipway', 'get', 'churn', '-n', ns, '-o', 'json'])) as { metadata: { name: string }; status: { stable: { modelVersion: string } } };
  assert.equal(json.status.stable.modelVersion, '8');

  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], md('9'));
  await cluster.kubectl(['wait', '--for=jsonpath={.status.stable.modelVersion}=9', '--timeout=60s', '-n', ns, 'mdep/churn']);
  const history = await cluster.kubectl(['slipway', 'history', 'churn', '-n', ns]);
  assert.match(history, /^1\s+[0-9a-f]{10}\s+8\s+registry\.example\.com\/mlserver:1\.6\.1\s+\d+s/m);
  assert.match(history, /^2\s+[0-9a-f]{10}\s+9\s+registry\.example\.com\/mlserver:1\.6\.1\s+\d+s\s+stable$/m);

  const status = await cluster.kubectl(['slipway', 'status', 'churn', '-n', ns]);
  assert.match(status, /^Stable:\s+revision [0-9a-f]{10}, model version 9/m);
  assert.match(status, /^Events$/m);

  await assert.rejects(cluster.kubectl(['slipway', 'status', 'nope', '-n', ns]), /error: modeldeployment "nope" not found in namespace "t-/);
  await assert.rejects(cluster.kubectl(['slipway', 'history']), /kubectl slipway history needs the name of a ModelDeployment/);
});

test('kubectl slipway status --watch shows the ModelDeployment again when it changes, until Ctrl-C', async (t) => {
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], md('8'));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);
  const child = spawn(process.execPath, [join(pluginDir, 'kubectl-slipway'), 'status', 'churn', '-n', ns, '-w', `--kubeconfig=${cluster.kubeconfig}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  await eventually('the first view', () => /^Stable:\s+revision [0-9a-f]{10}, model version 8/m.test(out), { timeoutMs: 30_000 });
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], md('9'));
  await eventually('a later view with the new version serving', () => /^Stable:\s+revision [0-9a-f]{10}, model version 9/m.test(out), { timeoutMs: 60_000, intervalMs: 250 });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0, out.slice(-500));
});

