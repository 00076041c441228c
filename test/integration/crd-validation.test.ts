// Bad input is refused at admission, by the API server, with a message a person can act on: each CEL rule and
// the most common schema checks of the ModelDeployment, ProjectEnvironment and Experiment CRDs.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();

type Obj = Record<string, unknown>;

function md(name: string, spec: Obj): string {
  return JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ModelDeployment', metadata: { name }, spec });
}

const base = (): Obj => ({
  model: { name: 'churn', version: '8', uri: 's3://models/churn/8/', format: 'xgboost' },
  image: 'registry.example.com/mlserver:1.6.1',
  replicas: 1,
});

const analysis = { metrics: [{ name: 'error-rate', prometheus: { query: 'up' }, max: 0.01 }] };

const rejected: { what: string; spec: Obj; name?: string; message: RegExp }[] = [
  { what: 'both image and environmentRef', spec: { ...base(), environmentRef: { name: 'py311' } }, message: /set exactly one of spec.image or spec.environmentRef/ },
  { what: 'neither image nor environmentRef', spec: { ...base(), image: undefined }, message: /set exactly one of spec.image or spec.environmentRef/ },
  { what: 'maxReplicas below minReplicas', spec: { ...base(), replicas: undefined, autoscaling: { minReplicas: 4, maxReplicas: 2 } }, message: /autoscaling.maxReplicas must be at least autoscaling.minReplicas/ },
  { what: 'a custom protocol without a readiness path', spec: { ...base(), runtime: { protocol: 'custom' } }, message: /runtime.readinessPath is required when runtime.protocol is custom/ },
  { what: 'a step with two actions', spec: { ...base(), rollout: { steps: [{ setWeight: 10, pause: {} }] } }, message: /each rollout step sets exactly one of setWeight, pause or analysis/ },
  { what: 'two traffic routers', spec: { ...base(), rollout: { trafficRouting: { replicaRatio: {}, gatewayAPI: { httpRoute: 'churn' } } } }, message: /trafficRouting takes one of gatewayAPI, istio or replicaRatio/ },
  { what: 'an analysis step without metrics', spec: { ...base(), rollout: { steps: [{ analysis: {} }] } }, message: /rollout.analysis must define the metrics/ },
  { what: 'a sum without a histogram', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', prometheus: { query: 'up', sum: 'x_sum' }, max: 1 }] } } }, message: /sum goes with histogram/ },
  { what: 'a metric with two providers', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', prometheus: { query: 'up' }, web: { url: 'https://x', jsonPath: '$.a' }, max: 1 }] } } }, message: /exactly one of preset, prometheus, web or job/ },
  { what: 'a job metric with a threshold', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', job: { spec: { template: {} } }, max: 1 }] } } }, message: /a job metric is judged by the Job's success: it takes no min, max or compare/ },
  { what: 'a web metric that is not http', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', web: { url: 'file:///etc/passwd', jsonPath: '$.a' }, max: 1 }] } } }, message: /must be an http:\/\/ or https:\/\/ URL|should match/ },
  { what: 'notifications for an unknown decision', spec: { ...base(), notifications: { secretRef: { name: 'hooks' }, on: ['Deleted'] } }, message: /Unsupported value: "Deleted"/ },
  { what: 'a prometheus metric with events but no trials', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', prometheus: { events: 'x' }, max: 1 }] } } }, message: /one of: query \(one number\), events and trials \(counts\), or histogram/ },
  { what: 'an analysis without metrics', spec: { ...base(), rollout: { analysis: { metrics: [] } } }, message: /spec.rollout.analysis.metrics: Invalid value: 0: spec.rollout.analysis.metrics in body should have at least 1 items/ },
  { what: 'Istio subsets of the same name', spec: { ...base(), rollout: { trafficRouting: { istio: { virtualService: 'churn', destinationRule: { name: 'churn', stableSubsetName: 'a', canarySubsetName: 'a' } } } } }, message: /the stable and canary subsets must have different names/ },
  { what: 'a metric without a threshold', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', prometheus: { query: 'up' } }] } } }, message: /needs a threshold: min, max or compare/ },
  { what: 'a metric whose min exceeds its max', spec: { ...base(), rollout: { analysis: { metrics: [{ name: 'm', prometheus: { query: 'up' }, min: 2, max: 1 }] } } }, message: /min must not exceed its max/ },
  { what: 'a name too long for its children', name: 'a'.repeat(43), spec: base(), message: /may be at most 42 characters/ },
  { what: 'a model URI with an unknown scheme', spec: { ...base(), model: { ...(base().model as Obj), uri: 'ftp://models/churn' } }, message: /spec.model.uri: Invalid value/ },
  { what: 'an unknown model format', spec: { ...base(), model: { ...(base().model as Obj), format: 'pickle' } }, message: /spec.model.format: Unsupported value: "pickle"/ },
  { what: 'a weight above 100', spec: { ...base(), rollout: { steps: [{ setWeight: 150 }] } }, message: /setWeight: Invalid value: 150: spec.rollout.steps\[0\].setWeight in body should be less than or equal to 100/ },
  { what: 'a malformed pause duration', spec: { ...base(), rollout: { steps: [{ pause: { duration: 'five minutes' } }] } }, message: /spec.rollout.steps\[0\].pause.duration: Invalid value/ },
  { what: 'a name with a dot, which cannot name a Service', name: 'churn.v2', spec: base(), message: /must start with a letter and hold only lowercase letters, digits and '-' \(e.g. churn-v2/ },
  { what: 'a name starting with a digit', name: '9churn', spec: base(), message: /must start with a letter/ },
  { what: 'a schedule in words', spec: { ...base(), batch: { schedule: 'every day at 2' } }, message: /batch.schedule must be a cron schedule of five fields such as "0 2 \* \* \*", or a macro such as @daily/ },
  { what: 'a schedule of four fields', spec: { ...base(), batch: { schedule: '0 2 * *' } }, message: /batch.schedule must be a cron schedule/ },
  { what: 'an environment variable set twice', spec: { ...base(), runtime: { env: [{ name: 'MODE', value: 'a' }, { name: 'MODE', value: 'b' }] } }, message: /runtime.env names must be unique/ },
  { what: 'an environment variable Slipway sets itself', spec: { ...base(), runtime: { env: [{ name: 'SLIPWAY_MODEL_URI', value: 's3://elsewhere' }] } }, message: /names starting with SLIPWAY_ are set by Slipway/ },
  { what: 'a CPU request that is not a quantity', spec: { ...base(), resources: { requests: { cpu: 'lots' } } }, message: /spec.resources.requests\[cpu\]: Invalid value: "lots": must be a quantity such as 500m, 2, 512Mi or 1Gi/ },
  { what: 'a CPU request above its limit', spec: { ...base(), resources: { requests: { cpu: '2' }, limits: { cpu: '1500m' } } }, message: /each resource request must be at most its limit/ },
  { what: 'the mlserver runtime for an onnx model', spec: { ...base(), model: { ...(base().model as Obj), format: 'onnx' }, runtime: { preset: 'mlserver' } }, message: /spec.model.format: Invalid value: runtime mlserver cannot serve format onnx\. Valid pairs: mlserver with sklearn, xgboost, lightgbm, mlflow; custom with any format/ },
  { what: 'the mlserver runtime on the v1 protocol', spec: { ...base(), runtime: { preset: 'mlserver', protocol: 'v1' } }, message: /runtime mlserver speaks the V2 \(Open Inference\) protocol/ },
  { what: 'an MLflow registry URI with neither version nor alias', spec: { ...base(), model: { ...(base().model as Obj), uri: 'models:/churn' } }, message: /model.uri must be s3:\/\/<bucket>\/<path>, .* or an MLflow registry URI: models:\/<name>\/<version> or models:\/<name>@<alias>/ },
  { what: 'rollout steps whose weight goes down', spec: { ...base(), rollout: { steps: [{ setWeight: 50 }, { pause: { duration: '1m' } }, { setWeight: 20 }] } }, message: /spec.rollout.steps: Invalid value: .*each setWeight must be at least the one before it/ },
  { what: 'rollout steps that reach 100% before the last step', spec: { ...base(), rollout: { steps: [{ setWeight: 10 }, { setWeight: 100 }, { pause: { duration: '1m' } }] } }, message: /setWeight 100 completes the rollout, so it can only be the last step/ },
  { what: 'rollout steps ending in a pause without a duration', spec: { ...base(), rollout: { steps: [{ setWeight: 10 }, { pause: {} }] } }, message: /a pause without a duration as the last step waits for a promote that could only finish the rollout/ },
  { what: 'a batch memory limit that is not a quantity', spec: { ...base(), batch: { schedule: '@daily', resources: { limits: { memory: '2 gigs' } } } }, message: /spec.batch.resources.limits\[memory\]: Invalid value: "2 gigs": must be a quantity/ },
];

for (const c of rejected) {
  test(`a ModelDeployment with ${c.what} is rejected`, async (t) => {
    const ns = await testNamespace(t);
    await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], md(c.name ?? 'churn', JSON.parse(JSON.stringify(c.spec)) as Obj)), c.message);
  });
}

test('a valid ModelDeployment with a full rollout is accepted and defaulted', async (t) => {
  const ns = await testNamespace(t);
  const spec = { ...base(), rollout: { steps: [{ setWeight: 10 }, { pause: { duration: '5m' } }, { analysis: {} }, { setWeight: 50 }, { pause: {} }, { setWeight: 100 }], analysis } };
  await cluster.kubectl(['create', '-n', ns, '-f', '-'], md('churn', spec));
  const got = JSON.parse(await cluster.kubectl(['get', 'mdep', 'churn', '-n', ns, '-o', 'json'])) as { spec: { runtime: Obj; rollout: { analysis: Obj; autoRollback: boolean } } };
  assert.deepEqual(got.spec.runtime, { preset: 'custom', port: 8080, protocol: 'v2', metricsPath: '/metrics' });
  assert.equal(got.spec.rollout.autoRollback, true);
  assert.equal(got.spec.rollout.analysis.interval, '1m');
});

test('valid schedules, names, variables and quantities are accepted as Kubernetes accepts them', async (t) => {
  const ns = await testNamespace(t);
  const schedules = ['@daily', '@hourly', '@every 6h', '0 2 * * *', '*/15 8-18 * * MON-FRI', '0 0 1 JAN,JUL ?'];
  for (const [i, schedule] of schedules.entries()) {
    const spec = {
      ...base(),
      batch: { schedule },
      runtime: { env: [{ name: 'MODE', value: 'fast' }, { name: 'EMPTY' }] },
      resources: { requests: { cpu: '0.5', memory: '1024Mi' }, limits: { cpu: 2, memory: '1Gi' } },
    };
    await cluster.kubectl(['create', '-n', ns, '-f', '-'], md(`churn-v${i}`, spec));
    // The CronJob API takes the same schedules: what passes here never fails later in the controller.
    await cluster.kubectl(['create', 'cronjob', `check-${i}`, '-n', ns, '--image=registry.example.com/x:1', `--schedule=${schedule}`, '--dry-run=server']);
  }
});

test('the mlserver runtime takes MLflow registry URIs by version and by alias, and every format it serves', async (t) => {
  const ns = await testNamespace(t);
  const cases: [string, string][] = [['models:/churn/3', 'mlflow'], ['models:/churn@champion', 'mlflow'], ['s3://m/churn/', 'sklearn'], ['gs://m/churn/', 'xgboost'], ['https://m.example.com/churn.txt', 'lightgbm'], ['pvc://models/churn', 'sklearn']];
  for (const [i, [uri, format]] of cases.entries()) {
    await cluster.kubectl(['create', '-n', ns, '-f', '-'], md(`churn-${i}`, { ...base(), model: { name: 'churn', version: '3', uri, format }, runtime: { preset: 'mlserver' } }));
  }
});

const penv = (spec: Obj): string =>
  JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', metadata: { name: 'py311' }, spec });

test('a ProjectEnvironment must be either prebuilt and pinned by digest, or built', async (t) => {
  const ns = await testNamespace(t);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ image: 'python:3.11', baseImage: 'python:3.11' })), /set exactly one of spec.image \(prebuilt\) or spec.baseImage/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ image: 'registry.example.com/env:latest' })), /spec.image: Invalid value/);
  const base = `registry.example.com/python@sha256:${'b'.repeat(64)}`;
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base })), /spec.build is required/);
  // A base image not pinned by digest, a requirement that is a URL, a repository without its registry: refused.
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: 'python:3.11-slim', build: { repository: 'registry.example.com/env' } })), /spec.baseImage must be pinned by digest/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base, packages: { pip: ['sklearn @ https://example.com/sk.whl'] }, build: { repository: 'registry.example.com/env' } })), /must be a package of the index/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base, build: { repository: 'env' } })), /spec.build.repository: Invalid value/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base, packages: { apt: ['libgomp1; rm -rf /'] }, build: { repository: 'registry.example.com/env' } })), /spec.packages.apt\[0\]: Invalid value/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base, packages: { r: ['data table'] }, build: { repository: 'registry.example.com/env' } })), /spec.packages.r\[0\]: Invalid value/);
  // An unknown field is refused, not silently dropped.
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ baseImage: base, packages: { conda: ['numpy'] }, build: { repository: 'registry.example.com/env' } })), /unknown field "spec.packages.conda"/);
  await cluster.kubectl(['create', '-n', ns, '-f', '-'], penv({ image: `registry.example.com/env@sha256:${'a'.repeat(64)}` }));
});

