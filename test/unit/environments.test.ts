// ProjectEnvironment builds without a cluster: the content hash (stable across equivalent specs, moved by any
// change that changes the image), the builder's report and lock, the build Job (a golden file), and the planner.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { projectEnvironment, type ProjectEnvironment } from '../../src/api/projectenvironment.ts';
import { buildJob, buildJobName, HASH_LABEL, hashLabel, type BuildConfig } from '../../src/environments/build-job.ts';
import { buildInputs, canonicalRequirement, contentHash } from '../../src/environments/content.ts';
import { parseBuildReport, parseLock } from '../../src/environments/report.ts';
import { plan, refusedStatus, type JobLike, type PodLike, type ProjectEnvironmentStatus } from '../../src/controllers/projectenvironment/plan.ts';

const BASE = `10.244.255.253:5000/slipway/python-base@sha256:${'b'.repeat(64)}`;
const REPO = '10.244.255.253:5000/ml/churn-env';
const NOW = new Date('2026-11-27T10:00:00Z');

function pe(spec: Partial<ProjectEnvironment['spec']> = {}, status?: ProjectEnvironment['status']): ProjectEnvironment {
  return projectEnvironment.parse({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ProjectEnvironment',
    metadata: { name: 'churn-env', namespace: 'ml', uid: 'uid-1', generation: 2, resourceVersion: '7' },
    spec: { baseImage: BASE, packages: { pip: ['scikit-learn==1.5.2', 'tabulate'] }, build: { repository: REPO }, ...spec },
    ...(status ? { status } : {}),
  });
}
const hashOf = (p: ProjectEnvironment): string => contentHash(buildInputs(p.spec)!);
const CONFIG: BuildConfig = { builderImage: `10.244.255.253:5000/slipway/environment-builder@sha256:${'c'.repeat(64)}`, env: [{ name: 'HTTPS_PROXY', value: 'http://10.244.0.1:3128' }], caBundle: { configMap: 'trusted-ca', key: 'ca.crt' }, activeDeadlineSeconds: 1800 };

test('requirements in canonical form: names per PEP 503, extras and specifiers sorted, spaces gone', () => {
  assert.equal(canonicalRequirement('Scikit_Learn == 1.5.2'), 'scikit-learn==1.5.2');
  assert.equal(canonicalRequirement('requests[Socks, security] >=2.31, <3'), 'requests[security,socks]<3,>=2.31');
  assert.equal(canonicalRequirement('requests [security,socks] <3 ,>=2.31'), 'requests[security,socks]<3,>=2.31');
  assert.equal(canonicalRequirement('numpy; python_version  >= "3.10"'), 'numpy; python_version >= "3.10"');
  assert.equal(canonicalRequirement('zope.interface'), 'zope-interface');
});

test('the content hash is the same for equivalent specs: order, spelling, whitespace, duplicates', () => {
  const a = hashOf(pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'] } }));
  assert.match(a, /^[a-f0-9]{64}$/);
  assert.equal(hashOf(pe({ packages: { pip: ['tabulate', 'scikit-learn==1.5.2'] } })), a);
  assert.equal(hashOf(pe({ packages: { pip: ['Scikit_Learn == 1.5.2', 'tabulate  '] } })), a);
  assert.equal(hashOf(pe({ packages: { pip: ['tabulate', 'scikit-learn==1.5.2', 'Tabulate'] } })), a);
  assert.equal(hashOf(pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], apt: [], r: [] } })), a, 'empty apt and R lists are no lists');
  const withR = hashOf(pe({ packages: { pip: ['tabulate', 'scikit-learn==1.5.2'], apt: ['libgomp1', 'curl'], r: ['data.table', 'jsonlite'] } }));
  assert.equal(hashOf(pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], apt: ['curl', 'libgomp1', 'curl'], r: ['jsonlite', 'Data.Table'] } })), withR);
  // The spec's other fields do not make the image.
  assert.equal(hashOf(pe({ historyLimit: 3 })), a);
  assert.equal(hashOf(pe({ build: { repository: REPO, pushSecret: 'push' } })), a);
});

