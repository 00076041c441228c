// The audit repository against real git remotes (a bare repository over file://): ten writers pushing to one
// remote at once all land, nothing overwritten; a remote that is away loses nothing; commits written but not
// pushed when the process died are pushed once by the next one; authenticated remotes over HTTPS (git's own
// smart-HTTP backend) and SSH (OpenSSH's sshd) with credentials as the audit Secret holds them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditRepository } from '../../src/audit/repository.ts';
import type { AuditChange } from '../../src/audit/document.ts';
import { bareRepository, startHttpsGitServer, startSshGitServer } from '../../local/git-server.ts';

const git = (dir: string, args: string[]): string => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });

function bareRemote(): { dir: string; url: string } {
  const dir = join(mkdtempSync(join(tmpdir(), 'slipway-remote-')), 'audit.git');
  execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', dir]);
  return { dir, url: `file://${dir}` };
}

const change = (path: string, n: number, writer: string): AuditChange => ({
  path,
  content: `writer: ${writer}\nchange: ${n}\n`,
  subject: `${path}: change ${n} by ${writer}`,
  body: '',
  trailers: { 'Slipway-Object': path, 'Slipway-Decision': 'test', 'Slipway-Seq': `${writer}-${n}-${path.includes('shared') ? 's' : 'o'}` },
});

test('ten writers commit and push to one remote at once: every commit lands once, in each writer\'s order, none overwritten', async () => {
  const remote = bareRemote();
  const writers = Array.from({ length: 10 }, (_, i) => new AuditRepository({ dir: mkdtempSync(join(tmpdir(), `slipway-audit-w${i}-`)), remote: remote.url }));
  await Promise.all(writers.map((w) => w.open()));
  await Promise.all(writers.map(async (w, i) => {
    for (let n = 1; n <= 10; n++) {
      // Each writer its own file, and every writer also the shared one: the newest write wins, history keeps all.
      await w.commit([change(`ns/modeldeployment/m${i}.yaml`, n, `w${i}`), change('ns/modeldeployment/shared.yaml', n, `w${i}`)]);
      await w.push();
    }
  }));
  const log = git(remote.dir, ['log', '--format=%(trailers:key=Slipway-Seq,valueonly)', 'main']).split('\n').map((l) => l.trim()).filter(Boolean);
  assert.equal(log.length, 200, 'every commit of every writer');
  assert.equal(new Set(log).size, 200, 'none twice');
  for (let i = 0; i < 10; i++) {
    const mine = log.filter((s) => s.startsWith(`w${i}-`)).reverse().map((s) => Number(s.split('-')[1]));
    assert.deepEqual(mine, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10], `writer ${i} in its order`);
    assert.equal(git(remote.dir, ['show', `main:ns/modeldeployment/m${i}.yaml`]), `writer: w${i}\nchange: 10\n`, 'each writer\'s last state is at the tip');
  }
  assert.match(git(remote.dir, ['show', 'main:ns/modeldeployment/shared.yaml']), /^writer: w\d\nchange: 10\n$/);
});

test('a remote that is away loses nothing: commits wait locally, and go out once it is back', async () => {
  const remote = bareRemote();
  const w = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: remote.url });
  await w.open();
  await w.commit([change('a.yaml', 1, 'w')]);
  await w.push();
  renameSync(remote.dir, `${remote.dir}.away`);
  for (let n = 2; n <= 6; n++) {
    await w.commit([change('a.yaml', n, 'w')]);
    await assert.rejects(w.push(2), /does not appear to be a git repository|Could not read from remote/i);
  }
  assert.equal(await w.unpushed(), 5);
  renameSync(`${remote.dir}.away`, remote.dir);
  assert.deepEqual(await w.push(), { pushed: 5, replayed: 0 });
  assert.equal(git(remote.dir, ['rev-list', '--count', 'main']).trim(), '6');
});

test('commits written but not pushed when the process died are pushed once by the next process on the same volume', async () => {
  const remote = bareRemote();
  const dir = mkdtempSync(join(tmpdir(), 'slipway-audit-'));
  const first = new AuditRepository({ dir, remote: remote.url });
  await first.open();
  await first.commit([change('a.yaml', 1, 'w'), change('a.yaml', 2, 'w'), change('b.yaml', 1, 'w')]);
  // (killed here: never pushed)
  const next = new AuditRepository({ dir, remote: remote.url });
  await next.open();
  assert.equal(await next.unpushed(), 3);
  assert.equal((await next.push()).pushed, 3);
  assert.equal((await next.push()).pushed, 0, 'and only once');
  assert.equal(git(remote.dir, ['rev-list', '--count', 'main']).trim(), '3');
  const files = await next.readAll();
  assert.deepEqual([...files.keys()].sort(), ['a.yaml', 'b.yaml']);
  assert.equal(files.get('a.yaml'), 'writer: w\nchange: 2\n');
});

