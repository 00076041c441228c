// The GitOps loop, for real: Flux's source-controller fetches a fleet repository from a git server (git's own
// smart-HTTP backend over TLS, basic auth) and its kustomize-controller applies the ModelDeployment in it. A bad
// model version is committed; Flux applies it; Slipway rolls it back, writes the fix to the same repository
// (with the same Secret Flux uses), and Flux's next reconcile applies the fix: Git and the cluster agree on the
// good version, and nothing rolls out again.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { startFlux } from '../../local/flux.ts';
import { bareRepository, startHttpsGitServer } from '../../local/git-server.ts';
import { commitAsPipeline, FLEET_PATH, fleetManifest } from '../support/fleet.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const git = (dir: string, args: string[]): string => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });

test('Flux applies a bad model version from Git; Slipway rolls it back and writes the fix to Git; Flux applies the fix; Git and the cluster agree', async (t) => {
  const ns = await testNamespace(t);
  const root = mkdtempSync(join(tmpdir(), 'slipway-flux-'));
  const repos = join(root, 'repos');
  mkdirSync(repos);
  const bare = bareRepository(repos, 'fleet.git');
  const user = { username: 'flux', password: 'fleet-pass-5d2a' };
  const server = await startHttpsGitServer(repos, user);
  t.after(server.close);
  const flux = await startFlux({ kubeconfig: cluster.kubeconfig, kubectl: cluster.kubectl, dir: root, log: (l) => t.diagnostic(l) });
  t.after(async () => {
    // Flux's objects carry its finalizers: they go while Flux runs, or the namespace would never finish terminating.
    const kinds = 'kustomizations.kustomize.toolkit.fluxcd.io,gitrepositories.source.toolkit.fluxcd.io';
    await cluster.kubectl(['delete', kinds, '--all', '-n', ns, '--wait=true', '--timeout=60s']).catch(async () => {
      for (const name of (await cluster.kubectl(['get', kinds, '-n', ns, '-o', 'name']).catch(() => '')).split('\n').filter(Boolean)) {
        await cluster.kubectl(['patch', name, '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']).catch(() => '');
      }
    });
    await flux.stop();
  });
  await startController(t, cluster, ns);

  const url = server.url('fleet.git');
  const work = join(root, 'work');
  execFileSync('git', ['clone', '--quiet', bare, work]);
  const path = FLEET_PATH;
  const manifest = (version: string, backtestImage: string): string => fleetManifest({ version, backtestImage, gitOps: `{repository: "${url}", path: ${path}, secretRef: {name: fleet-auth}}`, comment: 'Applied by Flux (Kustomization churn).' });
  const commit = (text: string, message: string): string => commitAsPipeline(work, path, text, message);
  commit(manifest('7', 'registry.example.com/backtest:1'), 'churn: model 7');

  // The Secret both Flux and Slipway read: Flux's keys for basic auth over HTTPS are Slipway's too.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fleet-auth' }, stringData: { ...user, 'ca.crt': server.ca } }));
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'GitRepository', metadata: { name: 'fleet', namespace: ns }, spec: { url, ref: { branch: 'main' }, interval: '3s', timeout: '20s', secretRef: { name: 'fleet-auth' } } },
      { apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization', metadata: { name: 'churn', namespace: ns }, spec: { interval: '3s', retryInterval: '3s', sourceRef: { kind: 'GitRepository', name: 'fleet' }, path: './clusters/prod', prune: true, targetNamespace: ns } },
    ],
  }));
  type Md = { spec: { model: { version: string; uri: string } }; status?: { phase?: string; stable?: { modelVersion: string }; canary?: unknown; aborted?: { reason: string }; writeBack?: { state: string; commit?: string } } };
  type Ks = { status?: { lastAppliedRevision?: string; conditions?: { type: string; status: string; message: string }[] } };
  const md = (): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns]);
  const ks = (): Promise<Ks> => getJson<Ks>(cluster, ['get', 'kustomizations.kustomize.toolkit.fluxcd.io', 'churn', '-n', ns]);
  const ksState = async (): Promise<string> => JSON.stringify((await ks()).status ?? {});

  await eventually('Flux applied model 7 and Slipway serves it', async () => {
    const m = await md().catch(() => undefined);
    if (m?.status?.phase === 'Healthy' && m.status.stable?.modelVersion === '7') return true;
    throw new Error(`not yet: ${await ksState()}`);
  }, { timeoutMs: 120_000, intervalMs: 500 });

  const bad = commit(manifest('8', NEVER_READY_IMAGE), 'churn: model 8');
  const rolledBack = await eventually('Flux applied model 8, Slipway rolled it back and wrote the fix to Git', async () => {
    const m = await md();
    if (m.status?.writeBack?.state === 'Pushed') return m;
    throw new Error(`not yet: phase ${m.status?.phase}, spec ${m.spec.model.version}, writeBack ${JSON.stringify(m.status?.writeBack)}`);
  }, { timeoutMs: 180_000, intervalMs: 500 });
  assert.equal(rolledBack.status?.aborted?.reason, 'RolledBack');
  const fix = rolledBack.status?.writeBack?.commit ?? '';
  assert.equal(git(bare, ['rev-parse', 'main']).trim(), fix, 'the fix is the tip of the branch Flux syncs');
  assert.equal(git(bare, ['rev-parse', `${fix}^`]).trim(), bad, 'on top of the bad commit');

  // Flux's next reconcile applies the fix: version 7 in the spec, healthy, nothing rolled out again.
  const agreed = await eventually('Flux applied the fix', async () => {
    const [m, k] = await Promise.all([md(), ks()]);
    if (m.spec.model.version === '7' && m.status?.phase === 'Healthy' && k.status?.lastAppliedRevision?.includes(fix)) return { m, k };
    throw new Error(`not yet: spec ${m.spec.model.version}, phase ${m.status?.phase}, flux ${k.status?.lastAppliedRevision}`);
  }, { timeoutMs: 120_000, intervalMs: 500 });
  assert.equal(agreed.m.status?.stable?.modelVersion, '7');
  assert.equal(agreed.m.status?.canary, undefined);
  assert.equal(agreed.m.spec.model.uri, 's3://models/churn/7/');
  assert.match(git(bare, ['show', `main:${path}`]), /version: "7" # set by the training pipeline\n\s+uri: s3:\/\/models\/churn\/7\//);
  // And it stays so: a few more Flux intervals change nothing.
  await new Promise((r) => setTimeout(r, 8000));
  const later = await md();
  assert.equal(later.spec.model.version, '7');
  assert.equal(later.status?.phase, 'Healthy');
  assert.equal(git(bare, ['rev-list', '--count', 'main']).trim(), '3', 'model 7, model 8, the fix: nothing more');
});
