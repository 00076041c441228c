import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonPath, valueAt } from '../../src/analysis/web.ts';
import { prometheusOf } from '../../src/analysis/measure.ts';
import type { AnalysisSpec } from '../../src/analysis/analysis.ts';
import type { MetricSpec } from '../../src/analysis/judge.ts';
import { fillTemplate, presetQueries } from '../../src/analysis/prometheus.ts';

test('JSON paths: keys, indexes and quoted keys; a path means one value', () => {
  assert.deepEqual(parseJsonPath("$.data.results[0]['error-rate']"), ['data', 'results', 0, 'error-rate']);
  assert.deepEqual(parseJsonPath('data.value'), ['data', 'value']);
  assert.deepEqual(parseJsonPath('$["a.b"]'), ['a.b']);
  assert.throws(() => parseJsonPath('$.items[*].x'), /cannot read "\[\*\]\.x"/);
  assert.throws(() => parseJsonPath('$..x'), /cannot read/);
});

test('the value at a path: numbers and numeric strings; missing or null is no data; anything else an error', () => {
  const doc = { data: { results: [{ 'error-rate': 0.31 }, { v: '12.5' }], nothing: null, label: 'x', obj: {} } };
  assert.equal(valueAt(doc, "$.data.results[0]['error-rate']"), 0.31);
  assert.equal(valueAt(doc, '$.data.results[1].v'), 12.5);
  assert.equal(valueAt(doc, '$.data.results[5].v'), undefined);
  assert.equal(valueAt(doc, '$.data.nothing'), undefined);
  assert.equal(valueAt(doc, '$.data.missing.deeper'), undefined);
  assert.throws(() => valueAt(doc, '$.data.label'), /is "x", not a number/);
  assert.throws(() => valueAt(doc, '$.data.obj'), /is \{\}, not a number/);
});

test('templates: values are URL-encoded for a URL, left as they are for a query', () => {
  const vars = { namespace: 'ml', name: 'churn', revision: 'a b', role: 'canary', service: 'churn-canary', window: '95s' } as const;
  assert.equal(fillTemplate('http://h/x?r={{revision}}&w={{ window }}', vars, encodeURIComponent), 'http://h/x?r=a%20b&w=95s');
  assert.equal(fillTemplate('m{revision="{{revision}}"}[{{window}}]', vars), 'm{revision="a b"}[95s]');
});

test('credentials stay with the address they were given for', () => {
  const spec = (p?: AnalysisSpec['prometheus']): AnalysisSpec => ({ prometheus: p, metrics: [] }) as unknown as AnalysisSpec;
  const metric = (p?: MetricSpec['prometheus']): MetricSpec => ({ name: 'm', prometheus: p }) as unknown as MetricSpec;
  assert.deepEqual(prometheusOf(metric({ query: 'q' }), spec({ address: 'https://a', secretRef: { name: 's' } }), 'http://default'), { address: 'https://a', secret: 's' });
  assert.deepEqual(prometheusOf(metric({ query: 'q', address: 'https://other' }), spec({ address: 'https://a', secretRef: { name: 's' } }), undefined), { address: 'https://other', secret: undefined }, 'another address never gets the analysis\'s credentials');
  assert.deepEqual(prometheusOf(metric({ query: 'q', secretRef: { name: 'own' } }), spec({ secretRef: { name: 's' } }), 'http://default'), { address: 'http://default', secret: 'own' });
  assert.deepEqual(prometheusOf({ name: 'p', preset: 'mlserver-error-rate' } as unknown as MetricSpec, spec(), 'http://default'), { address: 'http://default', secret: undefined });
});

test('the gateway presets ask for each revision\'s Service as Traefik names it', () => {
  const vars = (role: 'canary' | 'stable') => ({ namespace: 'ml', name: 'churn', revision: 'r', role, service: role === 'canary' ? 'churn-canary' : 'churn', window: '60s' });
  const q = presetQueries('traefik-gateway-error-rate');
  assert.equal(fillTemplate(q.trials ?? '', vars('canary')), 'sum(increase(traefik_service_requests_total{service="ml-churn-canary-http-80@kubernetesgateway"}[60s]))');
  assert.equal(fillTemplate(q.events ?? '', vars('stable')), 'sum(increase(traefik_service_requests_total{service="ml-churn-http-80@kubernetesgateway",code=~"5.."}[60s]))');
  assert.match(presetQueries('traefik-gateway-latency').histogram ?? '', /^sum by \(le\) \(increase\(traefik_service_request_duration_seconds_bucket\{service="\{\{namespace\}\}-\{\{service\}\}-http-80@kubernetesgateway"\}\[\{\{window\}\}\]\)\)$/);
  // The sum of the observed values over the same series and window, so that compare judges the mean.
  assert.equal(fillTemplate(presetQueries('traefik-gateway-latency').sum ?? '', vars('canary')), 'sum(increase(traefik_service_request_duration_seconds_sum{service="ml-churn-canary-http-80@kubernetesgateway"}[60s]))');
  assert.equal(fillTemplate(presetQueries('mlserver-latency').sum ?? '', vars('stable')), 'sum(increase(rest_server_request_duration_seconds_sum{namespace="ml",model_deployment="churn",revision="r",path=~".*/infer"}[60s]))');
});
