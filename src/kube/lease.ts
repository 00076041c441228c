// Leader election on a coordination.k8s.io Lease, with client-go's semantics: a lease is taken over only after
// it has not been renewed for its duration as *we* observed it (clocks of different machines never compared),
// writes use optimistic concurrency, and a leader that cannot renew within its deadline stops leading.
import type { KubeClient } from './client.ts';
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
}


export class LeaderElector {
  private readonly client: KubeClient;
  private readonly opts: Required<LeaderElectionOptions>;
  private observed: { holder: string | undefined; renewTime: string | undefined; at: number } | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private leading = false;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.opts = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Blocks until this replica leads, calls onStarted, renews until it cannot (then calls onStopped) or until
   * stop(). Returns when leadership ends.
   */
  async run(onStarted: () => void, onStopped: (reason: string) => void): Promise<void> {
    // An API error while campaigning is one more failed attempt, never the end of the campaign.
    while (!this.stopped && !(await this.tryAcquireOrRenew().catch(() => false))) await this.sleep(this.jittered(this.opts.retryPeriodMs));
    if (this.stopped) return;
    this.leading = true;
    onStarted();
    let lastRenew = Date.now();
    while (!this.stopped) {
      await this.sleep(this.opts.retryPeriodMs);
      if (this.stopped) break;
      if (await this.tryAcquireOrRenew().catch(() => false)) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.opts.renewDeadlineMs) {
        this.leading = false;
        onStopped(`could not renew lease ${this.opts.namespace}/${this.opts.name} within ${this.opts.renewDeadlineMs} ms`);
        return;
      }
    }
  }

  /** Stops campaigning; a leader gives the lease up so a standby takes over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(Resources.Lease, this.opts.namespace, this.opts.name);
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await this.client.replace(Resources.Lease, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      });
    } catch {
      // Best effort: the lease expires by itself.
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
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const { namespace, name, identity } = this.opts;
    const durationSeconds = Math.ceil(this.opts.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(Resources.Lease, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.client.create<Lease>(Resources.Lease, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (createErr) {
        if (isConflict(createErr) || (createErr as { reason?: string }).reason === 'AlreadyExists') return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity || undefined;
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== spec.renewTime) {
      this.observed = { holder, renewTime: spec.renewTime, at: Date.now() };
    }
    const theirDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    const expired = Date.now() - this.observed.at > theirDurationMs;
    if (holder && holder !== identity && !expired) return false;

    const takingOver = holder !== identity;
    try {
      await this.client.replace<Lease>(Resources.Lease, {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takingOver ? microTime(now) : (spec.acquireTime ?? microTime(now)),
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote first
      throw err;
    }
  }
}