test('authenticated remotes: over HTTPS (git-http-backend, basic auth, a private CA) and over SSH (sshd, a key, known_hosts); wrong credentials are refused with no credential in the error', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'slipway-git-servers-'));
  bareRepository(root, 'audit.git');
  const https = await startHttpsGitServer(root, { username: 'slipway', password: 'https-pass-3e9f' });
  t.after(https.close);
  const ssh = await startSshGitServer(join(root, '.ssh'));
  t.after(ssh.close);

  const overHttps = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: https.url('audit.git'), credentials: { username: 'slipway', password: 'https-pass-3e9f', ca: https.ca } });
  await overHttps.open();
  await overHttps.commit([change('a.yaml', 1, 'https')]);
  assert.deepEqual(await overHttps.push(), { pushed: 1, replayed: 0 });

  const overSsh = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: ssh.url(join(root, 'audit.git')), credentials: { identity: ssh.identity, knownHosts: ssh.knownHosts } });
  await overSsh.open();
  assert.equal((await overSsh.readAll()).get('a.yaml'), 'writer: https\nchange: 1\n', 'the SSH writer starts from what the HTTPS one pushed');
  await overSsh.commit([change('a.yaml', 2, 'ssh')]);
  assert.deepEqual(await overSsh.push(), { pushed: 1, replayed: 0 });
  assert.equal(git(join(root, 'audit.git'), ['show', 'main:a.yaml']), 'writer: ssh\nchange: 2\n');

  const wrongPassword = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: https.url('audit.git'), credentials: { username: 'slipway', password: 'not-it-77', ca: https.ca } });
  await wrongPassword.open();
  await wrongPassword.commit([change('b.yaml', 1, 'x')]);
  const refused = await wrongPassword.push().then(() => undefined, (err: unknown) => (err as Error).message);
  assert.match(refused ?? '', /401|Authentication failed|could not read Username/i);
  assert.ok(!refused?.includes('not-it-77'));
  const unknownHost = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: ssh.url(join(root, 'audit.git')), credentials: { identity: ssh.identity, knownHosts: '' } });
  await unknownHost.open();
  await unknownHost.commit([change('b.yaml', 1, 'x')]);
  await assert.rejects(unknownHost.push(), /Host key verification failed/);
});

test('a write-back edits the remote\'s file at its tip and pushes to the branch, or to a review branch leaving the branch as it was', async () => {
  const remote = bareRemote();
  const seed = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-audit-')), remote: remote.url });
  await seed.open();
  await seed.commit([{ ...change('clusters/prod/churn.yaml', 8, 'pipeline'), content: 'version: "8"\n' }]);
  await seed.push();
  const main = git(remote.dir, ['rev-parse', 'main']).trim();
  const wb = new AuditRepository({ dir: mkdtempSync(join(tmpdir(), 'slipway-gitops-')), remote: remote.url });
  await wb.open();
  const edit = (text: string): { text: string; message: string } | undefined => (text.includes('"7"') ? undefined : { text: text.replace('"8"', '"7"'), message: 'roll back 8 → 7\n' });

  const review = await wb.editOnRemote('main', 'slipway/rollback/churn-abc', 'clusters/prod/churn.yaml', edit);
  assert.equal(review.upToDate, false);
  assert.equal(git(remote.dir, ['show', 'slipway/rollback/churn-abc:clusters/prod/churn.yaml']), 'version: "7"\n');
  assert.equal(git(remote.dir, ['rev-parse', 'main']).trim(), main, 'the synced branch is left for the review');
  assert.equal(git(remote.dir, ['rev-parse', 'slipway/rollback/churn-abc^']).trim(), main);

  // Someone pushed to main meanwhile: the edit is made on the new tip.
  await seed.commit([change('clusters/prod/other.yaml', 1, 'someone')]);
  await seed.push();
  const direct = await wb.editOnRemote('main', 'main', 'clusters/prod/churn.yaml', edit);
  assert.equal(git(remote.dir, ['rev-parse', 'main']).trim(), direct.commit);
  assert.equal(git(remote.dir, ['show', 'main:clusters/prod/other.yaml']), 'writer: someone\nchange: 1\n', 'nothing of the other commit lost');
  assert.deepEqual(await wb.editOnRemote('main', 'main', 'clusters/prod/churn.yaml', edit), { upToDate: true }, 'done once');
});