test('the content hash moves with anything that changes the image', () => {
  const a = hashOf(pe());
  const others = [
    pe({ packages: { pip: ['scikit-learn==1.5.1', 'tabulate'] } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate', 'joblib'] } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2'] } }),
    pe({ packages: { pip: ['scikit-learn[alldeps]==1.5.2', 'tabulate'] } }),
    pe({ baseImage: `10.244.255.253:5000/slipway/python-base@sha256:${'d'.repeat(64)}` }),
    pe({ build: { repository: '10.244.255.253:5000/ml/other-env' } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], apt: ['libgomp1'] } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], r: ['jsonlite'] } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], r: ['jsonlite', 'magrittr'] } }),
    pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate'], apt: ['libgomp1=12.2.0-14'] } }),
  ].map(hashOf);
  assert.equal(new Set([a, ...others]).size, others.length + 1);
});

test('a prebuilt environment has no build inputs', () => {
  assert.equal(buildInputs({ image: `r.example/env@sha256:${'a'.repeat(64)}` }), undefined);
});

test('the CRD pattern takes index requirements and refuses URLs and paths', () => {
  const ok = ['scikit-learn==1.5.2', 'requests[socks]>=2,<3', 'numpy; python_version >= "3.10"', 'a', 'pandas ~= 2.2'];
  const bad = ['sklearn @ https://example.com/x.whl', './local/pkg', '-e git+https://x', '--index-url http://x', 'pkg==1 --hash=sha256:ab', ''];
  for (const r of ok) assert.ok(projectEnvironment.safeParse(pe({ packages: { pip: [r] } })).success, r);
  for (const r of bad) assert.ok(!projectEnvironment.safeParse({ ...pe(), spec: { ...pe().spec, packages: { pip: [r] } } }).success, r);
  assert.ok(!projectEnvironment.safeParse({ ...pe(), spec: { ...pe().spec, baseImage: 'python:3.11-slim' } }).success, 'a base image by tag');
  assert.ok(!projectEnvironment.safeParse({ ...pe(), spec: { ...pe().spec, build: { repository: 'env:latest' } } }).success, 'a repository with a tag and no host');
});

test('lock and report parsing: what the builder reports, nothing else', () => {
  assert.deepEqual(parseLock('tabulate==0.10.0 numpy==2.4.6  scikit-learn==1.5.2 junk ==1 a==b==c'), ['numpy==2.4.6', 'scikit-learn==1.5.2', 'tabulate==0.10.0']);
  assert.deepEqual(parseLock('deb:r-cran-data.table==1.14.8+dfsg-1 six==1.16.0 deb:libstdc++6==12.2.0-14+deb12u1 deb:xz==1:2.3~rc1 deb:Bad==1'), ['deb:libstdc++6==12.2.0-14+deb12u1', 'deb:r-cran-data.table==1.14.8+dfsg-1', 'deb:xz==1:2.3~rc1', 'six==1.16.0']);
  const image = `${REPO}@sha256:${'e'.repeat(64)}`;
  const ok = parseBuildReport(JSON.stringify({ image, sbom: `sha256:${'f'.repeat(64)}`, lock: 'tabulate==0.10.0 numpy==2.4.6', python: '3.11.2', reused: false }), REPO);
  assert.deepEqual(ok, { ok: true, image, sbom: `sha256:${'f'.repeat(64)}`, lock: ['numpy==2.4.6', 'tabulate==0.10.0'], python: '3.11.2', reused: false });
  assert.deepEqual(parseBuildReport(JSON.stringify({ reason: 'ResolutionFailed', message: 'No matching distribution found for nope' }), REPO), { ok: false, reason: 'ResolutionFailed', message: 'No matching distribution found for nope' });
  const elsewhere = parseBuildReport(JSON.stringify({ image: `evil.example/x@sha256:${'e'.repeat(64)}`, sbom: '', lock: '' }), REPO);
  assert.equal(elsewhere.ok, false);
  assert.equal(!elsewhere.ok && elsewhere.reason, 'BuildReportInvalid');
  const crash = parseBuildReport('Traceback (most recent call last):\nMemoryError', REPO);
  assert.equal(!crash.ok && crash.reason, 'BuilderCrashed');
  assert.match(!crash.ok ? crash.message : '', /MemoryError/);
  assert.equal(parseBuildReport(JSON.stringify({ image: 'not-pinned', sbom: '', lock: '' }), REPO).ok, false);
  // A lock longer than a termination message holds comes gzipped (as build.py packs it).
  const long = Array.from({ length: 300 }, (_, i) => `deb:r-cran-package${i}==1.${i}.0-1`);
  const packed = parseBuildReport(JSON.stringify({ image, sbom: '', lockGz: gzipSync(long.join(' ')).toString('base64') }), REPO);
  assert.deepEqual(packed.ok && packed.lock, [...long].sort());
  assert.equal(parseBuildReport(JSON.stringify({ image, sbom: '', lockGz: 'bm90IGd6aXA=' }), REPO).ok, false, 'not gzip');
});

