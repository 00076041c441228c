// The local pod runner's image table: which pods it takes from KWOK, and what it runs for each image.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRunnerImage, localImage, MLSERVER_IMAGE, normalizeImage, repositoryOf, STORAGE_INITIALIZER_IMAGE } from '../../local/images.ts';
import { DEFAULT_STORAGE_INITIALIZER_IMAGE } from '../../src/controllers/modeldeployment/runtimes.ts';

const programs = { pythonBin: '/py/bin', node: '/usr/bin/node' };

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
  assert.deepEqual(localImage(MLSERVER_IMAGE, programs)?.cmd, ['mlserver', 'start', '/mnt/models/']);
  assert.equal(STORAGE_INITIALIZER_IMAGE, DEFAULT_STORAGE_INITIALIZER_IMAGE, 'the controller\'s default initializer is one the runner can run');
  assert.equal(localImage(STORAGE_INITIALIZER_IMAGE, programs)?.entrypoint[0], '/usr/bin/node');
});
