// A machine without what the local control plane needs gets a message that says what to install, at once.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { makePki } from '../../local/pki.ts';

const run = promisify(execFile);
const cli = join(import.meta.dirname, '..', '..', 'local', 'cli.ts');

test('without Go on PATH, cluster:build fails at once and says Go is needed', async () => {
  await assert.rejects(run(process.execPath, [cli, 'build'], { env: { ...process.env, PATH: '/nonexistent' } }), (err: { stderr: string; code: number }) => {
    assert.match(err.stderr, /Go is not installed or not on PATH: the local control plane is built from Go modules \(Go >= 1\.26 needed\)/);
    assert.equal(err.code, 1);
    return true;
  });
});

test('without openssl, making the certificates fails with what to install', () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    assert.throws(() => makePki(mkdtempSync(join(tmpdir(), 'slipway-pki-'))), /openssl is not on PATH: .*apt-get install openssl/);
  } finally {
    process.env.PATH = saved;
  }
});

test('the certificates it makes are a CA and an admin certificate for loopback, signed by it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-pki-'));
  const pki = makePki(dir);
  await run('openssl', ['verify', '-CAfile', pki.caCert, pki.adminCert]);
  const { stdout } = await run('openssl', ['x509', '-in', pki.adminCert, '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage']);
  assert.match(stdout, /O ?= ?system:masters/);
  assert.match(stdout, /IP Address:127\.0\.0\.1/);
  assert.match(stdout, /TLS Web Server Authentication, TLS Web Client Authentication/);
});
