// The local Prometheus: built from its Go module (3.16, Kubernetes service discovery only: the Debian package has
// no kubernetes_sd_configs), discovering pods through the local API server
// (kubernetes_sd_configs) and scraping the model servers the pod runner runs, plus the gateway. Series carry
// `namespace`, `pod`, and Slipway's `model_deployment` and `revision` labels, which is what canary analysis asks
// for. It scrapes only addresses in the pod runner's half of the pod range and loopback: pods that really run.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { eventually } from './eventually.ts';
import type { Started } from './processes.ts';
import { send } from '../src/runtime/http.ts';

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
  /** Serve over TLS and ask for basic auth (Prometheus's web config): a Prometheus that needs credentials. */
  web?: { certFile: string; keyFile: string; caFile: string; username: string; password: string; bcryptHash: string };
}

export async function startPrometheus(ctx: PrometheusContext): Promise<PrometheusInfo> {
  const dir = join(ctx.dir, 'prometheus');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, prometheusConfig(ctx.config));
  const web = ctx.web;
  const url = `${web ? 'https' : 'http'}://127.0.0.1:${ctx.port}`;
  const webArgs: string[] = [];
  if (web) {
    const webConfig = join(dir, 'web.yml');
    writeFileSync(webConfig, yaml.dump({ tls_server_config: { cert_file: web.certFile, key_file: web.keyFile }, basic_auth_users: { [web.username]: web.bcryptHash } }));
    webArgs.push(`--web.config.file=${webConfig}`);
  }
  const p = ctx.start('prometheus', [
    ...webArgs,
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    '--storage.tsdb.retention.time=1d',
    `--web.listen-address=127.0.0.1:${ctx.port}`,
    '--log.level=warn',
  ], join(ctx.binDir, 'prometheus'));
  const credentials = web ? { username: web.username, password: web.password, ca: readFileSync(web.caFile, 'utf8') } : undefined;
  await eventually('Prometheus ready', async () => (await send('GET', `${url}/-/ready`, { credentials, timeoutMs: 2000 }).catch(() => undefined))?.status === 200, { abort: p.exited, timeoutMs: 60_000, intervalMs: 250 });
  return { url, scrapeIntervalSeconds: SCRAPE_INTERVAL_SECONDS };
}
