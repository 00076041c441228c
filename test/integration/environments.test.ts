// ProjectEnvironments built for real on the local cluster: the Python base image (from pinned Debian packages)
// and the builder are pushed to the local image registry; the controller creates a build Job; the pod runner runs
// it as a process of the base image (chroot, uid 65532, read-only root, the builder mounted as an image volume);
// pip resolves against the package index through the pod network's egress proxy; the image and its SBOM land in
// the registry; a ModelDeployment serves from it through the gateway, reporting the packages it imports.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fetchBlob, fetchManifest } from '../../image/distribution.ts';
import { pushEnvironmentImages, type BaseImageName } from '../../image/environment-images.ts';
import { EGRESS_PROXY_PORT } from '../../local/egress-proxy.ts';
import { eventually } from '../../local/eventually.ts';
import { localHttpRoute } from '../../local/gateway.ts';
import { frameRequest, startModelStore, trainModel } from '../../local/mlserver.ts';
import { GATEWAY } from '../../local/podnet.ts';
import { ensurePythonEnv, servingPins } from '../../local/python.ts';
import { startController, type ControllerProcess } from './controller-process.ts';
import { failingWebhook, getJson, onlyRoutesOf, testCluster, testNamespace } from './harness.ts';

const cluster = testCluster();
const registry = process.env.SLIPWAY_TEST_IMAGE_REGISTRY ?? '';
const gateway = process.env.SLIPWAY_TEST_GATEWAY_URL ?? '';
const skip = (process.env.SLIPWAY_TEST_SERVING !== '1' || !registry) && 'needs the local data plane (root): the pod runner, the image registry and the gateway';
const authRegistry = process.env.SLIPWAY_TEST_AUTH_REGISTRY ?? '';
/** An address on the pod bridge where nothing listens. */
const UNREACHABLE = '10.244.255.250:5000';
const SERVER = readFileSync(join(import.meta.dirname, '..', '..', 'local', 'models', 'env-server.py'), 'utf8');

interface Condition { type: string; status: string; reason: string; message: string }
interface Penv {
  status?: { image?: string; lock?: string[]; sbom?: string; phase?: string; contentHash?: string; history?: { hash: string; image: string }[]; conditions?: Condition[] };
}
interface Md { status?: { stable?: { revision: string; image?: string }; conditions?: Condition[] } }

const penv = (name: string, spec: Record<string, unknown>): string => JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', metadata: { name }, spec });
const condition = (s: { conditions?: Condition[] } | undefined, type: string): Condition | undefined => s?.conditions?.find((c) => c.type === type);

/** The controller, able to build: the builder image, the egress proxy and the CA bundle a build needs here. */
async function builderSetup(t: TestContext, ns: string, bases: BaseImageName[] = ['python']): Promise<{ pythonBase: string; rBase: string; controller: ControllerProcess }> {
  const refs = await pushEnvironmentImages(registry, (l) => t.diagnostic(l), bases);
  await cluster.kubectl(['create', 'configmap', 'trusted-ca', '-n', ns, '--from-file=ca.crt=/etc/ssl/certs/ca-certificates.crt']);
  const controller = await startController(t, cluster, ns, {
    args: [
      `--environment-builder-image=${refs.builder}`,
      `--environment-build-env=HTTPS_PROXY=http://${GATEWAY}:${EGRESS_PROXY_PORT}`,
      `--environment-build-env=SLIPWAY_INSECURE_REGISTRIES=${[registry, authRegistry, UNREACHABLE].join(',')}`,
      '--environment-build-ca=trusted-ca/ca.crt',
    ],
  });
  return { pythonBase: refs.bases.python ?? '', rBase: refs.bases.r ?? '', controller };
}

