import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControllerMetrics } from '../../src/runtime/metrics.ts';

const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'charts', 'slipway', 'dashboards', 'slipway.json'), 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[]; gridPos: { w: number; x: number } }[] };

test('every series the Grafana dashboard asks for is one the controller exports', async () => {
  const exported = new Set<string>();
  for (const m of await new ControllerMetrics().registry.getMetricsAsJSON()) {
    exported.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(`${m.name}${s}`);
  }
  const asked = dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => t.expr.match(/slipway_[a-z_]+/g) ?? []));
  assert.ok(asked.length > 15);
  for (const name of asked) assert.ok(exported.has(name), `${name} is not a metric of the controller`);
  for (const name of ['slipway_modeldeployment_phase', 'slipway_canary_weight_percent', 'slipway_rollbacks_total', 'slipway_analysis_measurements_total']) assert.ok(asked.includes(name), `rollouts: ${name}`);
});

test('the panels fit the grid', () => {
  for (const p of dashboard.panels) assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
});
