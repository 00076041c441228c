// The Istio router: weights of the destinations of a VirtualService the user owns. In its http routes (all of
// them, or those named in trafficRouting.istio.routes), the destination whose host is the stable Service gets
// 100 − w and the canary Service's gets w. A host is matched in each of its forms (`churn`, `churn.ns`,
// `churn.ns.svc`, `churn.ns.svc.<cluster domain>`). Istio wants a route's weights to add up to 100, so a route
// that also sends to a third destination is refused rather than guessed at.
//
// With subsets (trafficRouting.istio.destinationRule), both destinations have the stable Service's host and are
// told apart by subset; Slipway points each subset of the DestinationRule at its revision (the label
// slipway.dev/revision) before any weight moves, and leaves the DestinationRule's other subsets and policies alone.
import type { KubeObject, ResourceType } from '../../../kube/resources.ts';
import { shareOf, type RouterOutcome, type TrafficRouter, type WeightTarget } from './router.ts';

export const VIRTUAL_SERVICE: ResourceType = { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService', plural: 'virtualservices', namespaced: true };
export const DESTINATION_RULE: ResourceType = { group: 'networking.istio.io', version: 'v1', kind: 'DestinationRule', plural: 'destinationrules', namespaced: true };
const LABEL_REVISION = 'slipway.dev/revision';

export interface Subsets {
  destinationRule: string;
  stable: string;
  canary: string;
}

interface Destination {
  destination?: { host?: string; subset?: string };
  weight?: number;
}
interface HttpRoute {
  name?: string;
  route?: Destination[];
}

export function hostIs(host: string | undefined, service: string, namespace: string): boolean {
  if (!host) return false;
  return host === service || host === `${service}.${namespace}` || host === `${service}.${namespace}.svc` || host.startsWith(`${service}.${namespace}.svc.`);
}

export class IstioRouter implements TrafficRouter {
  readonly resource = VIRTUAL_SERVICE;
  readonly name: string;
  readonly describe: string;
  private readonly routes: string[] | undefined;
  readonly subsets: Subsets | undefined;

  constructor(name: string, routes: string[] | undefined, subsets?: Subsets) {
    this.name = name;
    this.routes = routes && routes.length > 0 ? routes : undefined;
    this.subsets = subsets;
    this.describe = `VirtualService ${name}`;
  }

  /**
   * The DestinationRule with the stable subset selecting the stable revision and the canary subset the canary's
   * (the stable one when there is no canary); undefined update when it already does.
   */
  setSubsets(dr: KubeObject | null, t: { namespace: string; stableRevision: string; canaryRevision: string }): RouterOutcome {
    const s = this.subsets;
    if (!s) return { ok: true, current: 0 };
    if (!dr) {
      return { ok: false, reason: 'RouteNotFound', message: `DestinationRule ${s.destinationRule} does not exist in namespace ${t.namespace}: create it with subsets ${s.stable} and ${s.canary} (their labels are Slipway's), or fix spec.rollout.trafficRouting.istio.destinationRule` };
    }
    const copy = structuredClone(dr);
    const subsets = (copy.spec as { subsets?: { name?: string; labels?: Record<string, string> }[] } | undefined)?.subsets ?? [];
    const missing = [s.stable, s.canary].filter((n) => !subsets.some((x) => x.name === n));
    if (missing.length > 0) return { ok: false, reason: 'RouteMisconfigured', message: `DestinationRule ${s.destinationRule} has no subset named ${missing.join(' or ')}: add {name: ${missing[0]}} to its subsets` };
    let changed = false;
    for (const x of subsets) {
      const revision = x.name === s.stable ? t.stableRevision : x.name === s.canary ? t.canaryRevision : undefined;
      if (!revision || x.labels?.[LABEL_REVISION] === revision) continue;
      x.labels = { ...x.labels, [LABEL_REVISION]: revision };
      changed = true;
    }
    return changed ? { ok: true, update: copy, current: 0 } : { ok: true, current: 0 };
  }

  setWeight(vs: KubeObject | null, t: WeightTarget): RouterOutcome {
    const sub = this.subsets;
    const both = sub ? `destinations with host ${t.stableService} and subsets ${sub.stable} and ${sub.canary}` : `destinations with host ${t.stableService} and ${t.canaryService}`;
    if (!vs) {
      return { ok: false, reason: 'RouteNotFound', message: `VirtualService ${this.name} does not exist in namespace ${t.namespace}: create it with an http route whose ${both}, or fix spec.rollout.trafficRouting.istio.virtualService` };
    }
    const http = (vs.spec as { http?: HttpRoute[] } | undefined)?.http ?? [];
    const misconfigured = (message: string): RouterOutcome => ({ ok: false, reason: 'RouteMisconfigured', message: `VirtualService ${this.name}: ${message}` });
    const missing = (this.routes ?? []).filter((n) => !http.some((h) => h.name === n));
    if (missing.length > 0) return misconfigured(`has no http route named ${missing.join(', ')} (spec.rollout.trafficRouting.istio.routes)`);
    const ours = (d: Destination): 'stable' | 'canary' | undefined => {
      if (sub) {
        if (!hostIs(d.destination?.host, t.stableService, t.namespace)) return undefined;
        return d.destination?.subset === sub.stable ? 'stable' : d.destination?.subset === sub.canary ? 'canary' : undefined;
      }
      return hostIs(d.destination?.host, t.stableService, t.namespace) ? 'stable' : hostIs(d.destination?.host, t.canaryService, t.namespace) ? 'canary' : undefined;
    };
    const selected = http.map((h, i) => ({ h, i })).filter(({ h }) => (this.routes ? this.routes.includes(h.name ?? '') : (h.route ?? []).some((d) => ours(d) === 'stable') && (h.route ?? []).some((d) => ours(d) === 'canary')));
    if (selected.length === 0) {
      return misconfigured(sub
        ? `no http route has ${both}: add a destination with host ${t.stableService}, subset ${sub.canary} and weight 0 beside the one with subset ${sub.stable}`
        : `no http route has ${both}: add a destination with host ${t.canaryService} and weight 0 beside the one with host ${t.stableService}`);
    }
    for (const { h, i } of selected) {
      const route = h.route ?? [];
      const label = h.name ? `http route ${h.name}` : `http route ${i + 1}`;
      if (!route.some((d) => ours(d) === 'stable') || !route.some((d) => ours(d) === 'canary')) return misconfigured(`${label} needs ${both}`);
      if (route.some((d) => ours(d) === undefined)) return misconfigured(`${label} also sends to ${route.filter((d) => !ours(d)).map((d) => [d.destination?.host, d.destination?.subset].filter(Boolean).join(' subset ')).join(', ')}: Istio wants the weights of a route to add up to 100, so Slipway splits only routes with just its two destinations`);
    }
    const copy = structuredClone(vs);
    const copyHttp = (copy.spec as { http: HttpRoute[] }).http;
    let changed = false;
    let current = 0;
    for (const [n, { i }] of selected.entries()) {
      const route = copyHttp[i]?.route ?? [];
      // An unset weight: Istio gives a lone destination 100, and refuses a split with weights missing.
      const weightOf = (who: 'stable' | 'canary'): number => route.filter((d) => ours(d) === who).reduce((s, d) => s + (d.weight ?? (route.length === 1 ? 100 : 0)), 0);
      if (n === 0) current = shareOf(weightOf('stable'), weightOf('canary'));
      for (const d of route) {
        const w = ours(d) === 'canary' ? t.canaryWeight : 100 - t.canaryWeight;
        if (d.weight === w) continue;
        d.weight = w;
        changed = true;
      }
    }
    return changed ? { ok: true, update: copy, current } : { ok: true, current };
  }
}