/** Waits for the environment to be Ready; a build that fails, or a wait that ends, says why (the Ready condition). */
async function built(ns: string, name: string, timeoutMs = 900_000): Promise<NonNullable<Penv['status']>> {
  let last = '';
  try {
    return await eventually(`ProjectEnvironment ${name} Ready`, async () => {
      const s = (await getJson<Penv>(cluster, ['get', 'penv', name, '-n', ns])).status;
      const ready = condition(s, 'Ready');
      last = `${ready?.reason ?? '-'}: ${ready?.message ?? ''}`;
      if (s?.phase === 'Failed') throw new Error(`the build failed: ${last}`);
      return ready?.status === 'True' && s ? s : undefined;
    }, { timeoutMs, intervalMs: 1000 });
  } catch (err) {
    throw new Error(`${name}: ${err instanceof Error ? err.message : String(err)} (last: ${last})`, { cause: err });
  }
}

async function events(ns: string, name: string): Promise<{ reason: string; message: string }[]> {
  return (await getJson<{ items: { reason: string; message: string; involvedObject: { name: string; kind: string } }[] }>(cluster, ['get', 'events', '-n', ns])).items.filter((e) => e.involvedObject.kind === 'ProjectEnvironment' && e.involvedObject.name === name);
}

/**
 * The environment `churn-env` to be built by a controller whose builder image is never pulled: for what happens
 * to the build Job before any pod runs (the API server refusing it).
 */
async function environmentWithoutBuilds(t: TestContext, ns: string): Promise<ControllerProcess> {
  const controller = await startController(t, cluster, ns, { args: [`--environment-builder-image=registry.example.com/slipway/environment-builder@sha256:${'c'.repeat(64)}`] });
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('churn-env', {
    baseImage: `registry.example.com/slipway/python-base@sha256:${'b'.repeat(64)}`,
    packages: { pip: ['scikit-learn==1.5.2'] },
    build: { repository: 'registry.example.com/ml/churn-env' },
  }));
  return controller;
}

/** Waits until `churn-env` is Stalled for `reason`; its status then. */
async function stalledFor(ns: string, reason: string): Promise<NonNullable<Penv['status']>> {
  return eventually(`churn-env Stalled: ${reason}`, async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'churn-env', '-n', ns])).status;
    return condition(s, 'Stalled')?.reason === reason ? s : undefined;
  }, { timeoutMs: 60_000 });
}

test('a build Job refused by a quota fails the environment with the quota\'s words and one Warning; once the quota is lifted the build starts', async (t) => {
  const ns = await testNamespace(t);
  await cluster.kubectl(['create', 'quota', 'no-jobs', '-n', ns, '--hard=count/jobs.batch=0']);
  const controller = await environmentWithoutBuilds(t, ns);
  const refused = await stalledFor(ns, 'BuildJobRefused');
  assert.equal(refused?.phase, 'Failed');
  assert.equal(condition(refused, 'Ready')?.status, 'False');
  assert.match(condition(refused, 'Ready')?.message ?? '', /the build Job churn-env-build-[0-9a-f]+ was refused: .*exceeded quota: no-jobs/);
  await eventually('a Warning event', async () => (await events(ns, 'churn-env')).some((e) => e.reason === 'BuildJobRefused'));
  // The retries (with back-off) are refused the same way: nothing more is written, no Event piles up.
  const retried = await controller.metric('slipway_workqueue_retries_total');
  await eventually('two more refused retries', async () => (await controller.metric('slipway_workqueue_retries_total')) >= retried + 2, { timeoutMs: 30_000 });
  assert.equal((await events(ns, 'churn-env')).filter((e) => e.reason === 'BuildJobRefused').length, 1);
  await cluster.kubectl(['delete', 'quota', 'no-jobs', '-n', ns]);
  const building = await eventually('Building', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'churn-env', '-n', ns])).status;
    return s?.phase === 'Building' ? s : undefined;
  }, { timeoutMs: 120_000 });
  assert.equal(condition(building, 'Stalled')?.status, 'False');
  const jobs = await getJson<{ items: { metadata: { name: string } }[] }>(cluster, ['get', 'jobs', '-n', ns]);
  assert.equal(jobs.items.length, 1, 'the build Job exists now');
});

