// The local Prometheus: built from its Go module (3.16, Kubernetes service discovery only: the Debian package has
// no kubernetes_sd_configs), discovering pods through the local API server
// (kubernetes_sd_configs) and scraping the model servers the pod runner runs, plus the gateway. Series carry
// `namespace`, `pod`, and Slipway's `model_deployment` and `revision` labels, which is what canary analysis asks
// for. It scrapes only addresses in the pod runner's half of the pod range and loopback: pods that really run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { eventually } from './eventually.ts';
import type { Started } from './processes.ts';

export const SCRAPE_INTERVAL_SECONDS = 5;

export interface PrometheusInfo {
  url: string;
  scrapeIntervalSeconds: number;
}

export function prometheusConfig(opts: { server: string; caCert: string; clientCert: string; clientKey: string; gatewayMetrics: string }): string {
  const label = (name: string): string => `__meta_kubernetes_pod_label_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
  const gateway = new URL(opts.gatewayMetrics);
  return yaml.dump({
    global: { scrape_interval: `${SCRAPE_INTERVAL_SECONDS}s`, scrape_timeout: `${SCRAPE_INTERVAL_SECONDS - 1}s`, evaluation_interval: `${SCRAPE_INTERVAL_SECONDS}s` },
    scrape_configs: [
      {
        job_name: 'pods',
        kubernetes_sd_configs: [
          {
            role: 'pod',
            api_server: opts.server,
            tls_config: { ca_file: opts.caCert, cert_file: opts.clientCert, key_file: opts.clientKey },
          },
        ],
        relabel_configs: [
          // Pods that ask to be scraped (the mlserver preset's annotations), on addresses the pod runner hands out.
          { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], regex: 'true', action: 'keep' },
          { source_labels: ['__meta_kubernetes_pod_ip'], regex: '10\\.244\\.(12[89]|1[3-9][0-9]|2[0-4][0-9]|25[0-5])\\.[0-9]+', action: 'keep' },
          { source_labels: ['__meta_kubernetes_pod_ip', '__meta_kubernetes_pod_annotation_prometheus_io_port'], regex: '(.+);([0-9]+)', replacement: '$1:$2', target_label: '__address__' },
          { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_path'], regex: '(.+)', target_label: '__metrics_path__' },
          { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
          { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
          { source_labels: [label('slipway.dev/model-deployment')], target_label: 'model_deployment' },
          { source_labels: [label('slipway.dev/revision')], target_label: 'revision' },
        ],
      },
      { job_name: 'gateway', metrics_path: gateway.pathname, static_configs: [{ targets: [gateway.host] }] },
    ],
  }, { lineWidth: -1 });
}

export interface PrometheusContext {
  start: (name: string, args: string[], program: string) => Started;
  binDir: string;
  dir: string;
  port: number;
  config: Parameters<typeof prometheusConfig>[0];
}

export async function startPrometheus(ctx: PrometheusContext): Promise<PrometheusInfo> {
  const dir = join(ctx.dir, 'prometheus');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, prometheusConfig(ctx.config));
  const url = `http://127.0.0.1:${ctx.port}`;
  const p = ctx.start('prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    '--storage.tsdb.retention.time=1d',
    `--web.listen-address=127.0.0.1:${ctx.port}`,
    '--log.level=warn',
  ], join(ctx.binDir, 'prometheus'));
  await eventually('Prometheus ready', async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true, { abort: p.exited, timeoutMs: 60_000, intervalMs: 250 });
  return { url, scrapeIntervalSeconds: SCRAPE_INTERVAL_SECONDS };
}
