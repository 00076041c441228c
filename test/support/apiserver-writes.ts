// Writes as the API server itself counts them (apiserver_request_total), so a claim of "no writes" never rests
// on the controller's own bookkeeping.
import { labelsOf, parseMetrics, total, type Samples } from './prometheus-text.ts';

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

/** What Slipway writes: its children, its own status, and Events. Status subresources of children are the
 * Deployment and CronJob controllers' writes, not Slipway's. */
export const SLIPWAY_WRITES: { resource: string; subresources: string[] }[] = [
  { resource: 'modeldeployments', subresources: ['', 'status'] },
  { resource: 'deployments', subresources: [''] },
  { resource: 'services', subresources: [''] },
  { resource: 'cronjobs', subresources: [''] },
  { resource: 'horizontalpodautoscalers', subresources: [''] },
  { resource: 'events', subresources: [''] },
];

/** The API server's own /metrics, read through the given kubectl. */
export async function apiServerMetrics(kubectl: (args: string[]) => Promise<string>): Promise<Samples> {
  return parseMetrics(await kubectl(['get', '--raw', '/metrics']));
}

/** Writes per `VERB resource[/subresource]` among `kinds`, from one scrape of the API server. */
export function writesBy(samples: Samples, kinds = SLIPWAY_WRITES): Map<string, number> {
  const out = new Map<string, number>();
  for (const [series, value] of samples) {
    if (!series.startsWith('apiserver_request_total{')) continue;
    const l = labelsOf(series);
    if (!WRITE_VERBS.has(l.verb ?? '') || l.dry_run) continue;
    if (!kinds.some((k) => k.resource === l.resource && k.subresources.includes(l.subresource ?? ''))) continue;
    const key = `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

/** The writes between two scrapes, only those that grew. */
export function writesBetween(before: Samples, after: Samples, kinds = SLIPWAY_WRITES): Map<string, number> {
  const a = writesBy(before, kinds);
  const out = new Map<string, number>();
  for (const [key, n] of writesBy(after, kinds)) if (n > (a.get(key) ?? 0)) out.set(key, n - (a.get(key) ?? 0));
  return out;
}

export const sumOf = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
export { total };