test('the build Job matches its golden file', () => {
  const p = pe({ build: { repository: REPO, pushSecret: 'registry-push' } });
  const job = buildJob(p, buildInputs(p.spec)!, hashOf(p), CONFIG);
  const text = yaml.dump(job, { lineWidth: -1, sortKeys: false, noRefs: true });
  const golden = join(import.meta.dirname, 'golden', 'environment-build-job.yaml');
  if (process.env.SLIPWAY_UPDATE_GOLDEN === '1' || !existsSync(golden)) writeFileSync(golden, text);
  assert.equal(text, readFileSync(golden, 'utf8'), 'SLIPWAY_UPDATE_GOLDEN=1 rewrites it after an intended change');
});

test('the build Job runs the base image unprivileged, never restarts in place, and fails at once on a resolution error', () => {
  const p = pe();
  const job = buildJob(p, buildInputs(p.spec)!, hashOf(p), { builderImage: CONFIG.builderImage, env: [] }) as unknown as {
    metadata: { name: string };
    spec: { podFailurePolicy: { rules: { action: string; onExitCodes: { values: number[] } }[] }; template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[]; volumes: Record<string, unknown>[] } } };
  };
  assert.ok(job.metadata.name.length <= 63);
  assert.equal(job.metadata.name, buildJobName('churn-env', hashOf(p)));
  const pod = job.spec.template.spec;
  assert.equal(pod.restartPolicy, 'Never');
  assert.deepEqual(job.spec.podFailurePolicy.rules[0], { action: 'FailJob', onExitCodes: { containerName: 'build', operator: 'In', values: [2] } });
  const c = pod.containers[0]!;
  assert.equal(c.image, BASE);
  assert.deepEqual(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  assert.equal((pod.securityContext as { runAsNonRoot: boolean }).runAsNonRoot, true);
  assert.ok(!pod.volumes.some((v) => 'secret' in v), 'no push Secret mounted when none is named');
  assert.deepEqual(pod.volumes.find((v) => v.name === 'builder'), { name: 'builder', image: { reference: CONFIG.builderImage, pullPolicy: 'IfNotPresent' } });
  const env = c.env as { name: string; value: string }[];
  assert.deepEqual(JSON.parse(env.find((e) => e.name === 'SLIPWAY_BUILD')!.value), { hash: hashOf(p), baseImage: BASE, repository: REPO, pip: ['scikit-learn==1.5.2', 'tabulate'] });
});

// ---------------------------------------------------------------- the planner

const job = (p: ProjectEnvironment, status: JobLike['status'] = { active: 1 }): JobLike => ({
  ...(buildJob(p, buildInputs(p.spec)!, hashOf(p), CONFIG) as JobLike),
  metadata: { ...buildJob(p, buildInputs(p.spec)!, hashOf(p), CONFIG).metadata, uid: `job-${hashOf(p).slice(0, 6)}` },
  status,
});
const pod = (j: JobLike, name: string, phase: string, terminated?: { exitCode: number; message?: string }): PodLike => ({
  metadata: { name, namespace: 'ml', creationTimestamp: `2026-11-27T09:0${name.slice(-1)}:00Z`, labels: { 'batch.kubernetes.io/job-name': j.metadata.name } },
  status: { phase, containerStatuses: [{ name: 'build', state: terminated ? { terminated } : {} }] },
});
const builtReport = (digit: string, lock = 'scikit-learn==1.5.2 tabulate==0.10.0'): string => JSON.stringify({ image: `${REPO}@sha256:${digit.repeat(64)}`, sbom: `sha256:${'5'.repeat(64)}`, lock, python: '3.11.2' });
const cond = (s: ProjectEnvironmentStatus, type: string) => s.conditions?.find((c) => c.type === type);

