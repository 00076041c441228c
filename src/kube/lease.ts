// Leader election on a coordination.k8s.io Lease, with client-go's semantics and the guarantees a network that
// lies needs:
// - a lease is taken over only after it has not been renewed for its duration as *we* observed it (clocks of
//   different machines are never compared), and writes to it use optimistic concurrency;
// - every duration is measured on the monotonic clock (`performance.now()`), so a wall-clock step neither
//   extends nor cuts a term;
// - the lease has connections of its own (never queued behind watches and reconciles, never on their dead
//   keep-alive sockets), and every renewal attempt is bounded by what is left of the renew deadline;
// - writes are fenced: the leader may write only until its last successful renewal *was sent* plus the renew
//   deadline, which ends before any other replica can see the lease as expired (lease duration > renew
//   deadline); at that instant writes in flight are aborted and new ones are refused (WriteGate).
import type { KubeClient, WriteGate } from './client.ts';
import { NotLeaderError } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';
import { Resources, type KubeObject } from './resources.ts';
import { microTime } from './time.ts';

export interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /**
   * How often the leader renews (default: the retry period, as client-go). Longer means fewer requests at rest;
   * keep it well under the renew deadline so that a failed renewal has time to be retried.
   */
  renewIntervalMs?: number;
  /** Monotonic milliseconds; tests may drive it. */
  monotonicNow?: () => number;
}

export class LeaderElector implements WriteGate {
  private readonly client: KubeClient;
  private readonly opts: Required<Omit<LeaderElectionOptions, 'monotonicNow'>>;
  private readonly now: () => number;
  private observed: { holder: string | undefined; renewTime: string | undefined; at: number } | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private leading = false;
  /** Writes are allowed until this monotonic instant. */
  private fenceAt = 0;
  private fence: AbortController | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private onFenced: (() => void) | undefined;
  /** The Lease as this replica last wrote it while leading: the next renewal updates it without reading it first. */
  private mine: Lease | undefined;

  /** `client` should have connections of its own (`KubeClient.withOwnConnections()`). */
  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    const { monotonicNow, ...rest } = opts;
    const retryPeriodMs = rest.retryPeriodMs ?? 2_000;
    this.opts = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs, renewIntervalMs: retryPeriodMs, ...rest };
    if (this.opts.renewDeadlineMs >= this.opts.leaseDurationMs) throw new Error('the renew deadline must be shorter than the lease duration');
    this.now = monotonicNow ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** WriteGate: a signal for one write, aborted when this replica's term may end; throws if it has. */
  open(): AbortSignal {
    if (!this.leading || !this.fence || this.now() >= this.fenceAt) {
      throw new NotLeaderError(`not writing: ${this.opts.identity} does not hold lease ${this.opts.namespace}/${this.opts.name} (or could not renew it in time)`);
    }
    return this.fence.signal;
  }

  /**
   * Blocks until this replica leads, calls onStarted, renews until it cannot (then calls onStopped) or until
   * stop(). Returns when leadership ends.
   */
  async run(onStarted: () => void, onStopped: (reason: string) => void): Promise<void> {
    // An API error while campaigning is one more failed attempt, never the end of the campaign.
    let sentAt: number;
    for (;;) {
      if (this.stopped) return;
      sentAt = this.now();
      if (await this.attempt(this.opts.renewDeadlineMs)) break;
      await this.sleep(this.jittered(this.opts.retryPeriodMs));
    }
    if (this.stopped) return;
    this.leading = true;
    this.fence = new AbortController();
    let lost: string | undefined;
    const lose = (reason: string): void => {
      if (lost !== undefined) return;
      lost = reason;
      this.endTerm(reason);
      this.wake?.();
    };
    this.onFenced = () => lose(`could not renew lease ${this.opts.namespace}/${this.opts.name} within ${this.opts.renewDeadlineMs} ms`);
    this.extendFence(sentAt);
    onStarted();
    while (!this.stopped && lost === undefined) {
      await this.sleep(this.opts.renewIntervalMs);
      // Retry within the deadline: each attempt gets only the time that is left of it.
      while (!this.stopped && lost === undefined) {
        const attemptSentAt = this.now();
        const left = this.fenceAt - attemptSentAt;
        if (left <= 0) break;
        if (await this.attempt(left)) {
          this.extendFence(attemptSentAt);
          break;
        }
        await this.sleep(Math.min(this.opts.retryPeriodMs / 4, Math.max(0, this.fenceAt - this.now())));
      }
      if (!this.stopped && lost === undefined && this.now() >= this.fenceAt) this.onFenced();
    }
    if (lost !== undefined && !this.stopped) onStopped(lost);
  }

  /** Stops campaigning; a leader gives the lease up so a standby takes over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.endTerm('stopping');
    try {
      const signal = AbortSignal.timeout(this.opts.renewDeadlineMs);
      const lease = await this.client.get<Lease>(Resources.Lease, this.opts.namespace, this.opts.name, { signal });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await this.client.replace(Resources.Lease, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      }, { signal });
    } catch {
      // Best effort: the lease expires by itself.
    }
  }

  /** A renewal sent at `sentAt` succeeded: writes may go on until `sentAt` + the renew deadline. */
  private extendFence(sentAt: number): void {
    this.fenceAt = sentAt + this.opts.renewDeadlineMs;
    clearTimeout(this.fenceTimer);
    this.fenceTimer = setTimeout(() => this.onFenced?.(), Math.max(0, this.fenceAt - this.now()));
  }

  private endTerm(reason: string): void {
    this.leading = false;
    this.mine = undefined;
    this.fenceAt = 0;
    clearTimeout(this.fenceTimer);
    this.fence?.abort(new NotLeaderError(`write aborted: ${reason}`));
  }

  private async attempt(timeoutMs: number): Promise<boolean> {
    try {
      return await this.tryAcquireOrRenew(AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))));
    } catch {
      return false;
    }
  }

  private jittered(ms: number): number {
    return ms * (1 + Math.random() * 0.2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** One attempt; true when this replica holds the lease afterwards. */
  async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const wall = new Date();
    const opts = signal ? { signal } : {};
    const { namespace, name, identity } = this.opts;
    const durationSeconds = Math.ceil(this.opts.leaseDurationMs / 1000);
    if (this.leading && this.mine) {
      // A renewal: one write over the Lease as we last wrote it. Anyone else's write since makes it a conflict,
      // and the read below decides.
      try {
        this.mine = await this.client.replace<Lease>(Resources.Lease, { ...this.mine, spec: { ...this.mine.spec, renewTime: microTime(wall) } }, opts);
        return true;
      } catch (err) {
        this.mine = undefined;
        if (!isConflict(err)) throw err;
      }
    }
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(Resources.Lease, namespace, name, opts);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        this.mine = await this.client.create<Lease>(Resources.Lease, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(wall), renewTime: microTime(wall), leaseTransitions: 0 },
        }, opts);
        return true;
      } catch (createErr) {
        if (isConflict(createErr) || (createErr as { reason?: string }).reason === 'AlreadyExists') return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity || undefined;
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== spec.renewTime) {
      this.observed = { holder, renewTime: spec.renewTime, at: this.now() };
    }
    const theirDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    const expired = this.now() - this.observed.at > theirDurationMs;
    if (holder && holder !== identity && !expired) return false;

    const takingOver = holder !== identity;
    try {
      const written = await this.client.replace<Lease>(Resources.Lease, {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takingOver ? microTime(wall) : (spec.acquireTime ?? microTime(wall)),
          renewTime: microTime(wall),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
        },
      }, opts);
      this.mine = written;
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote first
      throw err;
    }
  }
}
