// The audit trail on the local control plane, pushed to a real git remote (a bare repository over file://):
// apply, change and roll back a ModelDeployment, and `git log` of its file tells the story in order, with the
// trailers machines read; a planted secret is in no commit of the history; a controller restarted on the same
// volume records what changed while it was down, once, and nothing twice.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
import { commitAsPipeline, FLEET_PATH, fleetManifest } from '../support/fleet.ts';
import { startController } from './controller-process.ts';
import { getJson, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const git = (dir: string, args: string[]): string => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });

interface Commit { sha: string; subject: string; decision: string; actor: string; generation: string }

function history(remote: string, path: string): Commit[] {
  let out: string;
  try {
    out = git(remote, ['log', '--reverse', '--format=%H%x1f%s%x1f%(trailers:key=Slipway-Decision,valueonly,separator=)%x1f%(trailers:key=Slipway-Actor,valueonly,separator=)%x1f%(trailers:key=Slipway-Generation,valueonly,separator=)%x1e', 'main', '--', path]);
  } catch {
    return []; // no branch yet
  }
  return out.split('\x1e').map((r) => r.trim()).filter(Boolean).map((r) => {
    const [sha = '', subject = '', decision = '', actor = '', generation = ''] = r.split('\x1f').map((x) => x.trim());
    return { sha, subject, decision, actor, generation };
  });
}

