// The traffic routers' planned changes: only the weights of Slipway's two destinations move.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayApiRouter } from '../../src/controllers/modeldeployment/routers/gateway-api.ts';
import { hostIs, IstioRouter } from '../../src/controllers/modeldeployment/routers/istio.ts';
import type { KubeObject } from '../../src/kube/resources.ts';

const target = (canaryWeight: number) => ({ namespace: 'ml', stableService: 'churn', canaryService: 'churn-canary', canaryWeight });
const obj = (kind: string, spec: unknown): KubeObject => ({ apiVersion: 'x/v1', kind, metadata: { name: 'churn', namespace: 'ml', resourceVersion: '7' }, spec });

test('Gateway API: weights of the two backendRefs in every rule naming both; the rest untouched', () => {
  const spec: { parentRefs: unknown; hostnames: string[]; rules: { matches?: unknown; filters?: unknown; backendRefs: { name: string; port: number; weight?: number }[] }[] } = {
    parentRefs: [{ name: 'gw', namespace: 'infra' }],
    hostnames: ['churn.example.com'],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }], backendRefs: [{ name: 'churn', port: 80, weight: 100 }, { name: 'churn-canary', port: 80, weight: 0 }, { name: 'shadow', port: 80, weight: 5 }] },
      { matches: [{ headers: [{ name: 'x-canary', value: 'always' }] }], backendRefs: [{ name: 'churn-canary', port: 80 }] },
      { backendRefs: [{ name: 'churn', port: 80 }, { name: 'churn-canary', port: 80, weight: 0 }] },
    ],
  };
  const r = new GatewayApiRouter('churn').setWeight(obj('HTTPRoute', spec), target(30));
  assert.ok(r.ok);
  assert.equal(r.current, 0);
  const rules = (r.update?.spec as typeof spec).rules;
  assert.deepEqual(rules[0]?.backendRefs.map((b) => [b.name, b.weight]), [['churn', 70], ['churn-canary', 30], ['shadow', 5]]);
  assert.deepEqual(rules[1], spec.rules[1], 'a rule naming only one of them is the user\'s business');
  assert.deepEqual(rules[2]?.backendRefs.map((b) => [b.name, b.weight]), [['churn', 70], ['churn-canary', 30]]);
  assert.deepEqual(rules[0]?.filters, spec.rules[0]?.filters);
  assert.equal(r.update?.metadata.resourceVersion, '7', 'written over the version read');
  assert.deepEqual(spec.rules[0]?.backendRefs[0]?.weight, 100, 'the observed object is not changed');
  // Already there: nothing to write.
  const again = new GatewayApiRouter('churn').setWeight(r.update ?? null, target(30));
  assert.ok(again.ok);
  assert.equal(again.update, undefined);
  assert.equal(again.current, 30);
});

test('Gateway API: a backendRef in another namespace or of another kind is not Slipway\'s', () => {
  const spec = { rules: [{ backendRefs: [{ name: 'churn', namespace: 'other', port: 80 }, { name: 'churn-canary', kind: 'ServiceImport', group: 'multicluster.x-k8s.io', port: 80 }] }] };
  const r = new GatewayApiRouter('churn').setWeight(obj('HTTPRoute', spec), target(30));
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.reason === 'RouteMisconfigured');
});

test('Istio: hosts in every form; named routes; a third destination is refused rather than guessed at', () => {
  for (const h of ['churn', 'churn.ml', 'churn.ml.svc', 'churn.ml.svc.cluster.local', 'churn.ml.svc.corp.internal']) assert.ok(hostIs(h, 'churn', 'ml'), h);
  for (const h of ['churn.other', 'churn-canary', 'xchurn', undefined]) assert.ok(!hostIs(h, 'churn', 'ml'), String(h));
  const spec: { hosts: string[]; http: { name: string; match?: unknown; retries?: unknown; route: { destination: { host: string; port?: unknown }; weight?: number }[] }[] } = {
    hosts: ['churn.example.com'],
    http: [
      { name: 'primary', match: [{ uri: { prefix: '/v2' } }], retries: { attempts: 3 }, route: [{ destination: { host: 'churn.ml.svc.cluster.local', port: { number: 80 } }, weight: 100 }, { destination: { host: 'churn-canary.ml.svc.cluster.local', port: { number: 80 } }, weight: 0 }] },
      { name: 'legacy', route: [{ destination: { host: 'legacy' } }] },
    ],
  };
  const r = new IstioRouter('churn', undefined).setWeight(obj('VirtualService', spec), target(10));
  assert.ok(r.ok);
  const http = (r.update?.spec as typeof spec).http;
  assert.deepEqual(http[0]?.route.map((d) => d.weight), [90, 10]);
  assert.deepEqual(http[0]?.retries, { attempts: 3 });
  assert.deepEqual(http[1], spec.http[1]);
  const named = new IstioRouter('churn', ['primary', 'missing']).setWeight(obj('VirtualService', spec), target(10));
  assert.ok(!named.ok && /no http route named missing/.test(named.message));
  const third = obj('VirtualService', { http: [{ route: [{ destination: { host: 'churn' }, weight: 80 }, { destination: { host: 'churn-canary' }, weight: 10 }, { destination: { host: 'mirror' }, weight: 10 }] }] });
  const refused = new IstioRouter('churn', undefined).setWeight(third, target(10));
  assert.ok(!refused.ok && /also sends to mirror/.test(refused.message));
  const none = new IstioRouter('churn', undefined).setWeight(null, target(10));
  assert.ok(!none.ok && none.reason === 'RouteNotFound');
});
