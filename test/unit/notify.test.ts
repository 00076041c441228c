import assert from 'node:assert/strict';
import { test } from 'node:test';
import { notificationId, redact, slackPayload, webhookPayload, type Notification } from '../../src/notify/payload.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import type { SecretReader } from '../../src/kube/secrets.ts';
import { createLogger } from '../../src/runtime/log.ts';
import type { ModelDeployment } from '../../src/api/modeldeployment.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';

const n: Notification = {
  id: 'abc', kind: 'RolledBack', reason: 'RolledBack', severity: 'warning', namespace: 'ml', name: 'churn', uid: 'u-1', generation: 3,
  stableRevision: 'r7', modelVersion: '7', canaryRevision: 'r8', message: 'revision r8 (model version 8) rolled back: error-rate <b>', time: '2026-11-26T00:00:00Z',
};

test('credentials in URLs and token-like query parameters are redacted from messages', () => {
  assert.equal(redact('model at https://alice:s3cret@models.example.com/churn/8 failed'), 'model at https://***@models.example.com/churn/8 failed');
  assert.equal(redact('s3://AKIA123@bucket/x and https://h/x?token=abc&v=1&sig=zzz'), 's3://***@bucket/x and https://h/x?token=***&v=1&sig=***');
  assert.equal(redact('plain message, user@example.com stays'), 'plain message, user@example.com stays');
});

test('payloads: a JSON document with every field, and a Slack message with text and escaped blocks', () => {
  const json = JSON.parse(webhookPayload(n)) as Record<string, unknown>;
  assert.equal(json.kind, 'RolledBack');
  assert.equal(json.source, 'slipway');
  assert.equal(json.canaryRevision, 'r8');
  const slack = JSON.parse(slackPayload(n)) as { text: string; blocks: { text?: { text: string } }[] };
  assert.equal(slack.text, ':warning: ModelDeployment ml/churn rolled back: revision r8 (model version 8) rolled back: error-rate <b>');
  assert.match(slack.blocks[0]?.text?.text ?? '', /error-rate &lt;b&gt;/);
  assert.equal(notificationId('u', 'RolledBack', 'm'), notificationId('u', 'RolledBack', 'm'));
  assert.notEqual(notificationId('u', 'RolledBack', 'm'), notificationId('u', 'Promoted', 'm'));
});

const md = (notifications?: ModelDeployment['spec']['notifications']): ModelDeployment =>
  ({ metadata: { name: 'churn', namespace: 'ml', uid: 'u-1', generation: 2 }, spec: { notifications }, status: { stable: { revision: 'r7', modelVersion: '7' } } }) as unknown as ModelDeployment;

const log = createLogger('test');
log.level = 'silent';

const secrets = (data: Record<string, Record<string, string>>): SecretReader =>
  ({ read: async (ns: string, name: string) => data[`${ns}/${name}`] ?? Promise.reject(new Error(`Secret ${ns}/${name} does not exist`)) }) as unknown as SecretReader;

test('the notifier: never waits, retries 5xx with backoff, honours `on`, and uses the default Secret', async (t) => {
  const hooks = await startWebhookReceiver({ refuseFirst: 2 });
  const slack = await startWebhookReceiver();
  t.after(hooks.close);
  t.after(slack.close);
  const notifier = new Notifier({ secrets: secrets({ 'ml/hooks': { 'webhook-url': hooks.url('/a') }, 'slipway/default': { 'slack-url': slack.url('/s') } }), log, backoffMs: 20, defaultSecret: { namespace: 'slipway', name: 'default' } });
  notifier.notify(md({ secretRef: { name: 'hooks' }, on: ['RolledBack'] }), { kind: 'RolledBack', reason: 'RolledBack', type: 'Warning', message: 'm' });
  notifier.notify(md({ secretRef: { name: 'hooks' }, on: ['RolledBack'] }), { kind: 'Promoted', reason: 'Promoted', type: 'Normal', message: 'not asked for' });
  notifier.notify(md(), { kind: 'Promoted', reason: 'Promoted', type: 'Normal', message: 'to the default' });
  assert.equal(hooks.received.length + slack.received.length, 0, 'handing over does not wait for the receiver: nothing is delivered yet when notify returns');
  await notifier.stop(5000);
  assert.deepEqual(hooks.received.map((x) => x.status), [503, 503, 200], 'retried until accepted, then never again');
  assert.equal(new Set(hooks.received.map((x) => x.headers['idempotency-key'])).size, 1, 'one id for every attempt');
  assert.equal(hooks.received[2]?.body.message, 'm');
  assert.deepEqual(slack.received.map((x) => x.body.text), [':white_check_mark: ModelDeployment ml/churn promoted: to the default']);
});

test('the notifier gives up after the last attempt on 5xx, at once on a refusal (4xx); a missing Secret sends nothing', async (t) => {
  const down = await startWebhookReceiver({ refuseFirst: 100 });
  const refusing = await startWebhookReceiver({ refuseFirst: 100, refuseWith: 404 });
  t.after(down.close);
  t.after(refusing.close);
  const notifier = new Notifier({ secrets: secrets({ 'ml/down': { 'webhook-url': down.url('/a') }, 'ml/refusing': { 'webhook-url': refusing.url('/b') } }), log, backoffMs: 5, attempts: 3 });
  const failed = { kind: 'Failed', reason: 'ReplicaFailure', type: 'Warning', message: 'x' } as const;
  notifier.notify(md({ secretRef: { name: 'down' }, on: ['Failed'] }), failed);
  notifier.notify(md({ secretRef: { name: 'refusing' }, on: ['Failed'] }), failed);
  notifier.notify(md({ secretRef: { name: 'missing' }, on: ['Failed'] }), failed);
  await notifier.stop(5000);
  assert.equal(down.received.length, 3, 'three attempts, then it gives up');
  assert.equal(refusing.received.length, 1, 'a 404 is not retried');
});
