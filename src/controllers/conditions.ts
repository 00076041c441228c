// Status conditions the way kstatus, Flux, Helm 4 and `kubectl wait` read them: Ready, Reconciling and
// Stalled (abnormal-true), each with a CamelCase reason, and a transition time that moves only on a change.
import type { Condition } from '../api/common.ts';
import { KubeApiError } from '../kube/errors.ts';
import { rfc3339 } from '../kube/time.ts';
import { errorMessage } from '../runtime/log.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/** Builds the new condition list: a condition keeps its lastTransitionTime while its status is unchanged. */
export function mergeConditions(previous: Condition[] | undefined, next: ConditionInput[], generation: number | undefined, now: Date): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : rfc3339(now);
    return { ...c, ...(generation !== undefined ? { observedGeneration: generation } : {}), lastTransitionTime };
  });
}

export const findCondition = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  conditions?.find((c) => c.type === type);

export const isTrue = (conditions: Condition[] | undefined, type: string): boolean => findCondition(conditions, type)?.status === 'True';

/** Consecutive failed reconciles of one key (not refusals: those are told at once) before it goes Stalled (about 3 s of backoff). */
export const STALL_AFTER_FAILURES = 5;

/**
 * What the user is told once a key has failed STALL_AFTER_FAILURES times in a row: the same words at every later
 * retry (no running count), so a failure that lasts is written to status once, not at each retry.
 */
export const apiServerFailure = (err: unknown): string =>
  `the API server keeps failing (${STALL_AFTER_FAILURES} attempts in a row or more, retrying with backoff): ${err instanceof KubeApiError ? err.statusMessage : errorMessage(err)}`;
