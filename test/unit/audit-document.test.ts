import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ModelDeployment } from '../../src/api/modeldeployment.ts';
import { auditDocOf, auditPath, commitMessage, describeChange, genericDocOf, parseDoc, renderDoc } from '../../src/audit/document.ts';

const md = (over: { generation?: number; version?: string; status?: Record<string, unknown>; spec?: Record<string, unknown> } = {}): ModelDeployment => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'ModelDeployment',
  metadata: { name: 'churn', namespace: 'ml', uid: 'u-1', generation: over.generation ?? 1, resourceVersion: '10' },
  spec: {
    model: { name: 'churn-xgb', version: over.version ?? '7', uri: 's3://models/churn/7/', format: 'xgboost' },
    image: 'registry.example.com/mlserver:1.6.1',
    replicas: 2,
    runtime: { preset: 'custom', env: [{ name: 'DB_PASSWORD', value: 'hunter2' }, { name: 'LOG_LEVEL', value: 'info' }] },
    ...over.spec,
  },
  status: over.status,
}) as unknown as ModelDeployment;

const stable = (v: string, r = `rev${v}`) => ({ revision: r, modelVersion: v, image: 'img' });

test('the file holds the spec and the decided state, never a secret value, and reads back', () => {
  const doc = auditDocOf(md({ spec: { model: { name: 'm', version: '7', uri: 'https://alice:s3cret@models.example.com/m?token=abc', format: 'xgboost' } }, status: { stable: stable('7'), phase: 'Healthy', conditions: [{ type: 'Ready' }] } }));
  const text = renderDoc(doc);
  for (const secret of ['hunter2', 's3cret', 'abc']) assert.ok(!text.includes(secret), `${secret} in\n${text}`);
  assert.match(text, /value: \(redacted\)/);
  assert.match(text, /value: info/);
  assert.ok(!text.includes('conditions') && !text.includes('phase'), 'conditions and phase are not decisions');
  assert.deepEqual(parseDoc(text), doc);
});

test('a story in commits: created, serving, a spec change by its manager, rollout steps, a rollback with the evidence, a retry', () => {
  const s0 = auditDocOf(md());
  assert.equal(describeChange(undefined, s0, { specManager: 'kubectl' })?.subject, 'ml/churn: created (model 7)');
  const s1 = auditDocOf(md({ status: { stable: stable('7') } }));
  assert.equal(describeChange(s0, s1)?.subject, 'ml/churn: serving model 7 (revision rev7)');
  const s2 = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7') } }));
  const spec = describeChange(s1, s2, { specManager: 'flux' });
  assert.equal(spec?.subject, 'ml/churn: spec changed by flux: model version 7 → 8');
  assert.equal(spec?.trailers['Slipway-Decision'], 'spec-changed');
  assert.equal(spec?.trailers['Slipway-Actor'], 'flux');
  assert.equal(spec?.trailers['Slipway-Generation'], '2');
  const s3 = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7'), canary: { ...stable('8'), weight: 0, step: 0, steps: 3 } } }));
  assert.equal(describeChange(s2, s3)?.subject, 'ml/churn: rollout of model 8 started beside model 7');
  const s4 = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7'), canary: { ...stable('8'), weight: 50, step: 1, steps: 3 } } }));
  assert.equal(describeChange(s3, s4)?.subject, 'ml/churn: step 2 of 3: 50% of traffic to model 8');
  const message = 'analysis at step 2 of 3 failed: error-rate: the canary\'s rate 5.74% is above stable\'s 1.03% by at least 0.59% at 99% confidence (allowed: 0% of stable, 0.00%; anytime-valid p = 0.0020) (canary 5.66% (30/530), stable 0.95% (6/632))';
  const s5 = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7'), aborted: { ...stable('8'), reason: 'RolledBack', message, at: 'now' } } }));
  const rb = describeChange(s4, s5);
  assert.equal(rb?.subject, 'ml/churn: rolled back model 8 → 7 (error-rate 5.66% vs 0.95%)');
  assert.equal(rb?.trailers['Slipway-Decision'], 'rolled-back');
  assert.equal(rb?.body, message);
  assert.equal(describeChange(s5, s5), undefined, 'the same state is no commit');
  const job = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7'), aborted: { ...stable('8'), reason: 'RolledBack', message: 'analysis at step 2 of 3 failed: backtest: Job churn-analysis-1f Failed: DeadlineExceeded (canary Job churn-analysis-1f failed)', at: 'now' } } }));
  assert.equal(describeChange(s4, job)?.subject, 'ml/churn: rolled back model 8 → 7 (backtest: Job failed)');
  const s6 = auditDocOf(md({ generation: 2, version: '8', status: { stable: stable('7'), lastRequest: { id: 'r1', verb: 'retry', by: 'alice', result: 'Accepted', message: '', at: 'now' } } }));
  const retry = describeChange(s5, s6);
  assert.equal(retry?.trailers['Slipway-Actor'], 'alice');
  assert.match(retry?.subject ?? '', /retry requested by alice/);
  assert.equal(describeChange(s6, null)?.subject, 'ml/churn: deleted');
  const msg = commitMessage(rb ?? { subject: '', body: '', trailers: {} });
  assert.match(msg, /^ml\/churn: rolled back model 8 → 7 \(error-rate 5\.66% vs 0\.95%\)\n\nanalysis at step 2 of 3 failed: .*\n\nSlipway-Kind: ModelDeployment\nSlipway-Object: ml\/churn\n/);
});