const experiment = (strategy: Obj): string =>
  JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Experiment',
    metadata: { name: 'churn-ab' },
    spec: {
      variants: [{ name: 'control', modelDeploymentRef: 'churn' }, { name: 'challenger', modelDeploymentRef: 'churn-v9' }],
      strategy,
      objective: { metric: 'conversion', kind: 'binomial' },
    },
  });

test('an Experiment takes one strategy, and an A/B split with one weight per variant adding up to 100', async (t) => {
  const ns = await testNamespace(t);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], experiment({ abTest: {}, bandit: {} })), /strategy takes exactly one of abTest, bandit or shadow/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], experiment({ abTest: { split: [50, 40] } })), /split must add up to 100/);
  await assert.rejects(cluster.kubectl(['create', '-n', ns, '-f', '-'], experiment({ abTest: { split: [50, 25, 25] } })), /one weight per variant/);
  await cluster.kubectl(['create', '-n', ns, '-f', '-'], experiment({ abTest: { split: [50, 50] } }));
});

test('every example under examples/ is accepted by the API server as written', async (t) => {
  const dir = join(import.meta.dirname, '..', '..', 'examples');
  const ns = await testNamespace(t);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.includes('canary-gateway-api.yaml') && files.includes('canary-istio.yaml') && files.includes('canary-replica-ratio.yaml'));
  for (const f of files) {
    // The variables an example leaves to envsubst, as the README fills them in.
    const vars: Record<string, string> = { SLIPWAY_PYTHON_BASE: `registry.example.com/slipway/python-base@sha256:${'a'.repeat(64)}`, SLIPWAY_IMAGE_REGISTRY: 'registry.example.com' };
    const text = readFileSync(join(dir, f), 'utf8').replace(/\$\{(\w+)\}/g, (m, v: string) => vars[v] ?? m);
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], text);
    assert.match(out, /created \(server dry run\)/, f);
  }
});