test('a new environment: one build Job is created, and the environment says it is building', () => {
  const p = pe();
  const out = plan({ pe: p, jobs: [], pods: [], build: CONFIG }, NOW);
  assert.equal((out.create?.metadata.labels ?? {})[HASH_LABEL], hashLabel(hashOf(p)));
  assert.equal(out.status.phase, 'Building');
  assert.equal(out.status.contentHash, hashOf(p));
  assert.equal(out.status.image, undefined);
  assert.deepEqual([cond(out.status, 'Ready')?.status, cond(out.status, 'Reconciling')?.status], ['False', 'True']);
  assert.deepEqual(out.events.map((e) => e.reason), ['BuildStarted']);
  // Planned again while its Job runs: nothing more is created.
  const again = plan({ pe: pe({}, out.status), jobs: [job(p)], pods: [], build: CONFIG }, NOW);
  assert.equal(again.create, undefined);
  assert.equal(again.statusChanged, false);
});

test('a build that completes: its image, lock and SBOM are served and remembered; its Job goes', () => {
  const p = pe();
  const j = job(p, { succeeded: 1, startTime: '2026-11-27T09:58:00Z', completionTime: '2026-11-27T09:59:30Z', conditions: [{ type: 'Complete', status: 'True' }] });
  const out = plan({ pe: p, jobs: [j], pods: [pod(j, 'b-1', 'Succeeded', { exitCode: 0, message: builtReport('1') })], build: CONFIG }, NOW);
  assert.deepEqual(out.finished, { result: 'built', seconds: 90 }, 'the outcome for the build metrics: the Job ran 90 s');
  assert.equal(out.status.phase, 'Ready');
  assert.equal(out.status.image, `${REPO}@sha256:${'1'.repeat(64)}`);
  assert.deepEqual(out.status.lock, ['scikit-learn==1.5.2', 'tabulate==0.10.0']);
  assert.equal(out.status.history?.[0]?.hash, hashOf(p));
  assert.equal(out.status.build, undefined);
  assert.deepEqual(out.delete, [{ name: j.metadata.name, uid: j.metadata.uid }]);
  assert.equal(cond(out.status, 'Ready')?.status, 'True');
  assert.deepEqual(out.events.map((e) => e.reason), ['Built']);
});

test('a completed Job whose pod is not in the cache yet is looked at again, not rebuilt', () => {
  const p = pe();
  const j = job(p, { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] });
  const out = plan({ pe: p, jobs: [j], pods: [], build: CONFIG }, NOW);
  assert.equal(out.create, undefined);
  assert.deepEqual(out.delete, []);
  assert.ok(out.requeue);
});

test('content built before is served again without a build (a package removed rolls back)', () => {
  const withJoblib = pe({ packages: { pip: ['scikit-learn==1.5.2', 'tabulate', 'joblib'] } });
  const without = pe();
  const old = { hash: hashOf(without), image: `${REPO}@sha256:${'1'.repeat(64)}`, lock: ['scikit-learn==1.5.2'], builtAt: '2026-11-27T09:00:00Z' };
  const newer = { hash: hashOf(withJoblib), image: `${REPO}@sha256:${'2'.repeat(64)}`, lock: ['joblib==1.6.0', 'scikit-learn==1.5.2'], builtAt: '2026-11-27T09:30:00Z' };
  const status = { image: newer.image, lock: newer.lock, contentHash: newer.hash, phase: 'Ready' as const, history: [newer, old] };
  const out = plan({ pe: pe({}, status), jobs: [], pods: [], build: CONFIG }, NOW);
  assert.equal(out.create, undefined);
  assert.equal(out.status.image, old.image);
  assert.deepEqual(out.status.lock, old.lock);
  assert.deepEqual(out.status.history, [newer, old], 'the history is kept as it was');
  assert.deepEqual(out.events.map((e) => e.reason), ['ImageRestored']);
});