test('the audit trail: apply, change and roll back; git log tells the story with its trailers; no secret in any commit; a restart commits what changed meanwhile, once', async (t) => {
  const ns = await testNamespace(t);
  const remote = join(mkdtempSync(join(tmpdir(), 'slipway-audit-remote-')), 'audit.git');
  execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', remote]);
  const auditDir = mkdtempSync(join(tmpdir(), 'slipway-audit-'));
  const args = [`--audit-dir=${auditDir}`, `--audit-remote=file://${remote}`];
  const controller = await startController(t, cluster, ns, { args });
  const path = `${ns}/modeldeployment/churn.yaml`;
  const manifest = (version: string, analysisImage: string) => JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn' },
    spec: {
      model: { name: 'churn-xgb', version, uri: `s3://models/churn/${version}/`, format: 'xgboost' },
      image: 'registry.example.com/mlserver:1.6.1',
      replicas: 2,
      runtime: { env: [{ name: 'DB_PASSWORD', value: 'planted-secret-7c1d' }], args: ['--feature-store=https://bob:planted-password-91@features.example.com/v1'] },
      rollout: {
        scaleDownDelaySeconds: 0,
        steps: [{ setWeight: 50 }, { analysis: {} }, { setWeight: 100 }],
        analysis: { interval: '2s', count: 1, metrics: [{ name: 'backtest', job: { spec: { activeDeadlineSeconds: 3, template: { spec: { containers: [{ name: 'b', image: analysisImage }] } } } } }] },
      },
    },
  });
  const apply = (body: string): Promise<string> => cluster.kubectl(['apply', '--server-side', '--field-manager=gitops-bot', '-n', ns, '-f', '-'], body);
  await eventually('the audit trail recording', async () => (await controller.metric('slipway_audit_recording')) === 1, { timeoutMs: 30_000, intervalMs: 100 });

  await apply(manifest('7', 'registry.example.com/backtest:1'));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);
  // Version 8's backtest never finishes in time: rolled back.
  await apply(manifest('8', NEVER_READY_IMAGE));
  await eventually('rolled back', async () => (await getJson<{ status?: { phase?: string } }>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status?.phase === 'RolledBack', { timeoutMs: 90_000, intervalMs: 250 });
  const story = await eventually('the rollback pushed to the remote', () => {
    const h = history(remote, path);
    return h.some((c) => c.decision === 'rolled-back') ? h : undefined;
  }, { timeoutMs: 30_000, intervalMs: 250 });
  t.diagnostic(story.map((c) => `${c.decision}: ${c.subject}`).join('\n'));

  const decisions = story.map((c) => c.decision);
  assert.deepEqual(decisions.slice(0, 3), ['created', 'serving', 'spec-changed']);
  assert.equal(decisions.at(-1), 'rolled-back');
  assert.ok(decisions.includes('rollout-started'));
  assert.ok(decisions.indexOf('rollout-started') < decisions.indexOf('rolled-back'));
  assert.equal(story[0]?.subject, `${ns}/churn: created (model 7)`);
  assert.equal(story[0]?.actor, 'gitops-bot', 'who, as the API server recorded it');
  assert.equal(story[2]?.subject, `${ns}/churn: spec changed by gitops-bot: model version 7 → 8`);
  assert.equal(story[2]?.generation, '2');
  assert.match(story.at(-1)?.subject ?? '', new RegExp(`^${ns}/churn: rolled back model 8 → 7`));
  assert.equal(story.at(-1)?.actor, 'slipway');
  assert.equal(new Set(story.map((c) => c.subject)).size, story.length, 'no commit twice');

  // The file at the tip: what runs now, and no secret; no secret in any commit of the history either.
  const tip = git(remote, ['show', `main:${path}`]);
  assert.match(tip, /stable:\n\s+revision: \w+\n\s+modelVersion: '7'/);
  assert.match(tip, /reason: RolledBack/);
  const everything = git(remote, ['log', '-p', '--all', '--format=%B']);
  assert.ok(!everything.includes('planted-secret-7c1d') && !everything.includes('planted-password-91'), 'a planted secret reached the history');
  assert.match(everything, /value: \(redacted\)/);
  // The other two kinds: their spec changes are commits of their own files.
  await cluster.kubectl(['apply', '--server-side', '--field-manager=gitops-bot', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', metadata: { name: 'churn-env' },
    spec: { image: `registry.example.com/envs/churn@sha256:${'a'.repeat(64)}` },
  }));
  const env = await eventually('the ProjectEnvironment recorded', () => history(remote, `${ns}/projectenvironment/churn-env.yaml`)[0], { timeoutMs: 30_000, intervalMs: 250 });
  assert.equal(env.subject, `${ns}/churn-env: created`);
  assert.equal(env.actor, 'gitops-bot');
  // The audit position is in status.
  const position = await eventually('status.audit', async () => (await getJson<{ status?: { audit?: { commit: string } } }>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status?.audit?.commit, { timeoutMs: 10_000 });
  assert.equal(git(auditDir, ['cat-file', '-t', position]).trim(), 'commit');

  // Stopped; the spec changes while nobody records; the next controller on the same volume commits it once.
  await controller.stop();
  const before = history(remote, path).length;
  await cluster.kubectl(['patch', 'mdep', 'churn', '-n', ns, '--type=merge', '--field-manager=oncall', '-p', '{"spec":{"replicas":3}}']);
  await startController(t, cluster, ns, { args, identity: 'controller-2' });
  const after = await eventually('the change made meanwhile', () => {
    const h = history(remote, path);
    return h.length > before ? h : undefined;
  }, { timeoutMs: 30_000, intervalMs: 250 });
  await new Promise((r) => setTimeout(r, 3000));
  const final = history(remote, path);
  assert.equal(final.length, before + 1, final.slice(before).map((c) => c.subject).join('\n'));
  assert.equal(after.at(-1)?.subject, `${ns}/churn: spec changed by oncall: replicas`);
});