test('an API server that answers 500 to the build Job\'s create says so on the environment after a few attempts (ApiServerError)', async (t) => {
  const ns = await testNamespace(t);
  // The API server answers 500 to every Job created in the namespace.
  await failingWebhook(t, cluster, ns, { apiGroup: 'batch', resource: 'jobs', operations: ['CREATE'] }, ['create', 'job', 'probe', '--image=x']);
  await environmentWithoutBuilds(t, ns);
  const s = await stalledFor(ns, 'ApiServerError');
  assert.equal(s?.phase, 'Failed');
  assert.match(condition(s, 'Ready')?.message ?? '', /the API server keeps failing \(5 attempts in a row or more, retrying with backoff\): Internal error occurred: failed calling webhook "unreachable.slipway.dev"/);
  await eventually('a Warning event', async () => (await events(ns, 'churn-env')).some((e) => e.reason === 'ApiServerError'));
});

test('a ProjectEnvironment builds its image in the cluster, a ModelDeployment serves from it, a package added rolls out and removed rolls back without a rebuild', { skip, timeout: 1_200_000 }, async (t) => {
  const ns = await testNamespace(t);
  const { pythonBase, controller } = await builderSetup(t, ns);
  const repository = `${registry}/${ns}/churn-env`;
  const spec = (pip: string[]) => ({ baseImage: pythonBase, packages: { pip }, build: { repository } });
  const first = ['scikit-learn==1.5.2', 'tabulate==0.9.0'];
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('churn-env', spec(first)));
  const v1 = await built(ns, 'churn-env');
  assert.equal(v1.phase, 'Ready');
  // The build, in the controller's metrics: one finished build (built, or found in the registry by its content
  // hash when this registry has had it before), and how long its Job ran.
  const finished = async (result: string): Promise<number> => controller.metric('slipway_environment_builds_total', `namespace="${ns}",name="churn-env",result="${result}"`);
  assert.equal((await finished('built')) + (await finished('reused')), 1);
  assert.equal(await controller.metric('slipway_environment_build_duration_seconds_count'), 1);
  assert.match(v1.image ?? '', new RegExp(`^${repository.replace(/[.]/g, '\\.')}@sha256:[a-f0-9]{64}$`));
  // The lock: the packages asked for at their versions, and what they pulled in, each at one exact version.
  assert.ok(v1.lock?.includes('scikit-learn==1.5.2') && v1.lock.includes('tabulate==0.9.0'), `lock: ${v1.lock?.join(' ')}`);
  for (const dep of ['numpy', 'scipy', 'joblib', 'threadpoolctl']) assert.ok(v1.lock?.some((l) => l.startsWith(`${dep}==`)), `${dep} is locked`);

  // In the registry: the image under its content hash, the base's layers and one more, the lock in its config;
  // the SBOM an artifact whose subject is the image, listing every locked package.
  const image = await fetchManifest(v1.image ?? '');
  const base = await fetchManifest(pythonBase);
  assert.deepEqual(image.manifest.layers.slice(0, -1).map((l) => l.digest), base.manifest.layers.map((l) => l.digest));
  assert.equal(image.manifest.layers.length, base.manifest.layers.length + 1);
  const labels = (image.config.config as { Labels?: Record<string, string> }).Labels ?? {};
  assert.equal(labels['dev.slipway.environment.hash'], v1.contentHash);
  assert.deepEqual(labels['dev.slipway.environment.lock']?.split(' ').sort(), v1.lock);
  assert.equal((await fetchManifest(`${repository}:${v1.contentHash}`)).digest, image.digest);
  const sbomManifest = JSON.parse((await fetch(`http://${registry}/v2/${ns}/churn-env/manifests/${v1.sbom}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }).then((r) => r.text()))) as { artifactType: string; subject: { digest: string }; layers: { digest: string }[] };
  assert.equal(sbomManifest.artifactType, 'application/spdx+json');
  assert.equal(sbomManifest.subject.digest, image.digest);
  const sbom = JSON.parse((await fetchBlob(v1.image ?? '', sbomManifest.layers[0]?.digest ?? '')).toString('utf8')) as { packages: { name: string; versionInfo: string }[] };
  for (const entry of v1.lock ?? []) {
    const [name, version] = entry.split('==');
    assert.ok(sbom.packages.some((p) => p.name === name && p.versionInfo === version), `the SBOM lists ${entry}`);
  }

  // A ModelDeployment serving from the environment answers through the gateway, with the lock's versions.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'churn' },
    spec: {
      model: { name: `churn-${ns}`, version: '1', uri: 'https://models.invalid/churn/1', format: 'custom' },
      environmentRef: { name: 'churn-env' },
      runtime: { preset: 'custom', args: ['python3', '-c', SERVER] },
      replicas: 1,
      rollout: { scaleDownDelaySeconds: 0 },
    },
  }));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=300s', '-n', ns, 'mdep/churn']);
  await onlyRoutesOf(cluster, ns);
  const prefix = `/v2/models/churn-${ns}`;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], localHttpRoute('churn', [{ name: 'churn', port: 80 }], prefix));
  const infer = async (): Promise<{ packages: Record<string, string>; predictions: number[] }> => {
    const res = await fetch(`${gateway}${prefix}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'x', shape: [2, 1], datatype: 'FP64', data: [0.2, 2.8] }] }), signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`the gateway answered ${res.status}`);
    const body = (await res.json()) as { parameters: { packages: Record<string, string> }; outputs: { data: number[] }[] };
    return { packages: body.parameters.packages, predictions: body.outputs[0]?.data ?? [] };
  };
  const answer = await eventually('inference through the gateway', infer, { timeoutMs: 90_000, intervalMs: 500 });
  assert.deepEqual(answer.predictions, [0, 1]);
  for (const entry of v1.lock ?? []) {
    const [name = '', version] = entry.split('==');
    assert.equal(answer.packages[name], version, `the served model imports ${name} at the lock's version`);
  }
  assert.equal(answer.packages['joblib-extra'], undefined);

  // A package added: a new content hash, a new image, and the ModelDeployment rolls to it.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('churn-env', spec([...first, 'six==1.16.0'])));
  const second = await eventually('the second image', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'churn-env', '-n', ns])).status;
    if (s?.phase === 'Failed') throw new Error(`the build failed: ${condition(s, 'Ready')?.message}`);
    return s?.phase === 'Ready' && s.image !== v1.image ? s : undefined;
  }, { timeoutMs: 900_000, intervalMs: 2000 });
  assert.ok(second.lock?.includes('six==1.16.0'));
  await eventually('the ModelDeployment on the second image', async () => {
    const md = (await getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status;
    return md?.stable?.image === second.image && condition(md, 'Ready')?.status === 'True';
  }, { timeoutMs: 300_000, intervalMs: 1000 });
  await eventually('six served', async () => (await infer()).packages.six === '1.16.0', { timeoutMs: 90_000, intervalMs: 500 });

  // Removed again: the first image is served again from the history, with no build.
  const startedBefore = (await events(ns, 'churn-env')).filter((e) => e.reason === 'BuildStarted').length;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('churn-env', spec(first)));
  await eventually('the first image again', async () => (await getJson<Penv>(cluster, ['get', 'penv', 'churn-env', '-n', ns])).status?.image === v1.image, { timeoutMs: 60_000, intervalMs: 500 });
  const after = await events(ns, 'churn-env');
  assert.equal(after.filter((e) => e.reason === 'BuildStarted').length, startedBefore, 'no build started');
  assert.ok(after.some((e) => e.reason === 'ImageRestored'));
  const jobs = await getJson<{ items: unknown[] }>(cluster, ['get', 'jobs', '-n', ns, '-l', 'slipway.dev/environment=churn-env']);
  assert.deepEqual(jobs.items, [], 'no build Job');
  await eventually('the ModelDeployment back on the first image', async () => {
    const md = (await getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status;
    return md?.stable?.image === v1.image && condition(md, 'Ready')?.status === 'True';
  }, { timeoutMs: 300_000, intervalMs: 1000 });
  await eventually('six gone from what serves', async () => (await infer()).packages.six === undefined, { timeoutMs: 90_000, intervalMs: 500 });

  // A package that does not exist: the resolution fails before any build, with pip's words; nothing rolls out.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('churn-env', spec([...first, 'slipway-no-such-package-5b1e'])));
  const failed = await eventually('the resolution to fail', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'churn-env', '-n', ns])).status;
    return s?.phase === 'Failed' ? s : undefined;
  }, { timeoutMs: 300_000, intervalMs: 1000 });
  const ready = condition(failed, 'Ready');
  assert.equal(ready?.reason, 'ResolutionFailed');
  assert.match(ready?.message ?? '', /No matching distribution found for slipway-no-such-package-5b1e/);
  assert.match(ready?.message ?? '', /is still served/);
  assert.equal(failed.image, v1.image, 'the last good image stays');
  assert.equal(condition(failed, 'Stalled')?.status, 'True');
  const job = await getJson<{ items: { status: { failed?: number } }[] }>(cluster, ['get', 'jobs', '-n', ns, '-l', 'slipway.dev/environment=churn-env']);
  assert.equal(job.items[0]?.status.failed, 1, 'failed once, not retried: retrying cannot resolve it');
  assert.ok((await events(ns, 'churn-env')).some((e) => e.reason === 'BuildFailed'));
  const md = (await getJson<Md>(cluster, ['get', 'mdep', 'churn', '-n', ns])).status;
  assert.equal(md?.stable?.image, v1.image, 'the ModelDeployment did not roll');
});

