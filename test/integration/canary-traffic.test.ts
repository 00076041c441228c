// A canary under steady load through the real gateway (Traefik, Gateway API) to real MLServer pods: at each step
// the share of requests the canary answers matches the step's weight (its 99% interval covers it), and not one
// request fails during the whole rollout, promotion and the old revision's scale-down included.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../../local/eventually.ts';
import { localHttpRoute } from '../../local/gateway.ts';
import { MLSERVER_IMAGE } from '../../local/images.ts';
import { runLoad, type Sample } from '../../local/loadgen.ts';
import { frameRequest, startModelStore, trainModel } from '../../local/mlserver.ts';
import { ensurePythonEnv } from '../../local/python.ts';
import { wilsonInterval } from '../../src/stats/binomial.ts';
import { startController } from './controller-process.ts';
import { getJson, onlyRoutesOf, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const serving = process.env.SLIPWAY_TEST_SERVING === '1';

interface Md { status?: { stable?: { revision: string; modelVersion: string }; canary?: { step?: number; weight?: number; achievedWeight?: number }; retiring?: unknown[] } }

test('under steady load through the gateway, the canary answers its step\'s share of requests, and no request fails from 10% to scale-down', { skip: !serving && 'the local data plane needs root (SLIPWAY_TEST_SERVING=1)' }, async (t) => {
  const gateway = process.env.SLIPWAY_TEST_GATEWAY_URL ?? '';
  assert.ok(gateway, 'the data plane has a gateway');
  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  await trainModel(bin, root, 'better', 1);
  const store = await startModelStore(root);
  t.after(store.close);
  const ns = await testNamespace(t);
  await startController(t, cluster, ns);

  const rollout = {
    steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }, { pause: {} }, { setWeight: 100 }],
    trafficRouting: { gatewayAPI: { httpRoute: 'iris' } },
    // The default drain: the gateway may take a few seconds to stop sending to the old revision's pods.
    scaleDownDelaySeconds: 30,
  };
  const manifest = (version: string, model: string): string => JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'iris' },
    spec: { model: { name: 'iris', version, uri: `${store.url}/${model}/model.joblib`, format: 'sklearn' }, image: MLSERVER_IMAGE, runtime: { preset: 'mlserver' }, replicas: 1, rollout },
  });
  const getMd = (): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'iris', '-n', ns]);
  await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], manifest('1', 'good-1'));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=180s', '-n', ns, 'mdep/iris']);
  await onlyRoutesOf(cluster, ns);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], localHttpRoute('iris', [{ name: 'iris', port: 80 }, { name: 'iris-canary', port: 80, weight: 0 }], '/v2/models/iris'));
  const url = `${gateway}/v2/models/iris/infer`;
  const body = frameRequest(offline.columns, [offline.rows[0] ?? []]);
  await eventually('the route serving', async () => (await runLoad({ url, body, rate: 1, durationSeconds: 1 }))[0]?.status === 200, { timeoutMs: 60_000, intervalMs: 250 });

  // Steady load for the whole rollout.
  const stop = new AbortController();
  const background = runLoad({ url, body, rate: 20, durationSeconds: 600, stop: stop.signal });
  t.after(() => stop.abort());
  const all: Sample[] = [];
  /** The canary's share over a burst at the step the rollout holds at. */
  const shareAt = async (weight: number): Promise<void> => {
    // The route object has the weight; the gateway applies a changed route some time later (its provider's
    // throttle, its view of the canary's endpoints). Measured from the moment it demonstrably has: version 2
    // answers at all.
    await eventually('the gateway sending to the canary', async () => (await runLoad({ url, body, rate: 20, durationSeconds: 1 })).some((x) => x.version === '2'), { timeoutMs: 60_000, intervalMs: 100 });
    // The gateway converges on the new weights some seconds after it first sends to the canary (slower on a
    // loaded machine): the step holds, so the share is measured in bursts until it settles (at most five).
    let last = '';
    for (let attempt = 1; attempt <= 5; attempt++) {
      const samples = await runLoad({ url, body, rate: 80, durationSeconds: 10 });
      all.push(...samples);
      const toCanary = samples.filter((s) => s.version === '2').length;
      const i = wilsonInterval(toCanary, samples.length, 0.99);
      last = `version 2 answered ${toCanary} of ${samples.length} (99% interval ${(100 * i.low).toFixed(1)}–${(100 * i.high).toFixed(1)}%)`;
      t.diagnostic(`at ${weight}%, burst ${attempt}: ${last}`);
      if (i.low <= weight / 100 && weight / 100 <= i.high) return;
    }
    assert.fail(`at ${weight}% the canary's measured share never covered the weight: ${last}`);
  };
  const holdAt = (step: number): Promise<Md> => eventually(`the rollout at step ${step + 1}`, async () => {
    const m = await getMd();
    return m.status?.canary?.step === step ? m : undefined;
  }, { timeoutMs: 180_000, intervalMs: 250 });
  const promote = async (): Promise<void> => {
    await cluster.kubectl(['annotate', '--overwrite', '-n', ns, 'mdep/iris', `slipway.dev/request={"id":"${Date.now()}","verb":"promote"}`]);
  };

  await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], manifest('2', 'better-1'));
  await holdAt(1);
  await shareAt(10);
  await promote();
  await holdAt(3);
  await shareAt(50);
  await promote();
  await eventually('version 2 stable and the old revision gone', async () => {
    const m = await getMd();
    return m.status?.stable?.modelVersion === '2' && !m.status.canary && !m.status.retiring ? m : undefined;
  }, { timeoutMs: 180_000, intervalMs: 250 });
  // A little longer: requests that were in flight to the old pods as they went.
  await new Promise((r) => setTimeout(r, 3000));
  const after = await runLoad({ url, body, rate: 40, durationSeconds: 3 });
  assert.ok(after.every((s) => s.version === '2'), 'after the rollout, version 2 answers everything');
  stop.abort();
  all.push(...(await background), ...after);
  const failed = all.filter((s) => s.status !== 200);
  t.diagnostic(`${all.length} requests during the rollout, ${failed.length} failed`);
  assert.equal(failed.length, 0, `no request fails during the rollout: ${JSON.stringify(failed.slice(0, 5))}`);
});
