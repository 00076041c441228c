// Zero writes at rest, counted by the API server: random valid ModelDeployments (with the spellings the API
// server stores in another form: empty env values, empty args, quantities such as 0.5 CPU or 1024Mi, numbers
// for quantities) converge, then a full resync reconciles every one of them and the API server's own
// apiserver_request_total shows not one write to anything Slipway writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiServerMetrics, sumOf, writesBetween } from '../support/apiserver-writes.ts';
import { eventually } from '../../local/eventually.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';
import { seededRandom } from '../../src/stats/random.ts';

const cluster = testCluster();

/** A seeded generator, so a failing case is reproduced by its seed. */
const random = seededRandom;

type Obj = Record<string, unknown>;

function randomSpec(rnd: () => number, i: number): Obj {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const maybe = <T>(x: T): T | undefined => (rnd() < 0.5 ? x : undefined);
  // Each tier: one amount in the spellings the API server stores in another form. Limits are never below requests,
  // and every amount fits on a KWOK node (a valid spec that cannot be scheduled would never be Ready).
  const cpuTiers: (string | number)[][] = [['0.25', '250m'], ['0.5', '500m'], ['1', 1, '1000m'], ['1.5', '1500m'], [2, '2000m', '2']];
  const memoryTiers: (string | number)[][] = [[1000, '1000', '1k'], ['1E6', '1000k'], ['1000Ki', '1024000'], ['128974848', '123Mi'], ['512Mi', '0.5Gi'], ['1e9', '1G'], ['1024Mi', '1Gi', 1073741824], ['1.5Gi', '1536Mi']];
  const tierPair = (tiers: (string | number)[][]): [string | number, string | number] => {
    const r = Math.floor(rnd() * tiers.length);
    const l = r + Math.floor(rnd() * (tiers.length - r));
    return [pick(tiers[r] ?? []), pick(tiers[l] ?? [])];
  };
  const resources = () => {
    const [cpuRequest, cpuLimit] = tierPair(cpuTiers);
    const [memoryRequest, memoryLimit] = tierPair(memoryTiers);
    const requests = rnd() < 0.8;
    return {
      ...(requests ? { requests: { cpu: cpuRequest, memory: memoryRequest } } : {}),
      ...(rnd() < 0.5 ? { limits: { cpu: cpuLimit, memory: memoryLimit } } : {}),
    };
  };
  const env = Array.from({ length: Math.floor(rnd() * 4) }, (_, k) => ({ name: `VAR_${k}`, ...(rnd() < 0.5 ? { value: pick(['', 'x', '0', 'a b']) } : {}) }));
  const args = pick([undefined, [], ['--workers', '2']]);
  return {
    model: { name: `m${i}`, version: String(1 + Math.floor(rnd() * 9)), uri: `s3://models/m${i}/`, format: pick(['sklearn', 'xgboost', 'lightgbm']) },
    image: 'registry.example.com/mlserver:1.6.1',
    replicas: 1,
    runtime: { ...(env.length || rnd() < 0.5 ? { env } : {}), ...(args ? { args } : {}), ...(rnd() < 0.3 ? { port: 9000 } : {}) },
    ...(maybe(true) ? { resources: resources() } : {}),
    ...(rnd() < 0.6
      ? { batch: { schedule: pick(['@daily', '0 2 * * *', '@weekly', '30 4 * * MON']), ...(rnd() < 0.5 ? { args: pick([[], ['--date', 'today']]) } : {}), ...(rnd() < 0.4 ? { resources: resources() } : {}) } }
      : {}),
  };
}

interface Md {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

test('random valid specs converge, and a full resync of them makes no write the API server counts', async (t) => {
  const seed = Number(process.env.SLIPWAY_PROPERTY_SEED ?? Date.now() % 100_000);
  t.diagnostic(`seed ${seed} (SLIPWAY_PROPERTY_SEED=${seed} reproduces it)`);
  const rnd = random(seed);
  const ns = await testNamespace(t);
  const count = 12;
  const docs = Array.from({ length: count }, (_, i) => ({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name: `m${i}` }, spec: randomSpec(rnd, i) }));
  await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], docs.map((d) => JSON.stringify(d)).join('\n'));
  const controller = await startController(t, cluster, ns, { args: ['--resync-seconds=3600'] });
  await eventually('every ModelDeployment Ready', async () => {
    const list = await getJson<{ items: Md[] }>(cluster, ['get', 'mdep', '-n', ns]);
    return list.items.filter((m) => m.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === count;
  }, { timeoutMs: 120_000, intervalMs: 1_000 });
  // Other tests' namespaces are deleted in the background, and their deletion is counted as writes too.
  await eventually('no namespace terminating', async () => {
    const terminating = (await cluster.kubectl(['get', 'namespaces', '--no-headers'])).split('\n').filter((l) => l.includes('Terminating'));
    if (terminating.length === 0) return true;
    // Say what holds them, if this times out: the namespace's conditions name the finalizers left.
    const name = terminating[0]?.split(/\s+/)[0] ?? '';
    type Ns = { status?: { conditions?: { type: string; message?: string }[] } };
    const got = await getJson<Ns>(cluster, ['get', 'namespace', name]).catch((): Ns => ({}));
    const why = JSON.stringify(got.status?.conditions?.filter((c) => c.message !== undefined) ?? []);
    throw new Error(`${terminating.length} terminating, e.g. ${name}: ${why}`);
  }, { timeoutMs: 120_000, intervalMs: 1_000 });
  const idle = async (): Promise<void> => {
    await eventually('the controller idle', async () => (await controller.metric('slipway_workqueue_depth')) === 0 && (await controller.metric('slipway_workqueue_in_flight')) === 0);
  };
  await idle();

  const reconciles = await controller.metric('slipway_reconcile_total');
  const before = await apiServerMetrics(cluster.kubectl);
  process.kill(controller.pid, 'SIGHUP'); // a full resync: every key reconciled again
  await eventually(`${count} more reconciles`, async () => (await controller.metric('slipway_reconcile_total')) >= reconciles + count);
  await idle();
  const writes = writesBetween(before, await apiServerMetrics(cluster.kubectl));
  assert.equal(sumOf(writes), 0, `writes during the resync (seed ${seed}): ${JSON.stringify(Object.fromEntries(writes))}\n${JSON.stringify(docs.map((d) => d.spec))}`);
});
