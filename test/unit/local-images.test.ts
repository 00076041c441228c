// The local pod runner's image table: which pods it takes from KWOK, and what it runs for each image; the
// distribution client's references and its refusal of registries elsewhere; layers unpacked with whiteouts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { assertLocalRegistry, parseReference } from '../../image/distribution.ts';
import { tar, type TarEntry } from '../../image/oci.ts';
import { IMAGE_REGISTRY } from '../../local/image-registry.ts';
import { unpackLayer } from '../../local/image-store.ts';
import { isRegistryImage, isRunnerImage, localImage, MLSERVER_IMAGE, MLSERVER_MIRROR, mirrorOf, normalizeImage, repositoryOf, runnerPodSelectorKey, STORAGE_INITIALIZER_IMAGE } from '../../local/images.ts';
import { DEFAULT_STORAGE_INITIALIZER_IMAGE } from '../../src/controllers/modeldeployment/runtimes.ts';

const programs = { node: '/usr/bin/node' };

test('image references are normalised as a container runtime does', () => {
  assert.equal(normalizeImage('seldonio/mlserver:1.7.1'), 'docker.io/seldonio/mlserver:1.7.1');
  assert.equal(normalizeImage('nginx'), 'docker.io/library/nginx');
  assert.equal(normalizeImage('localhost:5000/m:1'), 'localhost:5000/m:1');
  assert.equal(repositoryOf('registry.example.com:5000/ml/server:2@sha256:ab'), 'registry.example.com:5000/ml/server');
});

test('the runner takes pods of its repositories at any tag, and runs only the tags it has', () => {
  assert.ok(isRunnerImage('seldonio/mlserver:9.9.9'));
  assert.ok(!isRunnerImage('registry.example.com/mlserver:1.6.1'));
  assert.equal(localImage('seldonio/mlserver:9.9.9', programs), undefined);
  assert.equal(mirrorOf('seldonio/mlserver:9.9.9'), undefined);
  // MLServer is pulled from the local registry's mirror, as the image it is (no local program stands in).
  assert.equal(mirrorOf('seldonio/mlserver:1.7.1'), MLSERVER_MIRROR);
  assert.equal(mirrorOf(MLSERVER_IMAGE), MLSERVER_MIRROR);
  assert.ok(isRegistryImage(MLSERVER_MIRROR));
  assert.equal(localImage(MLSERVER_IMAGE, programs), undefined);
  assert.equal(STORAGE_INITIALIZER_IMAGE, DEFAULT_STORAGE_INITIALIZER_IMAGE, 'the controller\'s default initializer is one the runner can run');
  assert.equal(localImage(STORAGE_INITIALIZER_IMAGE, programs)?.entrypoint[0], '/usr/bin/node');
});

test('images of the local registry are the runner\'s, and KWOK is told to leave their pods alone', () => {
  assert.ok(isRegistryImage(`${IMAGE_REGISTRY}/slipway/controller@sha256:${'a'.repeat(64)}`));
  assert.ok(isRunnerImage(`${IMAGE_REGISTRY}/slipway/controller:0.1.0`));
  assert.ok(!isRunnerImage('registry.example.com/slipway/controller:0.1.0'));
  assert.ok(runnerPodSelectorKey().includes(`${IMAGE_REGISTRY.replace(/\./g, '\\\\.')}/`));
});

test('image references need a registry host, and only registries on this machine are spoken to', () => {
  assert.deepEqual(parseReference('10.244.255.253:5000/slipway/controller:0.1.0'), { host: '10.244.255.253:5000', repository: 'slipway/controller', tag: '0.1.0' });
  const d = `sha256:${'b'.repeat(64)}`;
  assert.deepEqual(parseReference(`localhost:5000/a/b@${d}`), { host: 'localhost:5000', repository: 'a/b', digest: d });
  assert.throws(() => parseReference('slipway/controller:0.1.0'), /with a registry host/);
  assert.throws(() => parseReference('10.0.0.1:5000/Upper/case'), /with a registry host/);
  assert.doesNotThrow(() => assertLocalRegistry('127.0.0.1:5000'));
  assert.doesNotThrow(() => assertLocalRegistry(IMAGE_REGISTRY));
  for (const host of ['registry.example.com', '10.0.0.1:5000', '192.168.1.1', '127.0.0.1.example.com']) assert.throws(() => assertLocalRegistry(host), /only registries on this machine/, host);
});

test('unpacking layers applies OCI whiteouts: a file deleted and a directory made opaque by an upper layer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-layers-'));
  try {
    const write = (name: string, entries: TarEntry[]): string => {
      const file = join(dir, name);
      writeFileSync(file, gzipSync(tar(entries)));
      return file;
    };
    const f = (path: string, text = path): TarEntry => ({ path, type: 'file', mode: 0o644, data: Buffer.from(text) });
    const d = (path: string): TarEntry => ({ path, type: 'dir', mode: 0o755 });
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    await unpackLayer(write('1.tar.gz', [d('etc'), f('etc/keep'), f('etc/gone'), d('opt'), d('opt/app'), f('opt/app/old')]), rootfs, true);
    await unpackLayer(write('2.tar.gz', [d('etc'), f('etc/.wh.gone', ''), d('opt'), d('opt/app'), f('opt/app/.wh..wh..opq', ''), f('opt/app/new')]), rootfs, true);
    assert.deepEqual(readdirSync(join(rootfs, 'etc')), ['keep']);
    assert.deepEqual(readdirSync(join(rootfs, 'opt', 'app')), ['new'], 'the opaque directory holds only the upper layer\'s files, and no whiteout is left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
