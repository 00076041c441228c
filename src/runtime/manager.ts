// The manager runs the informers and controllers of one process: it serves /healthz, /readyz (true once every
// cache has synced) and /metrics, campaigns for the leader lease when asked to, starts the controllers only
// while leading, resyncs periodically as a safety net, and shuts down gracefully.
import { createServer, type Server } from 'node:http';
import { GROUP } from '../api/common.ts';
import type { KubeClient } from '../kube/client.ts';
import { isNotFound } from '../kube/errors.ts';
import { Informer, type IndexFunc, type InformerOptions } from '../kube/informer.ts';
import { LeaderElector, type LeaderElectionOptions } from '../kube/lease.ts';
import type { KubeObject, ResourceType } from '../kube/resources.ts';
import type { Controller } from './controller.ts';
import { errorMessage, type Logger } from './log.ts';
import type { ControllerMetrics } from './metrics.ts';

export interface ManagerOptions {
  client: KubeClient;
  logger: Logger;
  metrics: ControllerMetrics;
  /** Serve health and metrics on this port (0 = any free port; undefined = do not serve). */
  port?: number;
  host?: string;
  leaderElection?: LeaderElectionOptions;
  /** Every so often (with jitter), every primary key is reconciled again even if nothing changed. */
  resyncMs?: number;
  /** Called when leadership is lost: the safe answer is to exit and let the replica restart as a standby. */
  onLeadershipLost?: (reason: string) => void;
}

interface Primary {
  controller: Controller;
  informer: Informer<KubeObject>;
}

