import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManifestError, rewriteManifest } from '../../src/gitops/manifest.ts';

const manifest = `# Applied by Flux from clusters/prod.
---
apiVersion: v1
kind: Namespace
metadata: {name: ml}
---
apiVersion: slipway.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: churn   # the churn model
  namespace: ml
spec:
  model:
    name: churn-xgb
    version: "8"   # bumped by the training pipeline
    uri: s3://models/churn/8/
    format: xgboost
  replicas: 2
`;

test('the write-back sets the model that runs in the right document, and keeps comments, order and the rest', () => {
  const r = rewriteManifest(manifest, 'clusters/prod/churn.yaml', { name: 'churn', namespace: 'ml' }, { name: 'churn-xgb', version: '7', uri: 's3://models/churn/7/', format: 'xgboost' });
  assert.ok(r.changed);
  assert.deepEqual(r.edits, ['spec.model.version: 8 → 7', 'spec.model.uri: s3://models/churn/8/ → s3://models/churn/7/']);
  assert.match(r.text, /^# Applied by Flux from clusters\/prod\.\n---\napiVersion: v1\nkind: Namespace\nmetadata: \{name: ml\}\n---\n/);
  assert.match(r.text, / {4}version: "7" # bumped by the training pipeline\n {4}uri: s3:\/\/models\/churn\/7\/\n/);
  assert.match(r.text, / {2}name: churn # the churn model\n/);
  // Again: nothing left to change.
  const again = rewriteManifest(r.text, 'x', { name: 'churn', namespace: 'ml' }, { version: '7', uri: 's3://models/churn/7/' });
  assert.equal(again.changed, false);
  assert.equal(again.text, r.text);
});

test('a file without the ModelDeployment, or not YAML, is an error naming the path', () => {
  assert.throws(() => rewriteManifest(manifest, 'a.yaml', { name: 'other', namespace: 'ml' }, { version: '7' }), ManifestError);
  assert.throws(() => rewriteManifest(manifest, 'a.yaml', { name: 'churn', namespace: 'prod' }, { version: '7' }), /a.yaml has no ModelDeployment churn/);
  assert.throws(() => rewriteManifest('a: [b\n', 'b.yaml', { name: 'churn', namespace: 'ml' }, { version: '7' }), /b.yaml is not valid YAML/);
});

test('with a field, only that field is set to the version that runs (a patch holding just the version)', () => {
  const patch = `apiVersion: slipway.dev/v1alpha1
kind: ModelDeployment
metadata: {name: churn}
spec:
  model: {version: "8"}  # bumped by the pipeline
`;
  const r = rewriteManifest(patch, 'overlays/prod/version.yaml', { name: 'churn', namespace: 'ml' }, { name: 'churn-xgb', version: '7', uri: 's3://models/churn/7/' }, undefined, 'spec.model.version');
  assert.deepEqual(r.edits, ['spec.model.version: 8 → 7']);
  assert.match(r.text, /model: \{version: "7"\} # bumped by the pipeline/);
  assert.throws(() => rewriteManifest(patch, 'p.yaml', { name: 'churn', namespace: 'ml' }, { version: '7' }, undefined, 'spec.model.uri'), /p.yaml: ModelDeployment churn has no spec.model.uri/);
});
