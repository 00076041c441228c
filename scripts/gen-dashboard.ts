// Writes charts/slipway/dashboards/slipway.json: the Grafana dashboard of the controller and of rollouts, from a
// short description of its panels (so the JSON is generated, reviewed as code, and tested against the metrics
// the controller exports). `npm run gen:dashboard`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Panel { title: string; type: 'timeseries' | 'stat' | 'table'; exprs: [string, string][]; unit?: string; w?: number }

const ds = { type: 'prometheus', uid: '${datasource}' };

const panels: (Panel | { row: string })[] = [
  { row: 'Rollouts' },
  { title: 'ModelDeployments by phase', type: 'stat', exprs: [['sum by (phase) (slipway_modeldeployment_phase{namespace=~"$namespace"})', '{{phase}}']], w: 12 },
  { title: 'Rollbacks (1 h)', type: 'stat', exprs: [['sum(increase(slipway_rollbacks_total{namespace=~"$namespace"}[1h]))', 'rollbacks']], w: 6 },
  { title: 'Analysis verdicts (1 h)', type: 'stat', exprs: [['sum by (verdict) (increase(slipway_analysis_measurements_total[1h]))', '{{verdict}}']], w: 6 },
  { title: 'Canary weight', type: 'timeseries', exprs: [['slipway_canary_weight_percent{namespace=~"$namespace"} > 0', '{{namespace}}/{{name}}']], unit: 'percent', w: 12 },
  { title: 'Not healthy', type: 'table', exprs: [['slipway_modeldeployment_phase{namespace=~"$namespace",phase!="Healthy"} == 1', '{{namespace}}/{{name}} {{phase}}']], w: 12 },
  { title: 'Rollbacks by ModelDeployment', type: 'timeseries', exprs: [['sum by (namespace, name) (increase(slipway_rollbacks_total{namespace=~"$namespace"}[$__rate_interval]))', '{{namespace}}/{{name}}']], w: 12 },
  { title: 'Notifications', type: 'timeseries', exprs: [['sum by (kind, result) (rate(slipway_notifications_total[$__rate_interval]))', '{{kind}} {{result}}']], unit: 'ops', w: 12 },
  { row: 'Controller' },
  { title: 'Reconciles by result', type: 'timeseries', exprs: [['sum by (result) (rate(slipway_reconcile_total[$__rate_interval]))', '{{result}}']], unit: 'ops', w: 8 },
  { title: 'Reconcile duration p50 / p99', type: 'timeseries', exprs: [['histogram_quantile(0.5, sum by (le) (rate(slipway_reconcile_duration_seconds_bucket[$__rate_interval])))', 'p50'], ['histogram_quantile(0.99, sum by (le) (rate(slipway_reconcile_duration_seconds_bucket[$__rate_interval])))', 'p99']], unit: 's', w: 8 },
  { title: 'Work queue depth and oldest item', type: 'timeseries', exprs: [['sum(slipway_workqueue_depth)', 'depth'], ['max(slipway_workqueue_oldest_item_age_seconds)', 'oldest (s)']], w: 8 },
  { title: 'API requests by code', type: 'timeseries', exprs: [['sum by (code) (rate(slipway_api_requests_total[$__rate_interval]))', '{{code}}']], unit: 'reqps', w: 8 },
  { title: 'Wait for the client-side rate limit, p99', type: 'timeseries', exprs: [['histogram_quantile(0.99, sum by (le) (rate(slipway_api_rate_limiter_wait_seconds_bucket[$__rate_interval])))', 'p99']], unit: 's', w: 8 },
  { title: 'Reconcile errors by class', type: 'timeseries', exprs: [['sum by (class) (rate(slipway_reconcile_errors_total[$__rate_interval]))', '{{class}}']], unit: 'ops', w: 8 },
  { title: 'Leader, watch restarts', type: 'timeseries', exprs: [['max(slipway_leader)', 'leader'], ['sum(increase(slipway_watch_restarts_total[$__rate_interval]))', 'watch restarts']], w: 8 },
  { title: 'Memory (RSS) and CPU', type: 'timeseries', exprs: [['slipway_process_resident_memory_bytes', 'RSS {{pod}}'], ['rate(slipway_process_cpu_seconds_total[$__rate_interval])', 'CPU {{pod}}']], w: 12 },
  { title: 'Audit trail: queued, unpushed, push failures', type: 'timeseries', exprs: [['max(slipway_audit_queued)', 'queued'], ['max(slipway_audit_unpushed_commits)', 'unpushed'], ['sum(increase(slipway_audit_push_failures_total[$__rate_interval]))', 'push failures']], w: 12 },
];

let id = 1;
let x = 0;
let y = 0;
const out = panels.map((p) => {
  if ('row' in p) {
    if (x > 0) { y += 8; x = 0; }
    const r = { id: id++, type: 'row', title: p.row, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y } };
    y += 1;
    return r;
  }
  const w = p.w ?? 12;
  if (x + w > 24) { x = 0; y += 8; }
  const panel = {
    id: id++,
    type: p.type,
    title: p.title,
    datasource: ds,
    gridPos: { h: 8, w, x, y },
    fieldConfig: { defaults: { ...(p.unit ? { unit: p.unit } : {}) }, overrides: [] },
    options: p.type === 'table' ? { showHeader: true } : {},
    targets: p.exprs.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: ds, expr, legendFormat, ...(p.type === 'table' ? { instant: true, format: 'table' } : {}) })),
  };
  x += w;
  return panel;
});

const dashboard = {
  uid: 'slipway',
  title: 'Slipway',
  tags: ['slipway', 'mlops', 'rollouts'],
  timezone: 'browser',
  schemaVersion: 39,
  version: 1,
  refresh: '30s',
  time: { from: 'now-6h', to: 'now' },
  templating: {
    list: [
      { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus' },
      { name: 'namespace', type: 'query', datasource: ds, query: 'label_values(slipway_modeldeployment_phase, namespace)', includeAll: true, multi: true, allValue: '.*', current: { text: 'All', value: '$__all' }, refresh: 2 },
    ],
  },
  panels: out,
};
const file = join(import.meta.dirname, '..', 'charts', 'slipway', 'dashboards', 'slipway.json');
writeFileSync(file, `${JSON.stringify(dashboard, null, 2)}\n`);
console.log(`wrote ${file}`);
