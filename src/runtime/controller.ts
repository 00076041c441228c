// A controller: a work queue of keys and workers that reconcile them. It turns a reconcile's outcome into
// what happens to the key next: forgotten on success, requeued at the time the reconciler asked for, retried
// with backoff on failure (at once on a conflict, after Retry-After when throttled).
import { classify } from '../kube/errors.ts';
import type { Clock } from './clock.ts';
import { errorMessage, type Logger } from './log.ts';
import type { ControllerMetrics } from './metrics.ts';
import { traced } from '../kube/trace.ts';
import { WorkQueue, type Priority } from './work-queue.ts';

export interface ReconcileResult {
  /** Come back after this long even if nothing changes (a pause ends, an analysis is due). */
  requeueAfterMs?: number;
  /** Why: logged, so a requeue is never a mystery. */
  reason?: string;
}

export interface Reconciler {
  readonly name: string;
  reconcile(key: string): Promise<ReconcileResult | undefined>;
  /**
   * A reconcile of `key` failed for the `failures`-th time in a row: the place to tell the user (a condition, an
   * Event) once retrying alone does not help. Errors thrown here are logged, never retried.
   */
  failed?(key: string, err: unknown, failures: number): Promise<void>;
}

export interface ControllerOptions {
  workers?: number;
  clock?: Clock;
  metrics: ControllerMetrics;
  logger: Logger;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly workers: number;
  private readonly metrics: ControllerMetrics;
  private readonly log: Logger;
  /** How long each key in flight waited in the queue (kept only while tracing). */
  private readonly waited = new Map<string, number>();
  private running: Promise<void>[] = [];

  constructor(reconciler: Reconciler, opts: ControllerOptions) {
    this.name = reconciler.name;
    this.reconciler = reconciler;
    this.workers = opts.workers ?? 4;
    this.metrics = opts.metrics;
    this.log = opts.logger.child({ controller: this.name });
    const name = this.name;
    this.queue = new WorkQueue({
      ...(opts.clock ? { clock: opts.clock } : {}),
      observer: {
        added: () => this.metrics.queueAdds.inc({ name }),
        retried: () => this.metrics.queueRetries.inc({ name }),
        dequeued: (key, waitedMs) => {
          this.metrics.queueWait.observe({ name }, waitedMs / 1000);
          if (this.log.isLevelEnabled('trace')) this.waited.set(key, waitedMs);
        },
      },
    });
  }

  /** Queues a key; `high` for a change to an object already worked on (see Priority). */
  enqueue(key: string, priority: Priority = 'normal'): void {
    this.queue.add(key, priority);
  }

  start(): void {
    for (let i = 0; i < this.workers; i++) this.running.push(this.work());
  }

  /** Finishes the reconciles in flight, then returns. */
  async stop(): Promise<void> {
    await this.queue.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }

  collectMetrics(): void {
    this.metrics.queueDepth.set({ name: this.name }, this.queue.length);
    this.metrics.queueInFlight.set({ name: this.name }, this.queue.inFlight);
    this.metrics.queueOldestAge.set({ name: this.name }, this.queue.oldestAgeMs() / 1000);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const end = this.metrics.reconcileDuration.startTimer({ controller: this.name });
    const started = performance.now();
    const { result: running, trace } = traced(this.log.isLevelEnabled('trace'), () => this.reconciler.reconcile(key));
    try {
      const result = await running;
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) {
        this.queue.addAfter(key, result.requeueAfterMs);
        this.metrics.reconcileTotal.inc({ controller: this.name, result: 'requeue' });
        this.log.debug({ key, afterMs: result.requeueAfterMs, reason: result.reason }, 'requeue');
      } else {
        this.metrics.reconcileTotal.inc({ controller: this.name, result: 'success' });
      }
    } catch (err) {
      const cls = classify(err);
      this.metrics.reconcileTotal.inc({ controller: this.name, result: 'error' });
      this.metrics.reconcileErrors.inc({ controller: this.name, class: cls });
      const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (cls === 'Conflict') {
        // Someone wrote in between; the cache will catch up, and the next reconcile reads it.
        this.log.debug({ key, err: errorMessage(err) }, 'conflict; requeued');
        this.queue.addRateLimited(key);
      } else if (cls === 'TooManyRequests' && retryAfter !== undefined) {
        this.log.warn({ key, retryAfter }, 'throttled by the API server');
        this.queue.addAfter(key, retryAfter * 1000);
      } else {
        this.log.error({ key, class: cls, retries: this.queue.retries(key), err: errorMessage(err) }, 'reconcile failed');
        this.queue.addRateLimited(key);
      }
      if (cls !== 'Conflict') {
        await this.reconciler.failed?.(key, err, this.queue.retries(key)).catch((reportErr: unknown) => {
          this.log.warn({ key, err: errorMessage(reportErr) }, 'could not report a failed reconcile');
        });
      }
    } finally {
      end();
      if (trace) {
        const queuedMs = this.waited.get(key);
        this.log.trace({ key, queuedMs: queuedMs === undefined ? undefined : Math.round(queuedMs), ms: Math.round(performance.now() - started), requests: trace.requests }, 'reconcile trace');
      }
      this.waited.delete(key);
    }
  }
}
