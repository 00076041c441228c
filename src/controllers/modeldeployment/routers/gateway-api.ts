// The Gateway API router: weights on the backendRefs of an HTTPRoute the user owns. Each rule that names both the
// stable Service and the canary Service gets their weights (100 − w and w); rules naming only one of them, other
// backends, filters and matches stay as they are. HTTPRoute rules and backendRefs are atomic lists in the Gateway
// API's CRDs, so the route is written whole over the resourceVersion it was read at (ADR 0013).
import type { KubeObject, ResourceType } from '../../../kube/resources.ts';
import { shareOf, type RouterOutcome, type TrafficRouter, type WeightTarget } from './router.ts';

export const HTTP_ROUTE: ResourceType = { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true };

interface BackendRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  weight?: number;
}
interface Rule {
  backendRefs?: BackendRef[];
}

/** A backendRef naming `service` in the route's own namespace. */
function names(ref: BackendRef, service: string, namespace: string): boolean {
  return (ref.group ?? '') === '' && (ref.kind ?? 'Service') === 'Service' && ref.name === service && (ref.namespace ?? namespace) === namespace;
}

export class GatewayApiRouter implements TrafficRouter {
  readonly resource = HTTP_ROUTE;
  readonly name: string;
  readonly describe: string;

  constructor(name: string) {
    this.name = name;
    this.describe = `HTTPRoute ${name}`;
  }

  setWeight(route: KubeObject | null, t: WeightTarget): RouterOutcome {
    if (!route) {
      return {
        ok: false,
        reason: 'RouteNotFound',
        message: `HTTPRoute ${this.name} does not exist in namespace ${t.namespace}: create it with a rule whose backendRefs are the Services ${t.stableService} and ${t.canaryService} (port 80), or fix spec.rollout.trafficRouting.gatewayAPI.httpRoute`,
      };
    }
    const rules = (route.spec as { rules?: Rule[] } | undefined)?.rules ?? [];
    const split = rules.map((r, i) => ({ i, refs: r.backendRefs ?? [] })).filter(({ refs }) => refs.some((b) => names(b, t.stableService, t.namespace)) && refs.some((b) => names(b, t.canaryService, t.namespace)));
    if (split.length === 0) {
      return {
        ok: false,
        reason: 'RouteMisconfigured',
        message: `HTTPRoute ${this.name} has no rule whose backendRefs name both Service ${t.stableService} and Service ${t.canaryService}: add {name: ${t.canaryService}, port: 80, weight: 0} beside {name: ${t.stableService}, port: 80} in the rule that serves the model`,
      };
    }
    let current = 0;
    let changed = false;
    const copy = structuredClone(route);
    const copyRules = (copy.spec as { rules: Rule[] }).rules;
    for (const { i } of split) {
      const refs = copyRules[i]?.backendRefs ?? [];
      const stable = refs.filter((b) => names(b, t.stableService, t.namespace));
      const canary = refs.filter((b) => names(b, t.canaryService, t.namespace));
      // The first rule that splits says what the route does now (an unset weight is 1 in the Gateway API).
      if (i === split[0]?.i) current = shareOf(stable.reduce((s, b) => s + (b.weight ?? 1), 0), canary.reduce((s, b) => s + (b.weight ?? 1), 0));
      for (const [refs, w] of [[stable, 100 - t.canaryWeight], [canary, t.canaryWeight]] as const) {
        for (const b of refs) {
          if (b.weight === w) continue;
          b.weight = w;
          changed = true;
        }
      }
    }
    return changed ? { ok: true, update: copy, current } : { ok: true, current };
  }
}
