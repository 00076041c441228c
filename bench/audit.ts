// Audit trail benchmark. Printed:
//   the repository alone: commits/s one change per commit() (a flush per change) and batched (500 per flush, each
//     change still its own commit), and bytes per commit on disk after maintenance (packed);
//   end to end on the local control plane: N ModelDeployments created, then every one edited at once; the lag
//     from each edit's answer (the API server's) to its commit appearing in the repository (observed by polling
//     `git log` every 50 ms), p50 / p95 / p99; edits lost and committed twice (by the Slipway-Resource-Version
//     trailer).
//   npm run bench:audit -- --count 200
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditRepository } from '../src/audit/repository.ts';
import type { AuditChange } from '../src/audit/document.ts';
import { KubeClient } from '../src/kube/client.ts';
import { Resources, type KubeObject } from '../src/kube/resources.ts';
import { eventually } from '../local/eventually.ts';
import { percentiles, runBench } from './support.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '200' }, single: { type: 'string', default: '300' }, batched: { type: 'string', default: '10000' } } });
const NS = 'bench';

const change = (i: number, n: number): AuditChange => ({
  path: `ns${i % 10}/modeldeployment/m${i}.yaml`,
  content: `apiVersion: slipway.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: m${i}, generation: ${n}}\nspec:\n  model: {name: churn, version: '${n}', uri: 's3://models/churn/${n}/'}\n  replicas: 2\neffective:\n  stable: {revision: r${n}, modelVersion: '${n}'}\n`,
  subject: `ns/m${i}: spec changed by bench: model version ${n - 1} → ${n}`,
  body: `Generation ${n - 1} → ${n}.`,
  trailers: { 'Slipway-Kind': 'ModelDeployment', 'Slipway-Object': `ns/m${i}`, 'Slipway-Generation': String(n), 'Slipway-Decision': 'spec-changed', 'Slipway-Actor': 'bench' },
});

async function repositoryAlone(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-audit-'));
  try {
    const repo = new AuditRepository({ dir });
    await repo.open();
    const single = Number(values.single);
    let t = performance.now();
    for (let i = 0; i < single; i++) await repo.commit([change(i % 100, i + 1)]);
    const singleRate = single / ((performance.now() - t) / 1000);
    const batched = Number(values.batched);
    t = performance.now();
    for (let i = 0; i < batched; i += 500) await repo.commit(Array.from({ length: Math.min(500, batched - i) }, (_, k) => change((i + k) % 1000, i + k + 2)));
    const batchedRate = batched / ((performance.now() - t) / 1000);
    const before = await repo.objects();
    t = performance.now();
    await repo.maintain();
    const maintainS = (performance.now() - t) / 1000;
    const after = await repo.objects();
    const commits = single + batched;
    console.log('\nThe repository alone (git fast-import into a bare repository):');
    console.log(`  one change per flush:       ${singleRate.toFixed(0)} commits/s (${single} commits)`);
    console.log(`  500 changes per flush:      ${batchedRate.toFixed(0)} commits/s (${batched} commits, each change its own commit)`);
    console.log(`  on disk: ${(before.bytes / commits).toFixed(0)} bytes/commit in ${before.packs} packs as written, ${(after.bytes / commits).toFixed(0)} bytes/commit in ${after.packs} after maintenance (${maintainS.toFixed(1)} s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function committedResourceVersions(dir: string): string[] {
  try {
    return execFileSync('git', ['log', '--format=%(trailers:key=Slipway-Resource-Version,valueonly,separator=)', 'main'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n').map((l) => l.trim()).filter(Boolean);
  } catch {
    return [];
  }
}

await repositoryAlone();

runBench({ namespace: NS, upstreamCrds: false, workers: '8', controllerArgs: (dir) => [`--audit-dir=${join(dir, 'audit')}`] }, async ({ cluster, dir }) => {
  const count = Number(values.count);
  const audit = join(dir, 'audit');
  const client = await KubeClient.load({ kubeconfig: cluster.kubeconfig, maxSockets: 32 });
  const names = Array.from({ length: count }, (_, i) => `m${i}`);
  const md = (name: string): KubeObject => ({
    apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name, namespace: NS },
    spec: { model: { name: 'churn', version: '1', uri: `s3://models/${name}/1/`, format: 'sklearn' }, image: 'registry.example.com/mlserver:1.6.1', replicas: 1 },
  });
  for (let i = 0; i < count; i += 32) await Promise.all(names.slice(i, i + 32).map((n) => client.create(Resources.ModelDeployment, md(n))));
  await eventually('every creation committed', () => committedResourceVersions(audit).length >= count * 2, { timeoutMs: 300_000, intervalMs: 500 });
  await new Promise((r) => setTimeout(r, 2000));

  // Every object edited at once; each edit's resourceVersion and the instant its answer came.
  const edited = new Map<string, number>();
  const seen = new Map<string, number>();
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const now = performance.now();
      for (const rv of committedResourceVersions(audit)) if (edited.has(rv) && !seen.has(rv)) seen.set(rv, now);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const started = performance.now();
  for (let i = 0; i < count; i += 32) {
    await Promise.all(names.slice(i, i + 32).map(async (n) => {
      const r = await client.mergePatch<KubeObject>(Resources.ModelDeployment, NS, n, { spec: { revisionHistoryLimit: 5 } });
      edited.set(r.metadata.resourceVersion ?? '', performance.now());
    }));
  }
  const editSeconds = (performance.now() - started) / 1000;
  await eventually('every edit committed', () => seen.size >= count, { timeoutMs: 120_000, intervalMs: 200 }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 2000));
  polling = false;
  await poll;
  const all = committedResourceVersions(audit).filter((rv) => edited.has(rv));
  const lags = [...seen].map(([rv, at]) => (at - (edited.get(rv) ?? at)) / 1000);
  console.log(`\nEnd to end on the local control plane (${count} ModelDeployments, every one edited at once; edits sent in ${editSeconds.toFixed(1)} s = ${(count / editSeconds).toFixed(0)}/s):`);
  console.log(`  edit answered → its commit in the repository, p50 / p95 / p99: ${percentiles(lags)} s`);
  console.log(`  edits lost: ${count - seen.size}; committed twice: ${all.length - new Set(all).size}`);
});
