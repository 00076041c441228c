// Quantities in the API server's normal form. Every expected value in the table was read back from the local
// control plane's kube-apiserver v1.37.2: a Deployment created with --dry-run=server and the quantity as its
// container's CPU request (a ResourceList, so rounded up to milli units).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalQuantity, canonicalResources } from '../../src/kube/quantity.ts';

const cases: [string | number, string][] = [
  ['0.5', '500m'],
  ['500m', '500m'],
  ['1024Mi', '1Gi'],
  ['1000Mi', '1000Mi'],
  ['1.5Gi', '1536Mi'],
  ['0.1Gi', '107374182400m'],
  ['512Ki', '512Ki'],
  ['1000Ki', '1000Ki'],
  ['1Ki', '1Ki'],
  ['0.5Ki', '512'],
  ['2', '2'],
  [2, '2'],
  [1000, '1k'],
  ['1000', '1k'],
  ['1500', '1500'],
  ['2000m', '2'],
  ['100m', '100m'],
  ['0.25', '250m'],
  ['1e3', '1e3'],
  ['1E6', '1E6'],
  ['12e2', '1200'],
  ['0', '0'],
  ['0Gi', '0'],
  ['1.0', '1'],
  ['1G', '1G'],
  ['1000M', '1G'],
  ['1.5', '1500m'],
  ['0.0000000001', '1m'],
  ['1.5n', '1m'],
  ['1.0005', '1001m'],
  ['1.0001Ki', '1024103m'],
  ['1536', '1536'],
  [0.5, '500m'],
  ['128974848', '128974848'],
  ['129e6', '129e6'],
  ['123Mi', '123Mi'],
];

for (const [input, want] of cases) {
  test(`quantity ${JSON.stringify(input)} reads back as ${want}`, () => {
    assert.equal(canonicalQuantity(input, -3), want);
  });
}

test('outside a ResourceList precision goes down to nano units', () => {
  assert.equal(canonicalQuantity('1.5n'), '2n');
  assert.equal(canonicalQuantity('0.0000000001'), '1n');
});

test('what is not a quantity is reported, not guessed', () => {
  for (const bad of ['lots', '', '1.2.3', '5 Gi', 'Gi', '1KiB']) assert.equal(canonicalQuantity(bad), undefined, bad);
});

test('resource requirements are normalised field by field', () => {
  assert.deepEqual(canonicalResources({ requests: { cpu: '0.5', memory: '1024Mi' }, limits: { cpu: 2 } }), { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2' } });
});