test('with autoscaling, the HPA moving spec.replicas is no change to record', () => {
  const a = auditDocOf(md({ spec: { autoscaling: { minReplicas: 1, maxReplicas: 5 }, replicas: 2 }, status: { stable: stable('7') } }));
  const b = auditDocOf(md({ generation: 2, spec: { autoscaling: { minReplicas: 1, maxReplicas: 5 }, replicas: 4 }, status: { stable: stable('7') } }));
  assert.equal(renderDoc(a).replace('generation: 1', 'generation: 2'), renderDoc(b));
});

test('Experiments and ProjectEnvironments: their spec, and what was decided (an environment image, a winner)', () => {
  const pe = (image?: string) => genericDocOf('ProjectEnvironment', { metadata: { name: 'churn-env', namespace: 'ml', uid: 'p-1', generation: 1 }, spec: { baseImage: 'python@sha256:ab', packages: { python: ['pandas==2.2.3'] } }, status: image ? { image, phase: 'Ready' } : {} });
  assert.equal(auditPath('ml', 'churn-env', 'ProjectEnvironment'), 'ml/projectenvironment/churn-env.yaml');
  assert.equal(describeChange(undefined, pe(), { specManager: 'kubectl' })?.subject, 'ml/churn-env: created');
  const built = describeChange(pe(), pe('registry.local/envs/churn@sha256:cd'));
  assert.equal(built?.subject, 'ml/churn-env: environment image registry.local/envs/churn@sha256:cd');
  assert.equal(built?.trailers['Slipway-Kind'], 'ProjectEnvironment');
  assert.equal(built?.trailers['Slipway-Decision'], 'environment-image');
  // The lock its build wrote goes into the trail with the image.
  const locked = genericDocOf('ProjectEnvironment', { metadata: { name: 'churn-env', namespace: 'ml', uid: 'p-1', generation: 1 }, spec: {}, status: { image: 'registry.local/envs/churn@sha256:cd', lock: ['numpy==2.4.6', 'pandas==2.2.3'] } });
  assert.deepEqual(locked.effective.lock, ['numpy==2.4.6', 'pandas==2.2.3']);
  assert.match(renderDoc(locked), /lock:\n {4}- numpy==2\.4\.6\n {4}- pandas==2\.2\.3/);
  const ex = (winner?: string) => genericDocOf('Experiment', { metadata: { name: 'ab', namespace: 'ml', uid: 'e-1', generation: 1 }, spec: { variants: [] }, status: { phase: winner ? 'Concluded' : 'Running', ...(winner ? { winner } : {}) } });
  assert.equal(describeChange(ex(), ex('b'))?.subject, 'ml/ab: winner: b');
  assert.deepEqual(parseDoc(renderDoc(ex('b'))), ex('b'));
  assert.match(renderDoc(ex()), /^# The desired state of Experiment ml\/ab/);
});
