// Serving runtime presets: exactly what a revision's pods get for each preset, format and model source.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelDeploymentSpec, type ModelDeployment } from '../../src/api/modeldeployment.ts';
import { desiredCronJob, podTemplate, revisionOf, revisionTemplate } from '../../src/controllers/modeldeployment/children.ts';
import { DEFAULT_STORAGE_INITIALIZER_IMAGE } from '../../src/controllers/modeldeployment/runtimes.ts';

type Obj = Record<string, unknown>;
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: Obj[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: Obj[];
  readinessProbe?: { httpGet: { path: string; port: string } };
  livenessProbe?: { httpGet: { path: string; port: string } };
}
interface Pod {
  metadata: { annotations: Record<string, string> };
  spec: { containers: Container[]; initContainers?: Container[]; volumes?: Obj[] };
}

function md(model: Obj, runtime: Obj = { preset: 'mlserver' }, extra: Obj = {}): ModelDeployment {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn', namespace: 'ml', uid: 'u1', generation: 1 },
    spec: modelDeploymentSpec.parse({ model: { name: 'churn', version: '3', ...model }, image: 'registry.example.com/py311-ml@sha256:abc', runtime, ...extra }),
  };
}

const pod = (m: ModelDeployment, defaultImage?: string): Pod => podTemplate(m, revisionTemplate(m.spec, m.spec.image ?? '', defaultImage), 'rev1') as unknown as Pod;
const envOf = (c: Container | undefined) => Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));

const IMPLEMENTATIONS = { sklearn: 'mlserver_sklearn.SKLearnModel', xgboost: 'mlserver_xgboost.XGBoostModel', lightgbm: 'mlserver_lightgbm.LightGBMModel', mlflow: 'mlserver_mlflow.MLflowRuntime' };

for (const [format, implementation] of Object.entries(IMPLEMENTATIONS)) {
  test(`mlserver serves ${format}: its settings, ports, probes, and the model fetched into a read-only volume first`, () => {
    const p = pod(md({ uri: 's3://models/churn/3/', format }));
    const [server] = p.spec.containers;
    const env = envOf(server);
    assert.deepEqual(
      Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('MLSERVER_'))),
      {
        MLSERVER_MODEL_NAME: 'churn',
        MLSERVER_MODEL_VERSION: '3',
        MLSERVER_MODEL_URI: '/mnt/models',
        MLSERVER_MODEL_IMPLEMENTATION: implementation,
        MLSERVER_HTTP_PORT: '8080',
        MLSERVER_GRPC_PORT: '8081',
        MLSERVER_METRICS_PORT: '8082',
        MLSERVER_LOAD_MODELS_AT_STARTUP: 'true',
      },
    );
    assert.equal(env.SLIPWAY_REVISION, 'rev1', 'the SLIPWAY_* variables stay');
    assert.deepEqual(server?.ports?.map((x) => [x.name, x.containerPort]), [['http', 8080], ['grpc', 8081], ['metrics', 8082]]);
    assert.deepEqual([server?.readinessProbe?.httpGet, server?.livenessProbe?.httpGet], [{ path: '/v2/models/churn/ready', port: 'http' }, { path: '/v2/health/live', port: 'http' }]);
    assert.deepEqual(server?.volumeMounts, [{ name: 'model-store', mountPath: '/mnt/models', readOnly: true }]);
    assert.deepEqual(p.spec.volumes, [{ name: 'model-store', emptyDir: {} }]);
    const init = p.spec.initContainers ?? [];
    assert.deepEqual(init.map((c) => [c.name, c.image, c.args]), [['storage-initializer', DEFAULT_STORAGE_INITIALIZER_IMAGE, ['s3://models/churn/3/', '/mnt/models']]]);
    assert.deepEqual(init[0]?.volumeMounts, [{ name: 'model-store', mountPath: '/mnt/models' }], 'the initializer writes where the server reads');
    assert.deepEqual(p.metadata.annotations['prometheus.io/port'], '8082');
  });
}

