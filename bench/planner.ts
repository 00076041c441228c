// Micro-benchmarks of the pure parts a reconcile runs on every key: the ModelDeployment planner (first plan and
// the converged no-op plan) and the work queue (add/get/done under duplicate-heavy churn).
//   npm run bench:planner
import { modelDeploymentSpec, type ModelDeployment } from '../src/api/modeldeployment.ts';
import { plan, type Observed } from '../src/controllers/modeldeployment/plan.ts';
import type { Deployment } from '../src/kube/workloads.ts';
import { WorkQueue } from '../src/runtime/work-queue.ts';

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** Times `fn` per call; an async `fn` is timed until its promise settles, so only completed work counts. */
async function measure(name: string, iterations: number, fn: (i: number) => void | Promise<void>): Promise<void> {
  for (let i = 0; i < Math.min(1000, iterations); i++) await fn(i); // warm up the JIT
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const s = performance.now();
    await fn(i);
    samples.push((performance.now() - s) * 1000);
  }
  const total = (performance.now() - t0) / 1000;
  samples.sort((a, b) => a - b);
  console.log(`${name.padEnd(34)} ${(iterations / total).toFixed(0).padStart(8)} /s   p50 ${percentile(samples, 50).toFixed(1)} µs   p99 ${percentile(samples, 99).toFixed(1)} µs`);
}

const md: ModelDeployment = {
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'ModelDeployment',
  metadata: { name: 'churn', namespace: 'marketing', uid: 'u1', generation: 1 },
  spec: modelDeploymentSpec.parse({
    model: { name: 'churn', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' },
    image: 'registry.example.com/mlserver:1.6.1',
    replicas: 2,
    resources: { requests: { cpu: '500m', memory: '1Gi' } },
    batch: { schedule: '0 2 * * *' },
  }),
};
const now = new Date('2026-11-24T12:00:00Z');
const empty: Observed = { md, deployments: [], services: [], cronJobs: [], hpas: [], revisions: [] };

// A converged world, as the API server would hold it.
const first = plan(empty, now);
const world = first.apply.map((o) => {
  const copy: Deployment = structuredClone(o);
  copy.metadata.uid = `uid-${o.metadata.name}`;
  copy.metadata.generation = 1;
  if (o.kind === 'Deployment') copy.status = { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 };
  return copy;
});
const second = plan({ ...empty, md: { ...md, status: first.status }, deployments: world.filter((o) => o.kind === 'Deployment'), services: world.filter((o) => o.kind === 'Service'), cronJobs: world.filter((o) => o.kind === 'CronJob'), revisions: world.filter((o) => o.kind === 'ControllerRevision') }, now);
const converged: Observed = { md: { ...md, status: second.status }, deployments: world.filter((o) => o.kind === 'Deployment'), services: world.filter((o) => o.kind === 'Service'), cronJobs: world.filter((o) => o.kind === 'CronJob'), hpas: [], revisions: world.filter((o) => o.kind === 'ControllerRevision') };
const noop = plan(converged, now);
if (noop.apply.length || noop.statusChanged) throw new Error('the converged world is not converged');

const timeOf = (o: Observed): number => {
  const t0 = performance.now();
  for (let i = 0; i < 20_000; i++) plan(o, now);
  return performance.now() - t0;
};
await measure('plan: new ModelDeployment', 20_000, () => void plan(empty, now));
await measure('plan: converged (no-op)', 20_000, () => void plan(converged, now));
console.log(`${'converged / new plan time'.padEnd(34)} ${(timeOf(converged) / timeOf(empty)).toFixed(2)}× (the no-op plan also compares every child with its live copy)`);

const q = new WorkQueue();
const keys = Array.from({ length: 1000 }, (_, i) => `ns/model-${i}`);
let cycles = 0;
await measure('work queue: add ×5 + get + done', 200_000, async (i) => {
  const key = keys[i % keys.length] ?? '';
  for (let d = 0; d < 5; d++) q.add(key); // five events for one key: queued once
  const got = await q.get();
  if (got !== key) throw new Error(`the queue handed out ${got}, not ${key}`);
  q.done(got);
  cycles++;
});
if (q.length !== 0 || q.inFlight !== 0 || cycles !== 201_000) throw new Error(`work queue cycles did not all complete: ${cycles}, ${q.length} queued, ${q.inFlight} in flight`);
