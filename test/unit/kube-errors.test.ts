// API errors become types the controllers act on; Lease times have the precision the API server demands.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, isGone, isNotFound, parseStatusError } from '../../src/kube/errors.ts';
import { microTime, rfc3339 } from '../../src/kube/time.ts';

const status = (code: number, reason: string, message: string, details?: object) => JSON.stringify({ kind: 'Status', status: 'Failure', code, reason, message, ...(details ? { details } : {}) });

test('each answer maps to what a reconcile does next', () => {
  const cases: [number, string, string][] = [
    [409, 'Conflict', 'Conflict'],
    [404, 'NotFound', 'NotFound'],
    [429, 'TooManyRequests', 'TooManyRequests'],
    [422, 'Invalid', 'Terminal'],
    [403, 'Forbidden', 'Terminal'],
    [400, 'BadRequest', 'Terminal'],
    [500, 'InternalError', 'Transient'],
    [503, 'ServiceUnavailable', 'Transient'],
  ];
  for (const [code, reason, expected] of cases) {
    assert.equal(classify(parseStatusError(code, status(code, reason, 'x'), 'GET', '/api/v1/pods', undefined)), expected, `${code} ${reason}`);
  }
  assert.equal(classify(new Error('socket hang up')), 'Transient');
});

test('a Status body gives the reason, message, causes and Retry-After', () => {
  const err = parseStatusError(422, status(422, 'Invalid', 'ModelDeployment.slipway.dev "x" is invalid: spec.model.format: Unsupported value', { causes: [{ field: 'spec.model.format', reason: 'FieldValueNotSupported' }] }), 'PATCH', '/apis/slipway.dev/v1alpha1/namespaces/a/modeldeployments/x', undefined);
  assert.equal(err.reason, 'Invalid');
  assert.equal(err.causes[0]?.field, 'spec.model.format');
  assert.equal(err.statusMessage, 'ModelDeployment.slipway.dev "x" is invalid: spec.model.format: Unsupported value');
  assert.equal(parseStatusError(429, status(429, 'TooManyRequests', 'slow'), 'GET', '/', '7').retryAfterSeconds, 7);
  assert.equal(parseStatusError(429, status(429, 'TooManyRequests', 'slow', { retryAfterSeconds: 3 }), 'GET', '/', undefined).retryAfterSeconds, 3);
});

test('a body that is not a Status still gives a usable error', () => {
  const err = parseStatusError(502, '<html>bad gateway</html>', 'GET', '/api', undefined);
  assert.equal(err.reason, 'Unknown');
  assert.match(err.message, /bad gateway/);
  assert.ok(isNotFound(parseStatusError(404, '', 'GET', '/', undefined)));
  assert.ok(isGone(parseStatusError(410, status(410, 'Expired', 'too old'), 'GET', '/', undefined)));
});

test('Lease times have six fractional digits (three are rejected by the API server)', () => {
  assert.equal(microTime(new Date('2026-11-24T12:00:00.123Z')), '2026-11-24T12:00:00.123000Z');
  assert.equal(rfc3339(new Date('2026-11-24T12:00:00.123Z')), '2026-11-24T12:00:00Z');
});