test('GitOps write-back: a bad model version committed to the manifest repository is rolled back, Slipway commits the fix there, and the next sync leaves Git and the cluster on the good version', async (t) => {
  const ns = await testNamespace(t);
  const root = mkdtempSync(join(tmpdir(), 'slipway-gitops-'));
  const remote = join(root, 'fleet.git');
  execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', remote]);
  const work = join(root, 'work');
  execFileSync('git', ['clone', '--quiet', remote, work]);
  const path = FLEET_PATH;
  const manifest = (version: string, backtestImage: string): string => fleetManifest({ version, backtestImage, namespace: ns, gitOps: `{repository: "file://${remote}", path: ${path}}`, comment: 'ModelDeployment churn, applied to the cluster by the GitOps tool.' });
  const commitToRepo = (text: string, message: string): string => commitAsPipeline(work, path, text, message);
  /** What the GitOps tool does: apply the file at the branch's tip. */
  const sync = async (): Promise<string> => {
    const text = git(remote, ['show', `main:${path}`]);
    await cluster.kubectl(['apply', '--server-side', '--field-manager=gitops', '-f', '-'], text);
    return text;
  };
  await startController(t, cluster, ns);
  commitToRepo(manifest('7', 'registry.example.com/backtest:1'), 'churn: model 7');
  await sync();
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=60s', '-n', ns, 'mdep/churn']);
  commitToRepo(manifest('8', NEVER_READY_IMAGE), 'churn: model 8');
  const bad = await sync();

  type Md = { spec: { model: { version: string; uri: string } }; status?: { phase?: string; stable?: { modelVersion: string }; canary?: unknown; writeBack?: { state: string; commit?: string; branch?: string; message: string } } };
  const getMd = (): Promise<Md> => getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns]);
  const written = await eventually('the write-back pushed', async () => {
    const m = await getMd();
    return m.status?.writeBack?.state === 'Pushed' ? m : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250 });
  assert.equal(written.status?.phase, 'RolledBack');
  assert.equal(written.status?.writeBack?.branch, 'main');
  const tip = git(remote, ['log', '-1', '--format=%H%n%s%n%(trailers:key=Slipway-Decision,valueonly)', 'main']).split('\n');
  assert.equal(tip[0], written.status?.writeBack?.commit);
  assert.equal(tip[1], `${ns}/churn: roll back model 8 → 7 (what runs since the automatic rollback)`);
  assert.equal(tip[2], 'write-back');
  const fixed = git(remote, ['show', `main:${path}`]);
  assert.match(fixed, / {4}version: "7" # set by the training pipeline\n {4}uri: s3:\/\/models\/churn\/7\/\n/);
  assert.match(fixed, /^# ModelDeployment churn, applied to the cluster by the GitOps tool\.\n/, 'the rest of the file as it was');

  // A re-sync of the old manifest (the GitOps tool had not fetched the fix yet) does not start version 8 again.
  await cluster.kubectl(['apply', '--server-side', '--field-manager=gitops', '-f', '-'], bad);
  await new Promise((r) => setTimeout(r, 4000));
  const held = await getMd();
  assert.equal(held.status?.phase, 'RolledBack');
  assert.equal(held.status?.canary, undefined, 'the bad version is held');

  // The next sync applies the fix: version 7 serves, no rollout, Git and the cluster agree.
  await sync();
  const settled = await eventually('healthy on version 7', async () => {
    const m = await getMd();
    return m.status?.phase === 'Healthy' && m.spec.model.version === '7' ? m : undefined;
  }, { timeoutMs: 60_000, intervalMs: 250 });
  assert.equal(settled.status?.stable?.modelVersion, '7');
  assert.equal(settled.status?.canary, undefined);
  assert.equal(settled.spec.model.uri, 's3://models/churn/7/');
  assert.equal(git(remote, ['rev-list', '--count', 'main']).trim(), '3', 'model 7, model 8, the write-back: nothing more');
});