test('MLflow registry URIs, by version and by alias, go to the initializer with the credentials Secret', () => {
  for (const uri of ['models:/churn/3', 'models:/churn@champion']) {
    const p = pod(md({ uri, format: 'mlflow', secretRef: { name: 'mlflow-creds' } }));
    const init = p.spec.initContainers?.[0];
    assert.deepEqual(init?.args, [uri, '/mnt/models']);
    assert.deepEqual(init?.envFrom, [{ secretRef: { name: 'mlflow-creds' } }]);
    assert.equal(p.spec.containers[0]?.envFrom, undefined, 'credentials reach the fetch, not the server');
  }
});

test('a pvc:// model is mounted read-only where it is, with nothing to fetch', () => {
  const p = pod(md({ uri: 'pvc://models-claim/churn/3', format: 'sklearn' }));
  assert.equal(p.spec.initContainers, undefined);
  assert.deepEqual(p.spec.volumes, [{ name: 'model-store', persistentVolumeClaim: { claimName: 'models-claim', readOnly: true } }]);
  assert.deepEqual(p.spec.containers[0]?.volumeMounts, [{ name: 'model-store', mountPath: '/mnt/pvc', readOnly: true }]);
  assert.equal(envOf(p.spec.containers[0]).MLSERVER_MODEL_URI, '/mnt/pvc/churn/3');
});

test('the custom preset (the default) keeps the pod as it was: no initializer, no volume, no MLSERVER_ settings', () => {
  const m = md({ uri: 's3://models/churn/3/', format: 'onnx' }, {});
  assert.equal(m.spec.runtime.preset, 'custom');
  const p = pod(m);
  assert.equal(p.spec.initContainers, undefined);
  assert.equal(p.spec.volumes, undefined);
  assert.equal(p.spec.containers[0]?.volumeMounts, undefined);
  assert.deepEqual(Object.keys(envOf(p.spec.containers[0])).filter((k) => !k.startsWith('SLIPWAY_')), []);
  assert.deepEqual(p.spec.containers[0]?.ports?.map((x) => x.name), ['http']);
});

test('the initializer image: the spec\'s, else the controller\'s, else the built-in one; changing it is a new revision', () => {
  const base = md({ uri: 's3://m/', format: 'sklearn' });
  const own = md({ uri: 's3://m/', format: 'sklearn' }, { preset: 'mlserver', storageInitializerImage: 'mirror.example.com/init@sha256:1' });
  assert.equal(pod(base).spec.initContainers?.[0]?.image, DEFAULT_STORAGE_INITIALIZER_IMAGE);
  assert.equal(pod(base, 'corp.example.com/init@sha256:2').spec.initContainers?.[0]?.image, 'corp.example.com/init@sha256:2');
  assert.equal(pod(own, 'corp.example.com/init@sha256:2').spec.initContainers?.[0]?.image, 'mirror.example.com/init@sha256:1');
  const rev = (m: ModelDeployment, d?: string) => revisionOf(m, revisionTemplate(m.spec, 'img', d));
  assert.notEqual(rev(base), rev(base, 'corp.example.com/init@sha256:2'), 'what pods run changed');
});

test('the batch job of an mlserver model reads the same fetched model', () => {
  const m = md({ uri: 's3://models/churn/3/', format: 'xgboost' }, { preset: 'mlserver' }, { batch: { schedule: '@daily' } });
  const cron = desiredCronJob(m, revisionTemplate(m.spec, 'img'), 'rev1') as unknown as { spec: { jobTemplate: { spec: { template: Pod } } } };
  const podSpec = cron.spec.jobTemplate.spec.template.spec;
  assert.deepEqual(podSpec.initContainers?.map((c) => c.args), [['s3://models/churn/3/', '/mnt/models']]);
  assert.deepEqual(podSpec.containers[0]?.volumeMounts, [{ name: 'model-store', mountPath: '/mnt/models', readOnly: true }]);
});
