// One version, said the same everywhere it is said: the controller, package.json and the chart.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { VERSION } from '../../src/version.ts';

const root = join(import.meta.dirname, '..', '..');

test('package.json and the chart carry the version the controller reports', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const chart = yaml.load(readFileSync(join(root, 'charts', 'slipway', 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
  assert.equal(pkg.version, VERSION);
  assert.equal(chart.version, VERSION);
  assert.equal(chart.appVersion, VERSION);
});