test('a push Secret the registry refuses fails the build with that reason and is retried with back-off; once fixed, the build goes through; an unreachable registry says so; a version conflict is pip\'s words', { skip: skip || (!authRegistry && 'needs the local registry that wants credentials'), timeout: 900_000 }, async (t) => {
  const ns = await testNamespace(t);
  const { pythonBase } = await builderSetup(t, ns);
  const secret = (password: string): Promise<string> => cluster.kubectl(['create', 'secret', 'docker-registry', 'push', '-n', ns, `--docker-server=${authRegistry}`, `--docker-username=${process.env.SLIPWAY_TEST_AUTH_REGISTRY_USERNAME ?? ''}`, `--docker-password=${password}`, '--dry-run=client', '-o', 'json']).then((json) => cluster.kubectl(['apply', '-n', ns, '-f', '-'], json));
  await secret('not-the-password');
  const repository = `${authRegistry}/${ns}/private-env`;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('private-env', { baseImage: pythonBase, packages: { pip: ['six==1.16.0'] }, build: { repository, pushSecret: 'push' } }));
  const refused = await eventually('the registry to refuse the push Secret', async () => {
    const s = (await getJson<Penv & { status?: { build?: { attempts?: number; lastFailure?: string } } }>(cluster, ['get', 'penv', 'private-env', '-n', ns])).status;
    return condition(s, 'Ready')?.reason === 'PushUnauthorized' ? s : undefined;
  }, { timeoutMs: 180_000, intervalMs: 1000 });
  assert.equal(refused?.phase, 'Building', 'retried: a Secret can be fixed');
  assert.match(condition(refused, 'Ready')?.message ?? '', /refused the credentials of the push Secret.*retrying with back-off/s);
  assert.ok((refused?.build?.attempts ?? 0) >= 1);

  // The Secret fixed: the next attempt (after the Job's back-off) pushes.
  await secret(process.env.SLIPWAY_TEST_AUTH_REGISTRY_PASSWORD ?? '');
  const pushed = await built(ns, 'private-env', 600_000);
  assert.ok(pushed.image?.startsWith(`${repository}@sha256:`));
  assert.deepEqual(pushed.lock, ['six==1.16.0']);
  const path = `http://${authRegistry}/v2/${ns}/private-env/manifests/${pushed.image?.split('@')[1] ?? ''}`;
  const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
  assert.equal((await fetch(path, { headers: accept })).status, 401, 'the registry wants credentials');
  const basic = Buffer.from(`${process.env.SLIPWAY_TEST_AUTH_REGISTRY_USERNAME ?? ''}:${process.env.SLIPWAY_TEST_AUTH_REGISTRY_PASSWORD ?? ''}`).toString('base64');
  assert.equal((await fetch(path, { headers: { ...accept, authorization: `Basic ${basic}` } })).status, 200, 'the image is there, pushed with the Secret');

  // A registry nobody answers at: the reason names it, and the Job keeps trying.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('nowhere-env', { baseImage: pythonBase, packages: { pip: ['six==1.16.0'] }, build: { repository: `${UNREACHABLE}/${ns}/nowhere` } }));
  const unreachable = await eventually('the registry to be unreachable', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'nowhere-env', '-n', ns])).status;
    return condition(s, 'Ready')?.reason === 'RegistryUnreachable' ? s : undefined;
  }, { timeoutMs: 180_000, intervalMs: 1000 });
  assert.equal(unreachable?.phase, 'Building');
  assert.match(condition(unreachable, 'Ready')?.message ?? '', new RegExp(`${UNREACHABLE.replace(/[.]/g, '\\.')}.*retrying with back-off`, 's'));

  // Two versions of one package: pip's conflict, before any build.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('conflict-env', { baseImage: pythonBase, packages: { pip: ['six==1.16.0', 'six==1.15.0'] }, build: { repository: `${registry}/${ns}/conflict` } }));
  const conflict = await eventually('the conflict', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'conflict-env', '-n', ns])).status;
    return s?.phase === 'Failed' ? s : undefined;
  }, { timeoutMs: 180_000, intervalMs: 1000 });
  assert.equal(condition(conflict, 'Ready')?.reason, 'ResolutionFailed');
  assert.match(condition(conflict, 'Ready')?.message ?? '', /Cannot install six==1\.15\.0 and six==1\.16\.0 because these package versions have conflicting dependencies/);
});

