// What a traffic router is: a pure planner that, given the user's routing object as observed, returns the copy
// with the canary's weight set (or nothing when it already is), the weight the object gives the canary, or a
// problem a person can fix. Slipway changes only the weights of the two destinations it manages, the stable
// Service `<name>` and the canary Service `<name>-canary`, and leaves everything else in the object as it is.
// The write is a replace with the observed resourceVersion: a concurrent edit makes it fail and plan again.
import type { KubeObject, ResourceType } from '../../../kube/resources.ts';

export interface WeightTarget {
  namespace: string;
  stableService: string;
  canaryService: string;
  /** The canary's share, 0–100. */
  canaryWeight: number;
}

export type RouterOutcome =
  | { ok: true; /** The object to write; undefined when it already has the weights. */ update?: KubeObject; /** The canary's share the object gives now. */ current: number }
  | { ok: false; reason: 'RouteNotFound' | 'RouteMisconfigured'; message: string };

export interface TrafficRouter {
  readonly resource: ResourceType;
  /** Kind and name as a person reads them: `HTTPRoute churn`. */
  readonly describe: string;
  readonly name: string;
  setWeight(route: KubeObject | null, target: WeightTarget): RouterOutcome;
}

/** The canary's share of two weights (0 when both are 0: nothing reaches the canary). */
export function shareOf(stable: number, canary: number): number {
  return stable + canary === 0 ? 0 : Math.round((100 * canary) / (stable + canary));
}