test('a build that cannot be resolved fails at once, says why, and the last good image stays served', () => {
  const good = { hash: 'a'.repeat(64), image: `${REPO}@sha256:${'1'.repeat(64)}`, lock: ['tabulate==0.10.0'] };
  const p = pe({ packages: { pip: ['slipway-no-such-package-xyz'] } }, { image: good.image, lock: good.lock, phase: 'Ready', history: [good] });
  const j = job(p, { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'PodFailurePolicy', message: 'Container build for pod ml/x failed with exit code 2 matching FailJob rule at index 0' }] });
  const report = JSON.stringify({ reason: 'ResolutionFailed', message: 'ERROR: No matching distribution found for slipway-no-such-package-xyz' });
  const out = plan({ pe: p, jobs: [j], pods: [pod(j, 'b-1', 'Failed', { exitCode: 2, message: report })], build: CONFIG }, NOW);
  assert.equal(out.status.phase, 'Failed');
  assert.equal(out.status.image, good.image);
  const ready = cond(out.status, 'Ready');
  assert.equal(ready?.reason, 'ResolutionFailed');
  assert.match(ready?.message ?? '', /No matching distribution found for slipway-no-such-package-xyz.*still served/s);
  assert.equal(cond(out.status, 'Stalled')?.status, 'True');
  assert.deepEqual(out.events.map((e) => e.reason), ['BuildFailed']);
  assert.deepEqual(out.finished, { result: 'failed' }, 'failed, and no duration: the Job does not say when it started');
  assert.deepEqual(out.delete, [], 'the failed Job stays for its logs');
  // Planned again: no second Warning, the failure is not counted twice.
  const again = plan({ pe: pe(p.spec, out.status), jobs: [j], pods: [pod(j, 'b-1', 'Failed', { exitCode: 2, message: report })], build: CONFIG }, NOW);
  assert.deepEqual([again.events, again.finished], [[], undefined]);
});

test('an attempt that failed for a reason retrying can help is said while the Job retries', () => {
  const p = pe();
  const j = job(p, { active: 1, failed: 1 });
  const report = JSON.stringify({ reason: 'RegistryUnreachable', message: 'PUT http://10.244.255.253:5000/v2/ml/churn-env/manifests/x: [Errno 111] Connection refused' });
  const out = plan({ pe: p, jobs: [j], pods: [pod(j, 'b-1', 'Failed', { exitCode: 1, message: report }), pod(j, 'b-2', 'Running')], build: CONFIG }, NOW);
  assert.equal(out.status.phase, 'Building');
  assert.equal(cond(out.status, 'Ready')?.reason, 'RegistryUnreachable');
  assert.match(out.status.build?.lastFailure ?? '', /Connection refused/);
  assert.equal(out.status.build?.attempts, 1);
});

test('a spec that moves on cancels the build of the old content', () => {
  const before = pe();
  const after = pe({ packages: { pip: ['scikit-learn==1.5.2'] } });
  const old = job(before);
  const out = plan({ pe: after, jobs: [old], pods: [], build: CONFIG }, NOW);
  assert.deepEqual(out.delete, [{ name: old.metadata.name, uid: old.metadata.uid }]);
  assert.equal((out.create?.metadata.labels ?? {})[HASH_LABEL], hashLabel(hashOf(after)));
});

test('the history keeps spec.historyLimit images, newest first', () => {
  const history = Array.from({ length: 3 }, (_, i) => ({ hash: String(i).repeat(64), image: `${REPO}@sha256:${String(i).repeat(64)}` }));
  const p = pe({ historyLimit: 3 }, { history });
  const j = job(p, { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] });
  const out = plan({ pe: p, jobs: [j], pods: [pod(j, 'b-1', 'Succeeded', { exitCode: 0, message: builtReport('9') })], build: CONFIG }, NOW);
  assert.deepEqual(out.status.history?.map((h) => h.hash), [hashOf(p), '0'.repeat(64), '1'.repeat(64)]);
});