test('an environment with R and CRAN packages builds, and its R runs them; an R package the release does not have is refused before any build', { skip, timeout: 900_000 }, async (t) => {
  const ns = await testNamespace(t);
  const { rBase } = await builderSetup(t, ns, ['r']);
  const repository = `${registry}/${ns}/r-env`;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('r-env', { baseImage: rBase, packages: { r: ['jsonlite', 'data.table', 'magrittr'] }, build: { repository } }));
  const rEnv = await built(ns, 'r-env', 600_000);
  const debVersion = (pkg: string): string => rEnv.lock?.find((l) => l.startsWith(`deb:${pkg}==`))?.split('==')[1] ?? '';
  for (const pkg of ['r-cran-jsonlite', 'r-cran-data.table', 'r-cran-magrittr']) assert.ok(debVersion(pkg), `${pkg} is locked: ${rEnv.lock?.join(' ')}`);

  // The image's R loads them: a pod of the built image reports each package's version in its termination message.
  const script = [
    'library(jsonlite); library(data.table); library(magrittr)',
    'v <- function(p) as.character(packageVersion(p))',
    'writeLines(toJSON(list(jsonlite = v("jsonlite"), data.table = v("data.table"), magrittr = v("magrittr"), sum = data.table(x = 1:4)[, sum(x)] %>% as.integer()), auto_unbox = TRUE), "/dev/termination-log")',
  ].join('\n');
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'r-check' },
    spec: {
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 65532 },
      containers: [{ name: 'r', image: rEnv.image, command: ['Rscript', '-e', script], env: [{ name: 'HOME', value: '/tmp' }], securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false }, volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] }],
      volumes: [{ name: 'tmp', emptyDir: {} }],
    },
  }));
  const report = await eventually('the R pod to finish', async () => {
    const pod = await getJson<{ status?: { phase?: string; containerStatuses?: { state?: { terminated?: { exitCode: number; message?: string } } }[] } }>(cluster, ['get', 'pod', 'r-check', '-n', ns]);
    const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
    if (pod.status?.phase === 'Failed') throw new Error(`R failed (exit ${terminated?.exitCode}): ${terminated?.message ?? ''}`);
    return pod.status?.phase === 'Succeeded' ? terminated?.message : undefined;
  }, { timeoutMs: 180_000, intervalMs: 1000 });
  const versions = JSON.parse(report ?? '{}') as Record<string, string | number>;
  assert.equal(versions.sum, 10);
  for (const [r, deb] of [['jsonlite', 'r-cran-jsonlite'], ['data.table', 'r-cran-data.table'], ['magrittr', 'r-cran-magrittr']] as const) {
    assert.ok(debVersion(deb).startsWith(String(versions[r])), `R loads ${r} ${versions[r]}, the lock's ${debVersion(deb)}`);
  }

  // A CRAN package the release does not carry: refused by the resolution, with what was looked for and where.
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('r-missing', { baseImage: rBase, packages: { r: ['jsonlite', 'NoSuchCranPackage'] }, build: { repository } }));
  const failed = await eventually('the resolution to fail', async () => {
    const s = (await getJson<Penv>(cluster, ['get', 'penv', 'r-missing', '-n', ns])).status;
    return s?.phase === 'Failed' ? s : undefined;
  }, { timeoutMs: 300_000, intervalMs: 1000 });
  assert.equal(condition(failed, 'Ready')?.reason, 'ResolutionFailed');
  assert.match(condition(failed, 'Ready')?.message ?? '', /Debian package r-cran-nosuchcranpackage is not in bookworm, bookworm-updates, bookworm-security/);
});