test('kubectl slipway undo --to-audit serves again the revision that served at an audit commit', async (t) => {
  const ns = await testNamespace(t);
  const auditDir = mkdtempSync(join(tmpdir(), 'slipway-audit-'));
  const controller = await startController(t, cluster, ns, { args: [`--audit-dir=${auditDir}`] });
  await eventually('the audit trail recording', async () => (await controller.metric('slipway_audit_recording')) === 1, { timeoutMs: 30_000, intervalMs: 100 });
  const apply = (version: string): Promise<string> => cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name: 'churn' },
    spec: { model: { name: 'churn-xgb', version, uri: `s3://models/churn/${version}/`, format: 'xgboost' }, image: 'registry.example.com/mlserver:1.6.1', replicas: 1, rollout: { scaleDownDelaySeconds: 0 } },
  }));
  type Md = { status?: { stable?: { modelVersion: string } } };
  const stableVersion = async (): Promise<string | undefined> => (await getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status?.stable?.modelVersion;
  await apply('7');
  await eventually('model 7 serves', async () => (await stableVersion()) === '7', { timeoutMs: 60_000 });
  await apply('8');
  await eventually('model 8 serves', async () => (await stableVersion()) === '8', { timeoutMs: 60_000 });
  const when7 = await eventually('the commit of model 7 serving', () => git(auditDir, ['log', '--format=%H', '--grep=^Slipway-Decision: serving$', 'main']).trim().split('\n').filter(Boolean)[0], { timeoutMs: 10_000 });
  const plugin = join(import.meta.dirname, '..', '..', 'src', 'cli', 'kubectl-slipway.ts');
  const out = execFileSync(process.execPath, [plugin, 'undo', 'churn', '-n', ns, '--to-audit', when7, '--audit-repo', auditDir], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfig } });
  assert.match(out, /undo/i);
  await eventually('model 7 serves again', async () => (await stableVersion()) === '7', { timeoutMs: 60_000 });
  assert.throws(() => execFileSync(process.execPath, [plugin, 'undo', 'churn', '-n', ns, '--to-audit', 'deadbeef', '--audit-repo', auditDir], { encoding: 'utf8', stdio: 'pipe', env: { ...process.env, KUBECONFIG: cluster.kubeconfig } }), /has no .*churn\.yaml at deadbeef/);
});

test('a controller killed between its commits and their push: the next one on the same volume pushes them, once', async (t) => {
  const ns = await testNamespace(t);
  const remote = join(mkdtempSync(join(tmpdir(), 'slipway-audit-remote-')), 'audit.git');
  execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', remote]);
  const auditDir = mkdtempSync(join(tmpdir(), 'slipway-audit-'));
  const args = [`--audit-dir=${auditDir}`, `--audit-remote=file://${remote}`];
  const first = await startController(t, cluster, ns, { args });
  await eventually('the audit trail recording', async () => (await first.metric('slipway_audit_recording')) === 1, { timeoutMs: 30_000, intervalMs: 100 });
  // The remote is away: commits are made, pushes fail.
  renameSync(remote, `${remote}.away`);
  await cluster.kubectl(['apply', '--server-side', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name: 'churn' },
    spec: { model: { name: 'churn-xgb', version: '7', uri: 's3://models/churn/7/', format: 'xgboost' }, image: 'registry.example.com/mlserver:1.6.1', replicas: 1 },
  }));
  await eventually('committed, not pushed', async () => (await first.metric('slipway_audit_unpushed_commits')) >= 2 && (await first.metric('slipway_audit_push_failures_total')) >= 1, { timeoutMs: 30_000, intervalMs: 200 });
  const local = git(auditDir, ['log', '--format=%H', 'main']).trim().split('\n');
  await first.kill();
  renameSync(`${remote}.away`, remote);
  await startController(t, cluster, ns, { args, identity: 'controller-2' });
  await eventually('pushed by the next controller', () => {
    try {
      return git(remote, ['rev-parse', 'main']).trim() === local[0];
    } catch {
      return false;
    }
  }, { timeoutMs: 60_000, intervalMs: 250 });
  const pushed = git(remote, ['log', '--format=%H%x1f%s', 'main']).trim().split('\n').map((l) => l.split('\x1f'));
  assert.deepEqual(pushed.map(([sha]) => sha), local, 'the same commits, each once, nothing added');
  assert.equal(new Set(pushed.map(([, subject]) => subject)).size, pushed.length);
});
