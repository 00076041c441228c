// The audit trail on the local control plane, pushed to a real git remote (a bare repository over file://):
// apply, change and roll back a ModelDeployment, and `git log` of its file tells the story in order, with the
// trailers machines read; a planted secret is in no commit of the history; a controller restarted on the same
// volume records what changed while it was down, once, and nothing twice.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NEVER_READY_IMAGE } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';
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
