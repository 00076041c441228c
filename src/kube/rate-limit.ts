// The client-side rate limit every Kubernetes client has (client-go's QPS and Burst): a token bucket in front of
// every request, so that a controller catching up on thousands of objects spreads its requests instead of
// flooding a shared API server. Requests wait for a token in the order they asked; the wait is reported so that a
// limit set too low shows in the controller's metrics rather than as unexplained latency. The work queue's
// overall retry limit (runtime/work-queue.ts) is the same bucket.

export interface RateLimit {
  /** Sustained requests per second; 0 or less: no limit. */
  qps: number;
  /** Requests that may go at once after a quiet period. */
  burst: number;
}

export class ClientRateLimiter {
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(limit: RateLimit, now: () => number = () => performance.now(), sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))) {
    if (!(limit.qps > 0) || !(limit.burst >= 1)) throw new Error(`a rate limit needs qps > 0 and burst >= 1 (got qps ${limit.qps}, burst ${limit.burst})`);
    this.qps = limit.qps;
    this.burst = limit.burst;
    this.tokens = limit.burst;
    this.now = now;
    this.last = now();
    this.sleep = sleep;
  }

  /**
   * Reserves the next token and resolves when it is due; returns how long the caller waited, in ms. Reservations
   * are taken in call order, so an earlier request never waits longer than a later one.
   */
  async take(): Promise<number> {
    const wait = this.reserve();
    if (wait > 0) await this.sleep(wait);
    return wait;
  }

  /** The wait for the next token, the token taken (below zero: tokens owed to requests already waiting). */
  reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
}
