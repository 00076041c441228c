// Where a reconcile's time goes: the requests it sent (each with its wait for the rate limiter and its latency),
// gathered through the async context of the reconcile that sent them, so no call site has to pass anything along.
// It lives beside the client, which records into it; the controller (src/runtime) logs one line per reconcile at
// level `trace` (SLIPWAY_LOG_LEVEL=trace) with the key, how long it waited in the queue, how long it ran, and its
// requests in order.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface TracedRequest {
  /** `PATCH apps/v1/deployments/name`: the method and the path without `/apis/` and the namespace. */
  request: string;
  code: number;
  ms: number;
  /** Time waited for the client-side rate limit before it was sent. */
  throttledMs: number;
}

export interface ReconcileTrace {
  requests: TracedRequest[];
}

const storage = new AsyncLocalStorage<ReconcileTrace>();

/** Runs fn with a trace that collects the requests it sends (when tracing is on; else runs it as is). */
export function traced<T>(enabled: boolean, fn: () => Promise<T>): { result: Promise<T>; trace: ReconcileTrace | undefined } {
  if (!enabled) return { result: fn(), trace: undefined };
  const trace: ReconcileTrace = { requests: [] };
  return { result: storage.run(trace, fn), trace };
}

/** The trace of the reconcile this code runs for, if any. */
export function currentTrace(): ReconcileTrace | undefined {
  return storage.getStore();
}
