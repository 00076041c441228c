// A work queue of keys with client-go's semantics: an added key is queued once however often it is added
// (dedupe); a key being processed is never handed to a second worker, and if it is added meanwhile it is
// queued again when the first worker is done; delayed adds keep the earliest due time; failures requeue with
// per-key exponential backoff, bounded overall by a token bucket.
import { ClientRateLimiter } from '../kube/rate-limit.ts';
import { systemClock, type Clock, type Timer } from './clock.ts';

export interface RateLimiter {
  /** How long to wait before the key's next retry. */
  when(key: string): number;
  forget(key: string): void;
  retries(key: string): number;
}

/** Per-key exponential backoff: base·2^failures, capped. */
export class ExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(baseMs = 100, maxMs = 300_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 40));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** A token bucket over all keys: a storm of failures cannot turn into a storm of requests. */
export class TokenBucketRateLimiter implements RateLimiter {
  private readonly bucket: ClientRateLimiter;

  constructor(qps = 10, burst = 100, clock: Clock = systemClock) {
    this.bucket = new ClientRateLimiter({ qps, burst }, () => clock.now());
  }

  when(): number {
    return this.bucket.reserve();
  }

  forget(): void {}

  retries(): number {
    return 0;
  }
}

/** The longest wait any of the limiters asks for (client-go's MaxOfRateLimiter). */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  retries(key: string): number {
    return Math.max(...this.limiters.map((l) => l.retries(key)));
  }
}

export function defaultRateLimiter(clock: Clock = systemClock): RateLimiter {
  return new MaxOfRateLimiter(new ExponentialRateLimiter(100, 300_000), new TokenBucketRateLimiter(10, 100, clock));
}

export interface QueueObserver {
  added?(key: string): void;
  /** A key left the queue for a worker after waiting this long. */
  dequeued?(key: string, waitedMs: number): void;
  retried?(key: string): void;
}

/**
 * How soon a key should be served among those ready: `high` for a change to an object already being worked on
 * (its children moved, its spec was edited), `normal` for keys seen for the first time (a create, the initial list
 * of a cache, a resync). A key's follow-up then never waits behind a first pass over thousands of others, as
 * controller-runtime's priority queue serves the initial list last. Within a lane, first in, first out.
 */
export type Priority = 'high' | 'normal';

/** A first-in first-out list with O(1) push and shift (an array's shift moves every element). */
class Fifo {
  private items: (string | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(key: string): void {
    this.items.push(key);
  }

  peek(): string | undefined {
    return this.items[this.head];
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const key = this.items[this.head];
    this.items[this.head++] = undefined;
    // Compacted once the consumed part is most of it: amortised O(1).
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return key;
  }
}

export class WorkQueue {
  /** The lanes; a key is in at most one at a time (`lane` says which), a stale entry left by a promotion is skipped. */
  private readonly high = new Fifo();
  private readonly normal = new Fifo();
  private readonly lane = new Map<string, Priority>();
  /** The lane a key asked for while it was being processed: where done() queues it. */
  private readonly wanted = new Map<string, Priority>();
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly waiting = new Map<string, { at: number; timer: Timer }>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private readonly drained: (() => void)[] = [];
  private shuttingDown = false;
  private readonly clock: Clock;
  private readonly limiter: RateLimiter;
  private readonly observer: QueueObserver;

  constructor(opts: { clock?: Clock; rateLimiter?: RateLimiter; observer?: QueueObserver } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.limiter = opts.rateLimiter ?? defaultRateLimiter(this.clock);
    this.observer = opts.observer ?? {};
  }

  /** Keys ready for a worker (not counting delayed ones). */
  get length(): number {
    return this.lane.size;
  }

  get delayed(): number {
    return this.waiting.size;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  /** How long the oldest ready key has waited (the head of either lane). */
  oldestAgeMs(): number {
    let oldest: number | undefined;
    for (const lane of [this.high, this.normal]) {
      const first = lane.peek();
      const at = first === undefined ? undefined : this.addedAt.get(first);
      if (at !== undefined && (oldest === undefined || at < oldest)) oldest = at;
    }
    return oldest === undefined ? 0 : this.clock.now() - oldest;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: string, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) {
      // Queued already: a high-priority add moves it to the front lane (it keeps its place in time).
      if (priority === 'high') {
        if (this.processing.has(key)) this.wanted.set(key, 'high');
        else if (this.lane.get(key) === 'normal') this.enter(key, 'high');
      }
      return;
    }
    this.observer.added?.(key);
    this.dirty.add(key);
    this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) {
      this.wanted.set(key, priority === 'high' || this.wanted.get(key) === 'high' ? 'high' : 'normal');
      return; // queued again by done()
    }
    this.push(key, priority);
  }

  /** Adds after a delay; a key already waiting keeps the earlier of the two due times. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const existing = this.waiting.get(key);
    if (existing && existing.at <= at) return;
    existing?.timer.cancel();
    const timer = this.clock.setTimer(ms, () => {
      this.waiting.delete(key);
      this.add(key);
    });
    this.waiting.set(key, { at, timer });
  }

  /** Requeues a key that failed, after its backoff. */
  addRateLimited(key: string): void {
    this.observer.retried?.(key);
    this.addAfter(key, this.limiter.when(key));
  }

  /** The key succeeded: its backoff starts from the beginning next time. */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  retries(key: string): number {
    return this.limiter.retries(key);
  }

  /** The next key to work on; undefined once the queue is shut down. The caller must call done(key). */
  get(): Promise<string | undefined> {
    const key = this.take();
    if (key !== undefined || this.shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    const priority = this.wanted.get(key) ?? 'normal';
    this.wanted.delete(key);
    if (this.dirty.has(key)) this.push(key, priority);
    if (this.processing.size === 0) for (const d of this.drained.splice(0)) d();
  }

  /** Stops handing out keys; resolves when every key in flight is done. */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) w.timer.cancel();
    this.waiting.clear();
    for (const g of this.getters.splice(0)) g(undefined);
    if (this.processing.size > 0) await new Promise<void>((r) => this.drained.push(r));
  }

  private enter(key: string, priority: Priority): void {
    this.lane.set(key, priority);
    (priority === 'high' ? this.high : this.normal).push(key);
  }

  private push(key: string, priority: Priority): void {
    this.enter(key, priority);
    const getter = this.getters.shift();
    if (getter) getter(this.take());
  }

  /** The next key: the high lane first; entries a promotion left behind in the normal lane are skipped. */
  private next(): string | undefined {
    for (const [fifo, name] of [[this.high, 'high'], [this.normal, 'normal']] as const) {
      while (fifo.size > 0) {
        const key = fifo.shift();
        if (key !== undefined && this.lane.get(key) === name) {
          this.lane.delete(key);
          return key;
        }
      }
    }
    return undefined;
  }

  private take(): string | undefined {
    const key = this.next();
    if (key === undefined) return undefined;
    this.processing.add(key);
    this.dirty.delete(key);
    this.observer.dequeued?.(key, this.clock.now() - (this.addedAt.get(key) ?? this.clock.now()));
    this.addedAt.delete(key);
    return key;
  }
}