test('prebuilt environments serve their image; without a builder, built ones say so', () => {
  const image = `r.example/env@sha256:${'a'.repeat(64)}`;
  const prebuilt = projectEnvironment.parse({ ...pe(), spec: { image } });
  const out = plan({ pe: prebuilt, jobs: [], pods: [], build: undefined }, NOW);
  assert.deepEqual([out.status.image, out.status.phase, cond(out.status, 'Ready')?.reason], [image, 'Ready', 'Prebuilt']);
  const none = plan({ pe: pe(), jobs: [], pods: [], build: undefined }, NOW);
  assert.deepEqual([none.status.phase, cond(none.status, 'Stalled')?.reason, none.create], ['Failed', 'BuilderNotConfigured', undefined]);
});

test('a build that completes with a report Slipway does not believe fails, once, and keeps nothing of it', () => {
  const p = pe();
  const j = job(p, { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] });
  const lie = JSON.stringify({ image: `evil.example/x@sha256:${'6'.repeat(64)}`, sbom: '', lock: 'six==1.16.0' });
  const out = plan({ pe: p, jobs: [j], pods: [pod(j, 'b-1', 'Succeeded', { exitCode: 0, message: lie })], build: CONFIG }, NOW);
  assert.equal(out.status.phase, 'Failed');
  assert.equal(out.status.image, undefined);
  assert.equal(out.status.history, undefined);
  assert.equal(cond(out.status, 'Ready')?.reason, 'BuildReportInvalid');
  assert.deepEqual(out.events.map((e) => e.reason), ['BuildFailed']);
  assert.deepEqual(plan({ pe: pe({}, out.status), jobs: [j], pods: [pod(j, 'b-1', 'Succeeded', { exitCode: 0, message: lie })], build: CONFIG }, NOW).events, []);
});

test('a build Job the API server refuses: Failed and Stalled with its words, the last good image still served, recorded once', () => {
  const served = { image: `${REPO}@sha256:${'1'.repeat(64)}`, lock: ['scikit-learn==1.5.2'], contentHash: 'h1', phase: 'Ready' as const, conditions: [{ type: 'Ready', status: 'True' as const, reason: 'Built', message: 'serving', lastTransitionTime: '2026-11-27T09:00:00Z' }] };
  const env = { ...pe({}, served), metadata: { ...pe().metadata, generation: 3 } };
  const message = 'the build Job churn-env-1a2b was refused: exceeded quota: no-jobs, requested: count/jobs.batch=1';
  const s = refusedStatus(env, 'BuildJobRefused', message, NOW);
  assert.ok(s);
  assert.equal(s.phase, 'Failed');
  assert.equal(s.image, served.image, 'the last good image is still served');
  assert.deepEqual(s.lock, served.lock);
  assert.equal(s.observedGeneration, 3);
  assert.deepEqual([cond(s, 'Ready')?.status, cond(s, 'Ready')?.reason], ['False', 'BuildJobRefused']);
  assert.match(cond(s, 'Ready')?.message ?? '', new RegExp(`exceeded quota: no-jobs.*; ${served.image.replace(/[.]/g, '\\.')} is still served`));
  assert.deepEqual([cond(s, 'Stalled')?.status, cond(s, 'Stalled')?.message], ['True', message]);
  assert.deepEqual([cond(s, 'Reconciling')?.status, cond(s, 'Reconciling')?.reason], ['False', 'Stalled']);
  assert.equal(cond(s, 'Ready')?.lastTransitionTime, '2026-11-27T10:00:00Z', 'Ready moved from True: its transition time is now');
  assert.equal(refusedStatus({ ...env, status: s }, 'BuildJobRefused', message, NOW), undefined, 'the same refusal again writes nothing');
  assert.ok(refusedStatus({ ...env, status: s }, 'ApiServerError', 'the API server keeps failing', NOW), 'another failure is recorded');
});