export class Manager {
  readonly client: KubeClient;
  readonly log: Logger;
  readonly metrics: ControllerMetrics;
  private readonly opts: ManagerOptions;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly controllers: Controller[] = [];
  private readonly primaries: Primary[] = [];
  private readonly leaderTasks: { start: () => Promise<void>; stop: () => Promise<void> }[] = [];
  private readonly lastActivity = new Map<string, number>();
  private elector: LeaderElector | undefined;
  private leaseClient: KubeClient | undefined;
  private electing: Promise<void> | undefined;
  private server: Server | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private ready = false;
  private readonly transforms = new Map<string, unknown>();
  private controllersRunning = false;
  private stopping = false;

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.client = opts.client;
    this.log = opts.logger;
    this.metrics = opts.metrics;
    this.client.observe((method, _path, code) => this.metrics.apiRequests.inc({ method, code: String(code) }));
    this.client.observeThrottle((ms) => this.metrics.apiThrottle.observe(ms / 1000));
  }

  /** The shared informer of a resource type (one list-watch per type and selector in the process). */
  informer<T extends KubeObject>(resource: ResourceType, opts: Omit<InformerOptions<T>, 'hooks'> = {}): Informer<T> {
    const id = `${resource.group}/${resource.plural}?${opts.labelSelector ?? ''}${opts.metadataOnly ? '&metadata' : ''}`;
    let informer = this.informers.get(id);
    // One cache, one shape: a second reader asking for the same objects transformed otherwise would read the
    // first one's shape (a programming error, caught at start).
    if (informer && this.transforms.get(id) !== opts.transform) throw new Error(`the ${resource.plural} informer (${id}) is already registered with another transform`);
    if (!informer) {
      this.transforms.set(id, opts.transform);
      const name = opts.metadataOnly ? `${resource.plural} (metadata)` : resource.plural;
      const { transform, ...listWatch } = opts;
      informer = new Informer<KubeObject>(this.client, resource, {
        ...listWatch,
        indexers: opts.indexers as Record<string, IndexFunc<KubeObject>> | undefined ?? {},
        ...(transform ? { transform: transform as unknown as (obj: KubeObject) => KubeObject } : {}),
        hooks: {
          onRestart: (_res, reason, err) => {
            this.metrics.watchRestarts.inc({ resource: name, reason });
            if (isNotFound(err) && resource.group === GROUP) {
              this.log.error({ resource: name }, `the ${resource.kind} CRD is not installed: kubectl apply --server-side -k crds/ (or install the Helm chart)`);
            } else if (reason !== 'closed') {
              this.log.info({ resource: name, reason, err: err ? errorMessage(err) : undefined }, 'watch restarted');
            }
          },
          onActivity: () => this.lastActivity.set(name, Date.now()),
          onHandlerError: (_res, err) => this.log.error({ resource: name, err: errorMessage(err) }, 'event handler failed'),
        },
      });
      this.lastActivity.set(name, Date.now());
      this.informers.set(id, informer);
    }
    return informer as unknown as Informer<T>;
  }

  /**
   * Work that runs only on the leader, beside the controllers (e.g. the audit trail): started when this process
   * starts leading, stopped (awaited) before the lease is given up.
   */
  addLeaderTask(task: { start: () => Promise<void>; stop: () => Promise<void> }): void {
    this.leaderTasks.push(task);
  }

  /** Registers a controller; `primary` is the informer whose every key a resync enqueues. */
  addController(controller: Controller, primary: Informer<KubeObject>): void {
    this.controllers.push(controller);
    this.primaries.push({ controller, informer: primary });
  }

  get isReady(): boolean {
    return this.ready && !this.stopping;
  }

  get isLeader(): boolean {
    return this.controllersRunning;
  }

  get address(): string | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? `http://${a.address}:${a.port}` : undefined;
  }

  async start(): Promise<void> {
    if (this.opts.port !== undefined) await this.serve(this.opts.port, this.opts.host ?? '0.0.0.0');
    for (const informer of this.informers.values()) informer.start();
    await Promise.all([...this.informers.values()].map((i) => i.synced));
    this.ready = true;
    this.log.info({ informers: this.informers.size }, 'caches synced');

    if (this.opts.leaderElection) {
      // The lease on connections of its own, and every other write fenced by the term it grants.
      this.leaseClient = this.client.withOwnConnections();
      this.elector = new LeaderElector(this.leaseClient, this.opts.leaderElection);
      this.client.gateWrites(this.elector);
      this.electing = this.elector.run(
        () => {
          this.log.info({ identity: this.opts.leaderElection?.identity }, 'became leader');
          this.metrics.leader.set(1);
          this.startControllers();
        },
        (reason) => {
          this.metrics.leader.set(0);
          this.log.error({ reason }, 'lost leadership');
          (this.opts.onLeadershipLost ?? (() => process.exit(1)))(reason);
        },
      );
    } else {
      this.startControllers();
    }
  }

  private startControllers(): void {
    if (this.controllersRunning || this.stopping) return;
    this.controllersRunning = true;
    for (const c of this.controllers) c.start();
    for (const t of this.leaderTasks) this.startLeaderTask(t);
    this.resync();
    this.scheduleResync();
  }

  /** Starts a leader task; one that fails to start (a volume not writable yet) is tried again every 30 s. */
  private startLeaderTask(t: { start: () => Promise<void> }): void {
    t.start().catch((err: unknown) => {
      this.log.error({ err: errorMessage(err) }, 'a leader task could not start; trying again in 30 s');
      setTimeout(() => {
        if (this.controllersRunning && !this.stopping) this.startLeaderTask(t);
      }, 30_000).unref();
    });
  }

  /** Enqueues every primary key: a converged system answers with zero writes. */
  resync(): void {
    if (!this.controllersRunning) return;
    for (const { controller, informer } of this.primaries) for (const key of informer.store.keys()) controller.enqueue(key);
  }

  private scheduleResync(): void {
    const every = this.opts.resyncMs;
    if (!every) return;
    this.resyncTimer = setTimeout(() => {
      this.resync();
      this.scheduleResync();
    }, every * (0.9 + Math.random() * 0.2));
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.resyncTimer);
    await Promise.all(this.controllers.map((c) => c.stop()));
    if (this.controllersRunning) await Promise.all(this.leaderTasks.map((t) => t.stop().catch(() => undefined)));
    // Give the lease up only after the last reconcile finished: the next leader must not overlap with us.
    await this.elector?.stop();
    await this.electing;
    this.metrics.leader.set(0);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.client.close();
    this.leaseClient?.close();
    this.log.info('stopped');
  }

  private collect(): void {
    const now = Date.now();
    for (const c of this.controllers) c.collectMetrics();
    for (const [resource, at] of this.lastActivity) this.metrics.watchLastActivityAge.set({ resource }, (now - at) / 1000);
    for (const i of this.informers.values()) this.metrics.cacheObjects.set({ resource: i.resource.plural }, i.store.size);
  }

  private async serve(port: number, host: string): Promise<void> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz' || path === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      } else if (path === '/readyz') {
        const ok = this.isReady;
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok' : 'caches not synced');
      } else if (path === '/metrics') {
        this.collect();
        this.metrics.registry
          .metrics()
          .then((text) => res.writeHead(200, { 'Content-Type': this.metrics.registry.contentType }).end(text))
          .catch((err: unknown) => res.writeHead(500).end(errorMessage(err)));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
  }
}