test('MLServer from an environment image: the image the data plane built for this content is found, not rebuilt, and the mlserver preset serves from it a model trained on this machine', { skip, timeout: 1_200_000 }, async (t) => {
  const ns = await testNamespace(t);
  const { pythonBase } = await builderSetup(t, ns);
  // The serving stack exactly as the local training environment has it (local/python/requirements.lock): the
  // content the data plane's MLServer image was built from (local/mlserver-image.ts), in the same repository.
  const pins = servingPins();
  for (const name of ['mlserver', 'mlserver-sklearn', 'scikit-learn', 'uvloop']) assert.ok(pins.some((p) => p.startsWith(`${name}==`)), `${name} is in local/python/requirements.lock`);
  const repository = `${registry}/slipway/mlserver-env`;
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], penv('mlserver-env', { baseImage: pythonBase, packages: { pip: pins }, build: { repository } }));
  const env = await built(ns, 'mlserver-env');
  for (const pin of pins) assert.ok(env.lock?.includes(pin), `${pin} locked`);
  assert.equal(env.image, `${repository}@${(await fetchManifest(`${repository}:${env.contentHash ?? ''}`)).digest}`, 'the image pushed for this content');
  assert.ok((await events(ns, 'mlserver-env')).some((e) => e.reason === 'Built' && e.message.includes('already in the registry: not rebuilt')), 'found in the registry, not built again');

  const bin = await ensurePythonEnv((line) => t.diagnostic(line));
  const root = mkdtempSync(join(tmpdir(), 'slipway-models-'));
  const { offline } = await trainModel(bin, root, 'good', 1);
  const store = await startModelStore(root);
  t.after(store.close);
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { name: 'iris' },
    spec: {
      model: { name: 'iris', version: '1', uri: `${store.url}/good-1/model.joblib`, format: 'sklearn' },
      environmentRef: { name: 'mlserver-env' },
      // The environment's image has no MLServer entrypoint of its own: the preset's command is named.
      runtime: { preset: 'mlserver', args: ['mlserver', 'start', '/mnt/models/'] },
      replicas: 1,
    },
  }));
  await cluster.kubectl(['wait', '--for=condition=Ready', '--timeout=300s', '-n', ns, 'mdep/iris']);
  const pods = await getJson<{ items: { status?: { podIP?: string; containerStatuses?: { name: string; image: string }[] } }[] }>(cluster, ['get', 'pods', '-n', ns, '-l', 'slipway.dev/model-deployment=iris']);
  const pod = pods.items[0];
  assert.equal(pod?.status?.containerStatuses?.[0]?.image, env.image, 'the server runs from the environment\'s image');
  const res = await fetch(`http://${pod?.status?.podIP ?? ''}:8080/v2/models/iris/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: frameRequest(offline.columns, offline.rows), signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  const answer = (await res.json()) as { model_version?: string; outputs: { data: number[] }[] };
  assert.equal(answer.model_version, '1');
  assert.deepEqual(answer.outputs[0]?.data, offline.predictions, 'exactly what the model predicts offline');
});
