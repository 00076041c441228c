// The Prometheus metric provider: instant queries over the HTTP API (/api/v1/query), templated for each revision,
// read as one number, as counts (events and trials) or as a histogram (bucket counts by `le`, and the sum of the
// observed values when a sum query is given). A query that returns nothing is "no data", never zero trials passed
// off as a result.
import { send, type Credentials, type HttpAnswer } from '../runtime/http.ts';
import type { MetricSpec, MetricValue } from './judge.ts';

interface PromResponse {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export interface RevisionVars {
  namespace: string;
  name: string;
  revision: string;
  role: 'canary' | 'stable';
  /** The Service that carries the revision's traffic through a route: <name> for stable, <name>-canary for the canary. */
  service: string;
  /** The analysis window, e.g. `95s`. */
  window: string;
}

/** The queries Slipway writes for a preset (MLServer's own REST metrics, scraped per pod with revision labels). */
export function presetQueries(preset: NonNullable<MetricSpec['preset']>): NonNullable<MetricSpec['prometheus']> {
  const sel = 'namespace="{{namespace}}",model_deployment="{{name}}",revision="{{revision}}",path=~".*/infer"';
  const gw = 'service="{{namespace}}-{{service}}-http-80@kubernetesgateway"';
  switch (preset) {
    case 'mlserver-error-rate':
      return {
        events: `sum(increase(rest_server_requests_total{${sel},status_code=~"5.."}[{{window}}]))`,
        trials: `sum(increase(rest_server_requests_total{${sel}}[{{window}}]))`,
      };
    case 'mlserver-latency':
      return {
        histogram: `sum by (le) (increase(rest_server_request_duration_seconds_bucket{${sel}}[{{window}}]))`,
        sum: `sum(increase(rest_server_request_duration_seconds_sum{${sel}}[{{window}}]))`,
      };
    // Traefik as the Gateway API implementation: what the gateway saw of each revision's Service (a 502 of a pod
    // that died counts too), named <namespace>-<service>-<port name>-<port>@kubernetesgateway.
    case 'traefik-gateway-error-rate':
      return {
        events: `sum(increase(traefik_service_requests_total{${gw},code=~"5.."}[{{window}}]))`,
        trials: `sum(increase(traefik_service_requests_total{${gw}}[{{window}}]))`,
      };
    case 'traefik-gateway-latency':
      return {
        histogram: `sum by (le) (increase(traefik_service_request_duration_seconds_bucket{${gw}}[{{window}}]))`,
        sum: `sum(increase(traefik_service_request_duration_seconds_sum{${gw}}[{{window}}]))`,
      };
  }
}

export function fillTemplate(query: string, vars: RevisionVars, encode: (s: string) => string = (s) => s): string {
  return query.replace(/\{\{\s*(namespace|name|revision|role|service|window)\s*\}\}/g, (_m, k: keyof RevisionVars) => encode(vars[k]));
}

export class PrometheusError extends Error {}

/** One instant query; its vector as (labels, value) pairs. */
export async function instantQuery(address: string, query: string, opts: { timeoutMs?: number; credentials?: Credentials | undefined } = {}): Promise<{ labels: Record<string, string>; value: number }[]> {
  const url = new URL('api/v1/query', address.endsWith('/') ? address : `${address}/`);
  url.searchParams.set('query', query);
  let res: HttpAnswer;
  try {
    res = await send('GET', url.href, { credentials: opts.credentials, timeoutMs: opts.timeoutMs ?? 10_000, headers: { accept: 'application/json' } });
  } catch (err) {
    throw new PrometheusError(`Prometheus at ${url.origin} cannot be reached: ${(err as Error).message}`);
  }
  let body: PromResponse | undefined;
  try {
    body = JSON.parse(res.body) as PromResponse;
  } catch {
    body = undefined;
  }
  if (res.status !== 200 || body?.status !== 'success') throw new PrometheusError(`Prometheus at ${url.origin} answered ${res.status}: ${body?.error ?? (res.body.trim().slice(0, 200) || 'no reason given')}`);
  if (body.data?.resultType !== 'vector') throw new PrometheusError(`the query gives a ${body.data?.resultType ?? 'missing'} result; an instant vector is needed`);
  return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
}

/** The value of one revision for one metric, or undefined when Prometheus has no data for it. */
export async function measureRevision(address: string, q: NonNullable<MetricSpec['prometheus']>, vars: RevisionVars, credentials?: Credentials): Promise<MetricValue | undefined> {
  const one = async (query: string): Promise<number | undefined> => {
    const r = await instantQuery(address, fillTemplate(query, vars), { credentials });
    return r.length === 0 || Number.isNaN(r[0]?.value) ? undefined : r.reduce((s, x) => s + x.value, 0);
  };
  if (q.events && q.trials) {
    const [events, trials] = await Promise.all([one(q.events), one(q.trials)]);
    if (trials === undefined) return undefined;
    // increase() extrapolates: counts are rounded, and events never exceed trials.
    const t = Math.round(trials);
    return { kind: 'counts', events: Math.min(t, Math.round(events ?? 0)), trials: t };
  }
  if (q.histogram) {
    const [r, sum] = await Promise.all([instantQuery(address, fillTemplate(q.histogram, vars), { credentials }), q.sum ? one(q.sum) : undefined]);
    if (r.length === 0) return undefined;
    const buckets = r.map((x) => ({ le: x.labels.le === '+Inf' ? Infinity : Number(x.labels.le), count: x.value }));
    return { kind: 'histogram', buckets, ...(sum !== undefined ? { sum } : {}) };
  }
  const v = q.query ? await one(q.query) : undefined;
  return v === undefined ? undefined : { kind: 'value', value: v };
}
