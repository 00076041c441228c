// The audit trail: every change of a ModelDeployment the informer shows (a spec change, a decision of the
// controller written to status) becomes one commit of its file in the audit repository, in the order seen.
//
// Never in the hot path: the informer's handler renders the file and queues the change (no I/O); a flush, soon
// after (or at once when many are queued), writes the queue as individual commits through one fast-import; a
// push follows in the background, retried with backoff while the remote is down (the commits wait in the local
// repository, nothing is lost). Reconciles never wait for any of it.
//
// Exactly once: what is committed is the difference between an object and its file at the branch's tip, so a
// restart or a new leader (which loads the files first, then compares every object) commits what changed while
// nobody watched, once, and nothing twice; a state already committed is never committed again, and a change
// that renders to the same file (a status write of the audit position itself, a resync) is not a commit.
import type { ModelDeployment } from '../api/modeldeployment.ts';
import type { KubeClient } from '../kube/client.ts';
import type { CacheEvent, Informer } from '../kube/informer.ts';
import { Resources, type KubeObject } from '../kube/resources.ts';
import type { Logger } from '../runtime/log.ts';
import { errorMessage } from '../runtime/log.ts';
import type { ControllerMetrics } from '../runtime/metrics.ts';
import { auditDocOf, auditPath, describeChange, genericDocOf, parseDoc, renderDoc, type AuditChange, type AuditDoc, type AuditKind } from './document.ts';
import type { AuditRepository, RemoteCredentials } from './repository.ts';

export interface AuditTrailOptions {
  repo: AuditRepository;
  /** The informers of the kinds recorded (ModelDeployment, and Experiment and ProjectEnvironment if given). */
  sources: { kind: AuditKind; informer: Informer<KubeObject> }[];
  client: KubeClient;
  log: Logger;
  metrics?: ControllerMetrics;
  /** How long the first queued change waits for others to join its batch. */
  batchDelayMs?: number;
  /** A batch this large is written at once. */
  maxBatch?: number;
  /** The remote's credentials (the audit Secret), read when recording starts. */
  credentials?: () => Promise<RemoteCredentials | undefined>;
  /** Record the audit position in each ModelDeployment's status (status.audit). */
  writeStatus?: boolean;
  now?: () => Date;
}

const keyOf = (kind: AuditKind, o: KubeObject): string => `${kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

function docOf(kind: AuditKind, o: KubeObject): AuditDoc {
  return kind === 'ModelDeployment' ? auditDocOf(o as unknown as ModelDeployment) : genericDocOf(kind, o);
}

export class AuditTrail {
  private readonly opts: AuditTrailOptions;
  private readonly files = new Map<string, string>();
  private queue: (AuditChange & { key: string })[] = [];
  private active = false;
  /** Events that came while the files were loading: applied, in order, once they are. */
  private buffered: { kind: AuditKind; e: CacheEvent<KubeObject> }[] | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private pushTimer: NodeJS.Timeout | undefined;
  private pushFailures = 0;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  constructor(opts: AuditTrailOptions) {
    this.opts = opts;
    for (const { kind, informer } of opts.sources) informer.on((e) => this.onEvent(kind, e));
  }

  /** Starts recording (on the leader): loads the files, commits what changed meanwhile, pushes what is queued. */
  async start(): Promise<void> {
    // The objects as they are now, and every event from now on: nothing between is missed while git loads.
    const snapshot = this.opts.sources.flatMap(({ kind, informer }) => informer.store.list().map((o) => ({ kind, o })));
    this.buffered = [];
    let files: Map<string, string>;
    try {
      if (this.opts.credentials) this.opts.repo.useCredentials(await this.opts.credentials());
      await this.opts.repo.open();
      files = await this.opts.repo.readAll();
    } catch (err) {
      this.buffered = undefined; // tried again from a fresh snapshot
      throw err;
    }
    for (const [path, content] of files) this.files.set(path, content);
    const seen = new Set<string>();
    for (const { kind, o } of snapshot) {
      seen.add(auditPath(o.metadata.namespace ?? 'default', o.metadata.name, kind));
      this.observe(kind, o);
    }
    // Objects deleted while nobody watched (of the kinds recorded).
    const recorded = new Set(this.opts.sources.map((x) => x.kind));
    for (const [path, content] of files) {
      if (seen.has(path)) continue;
      const doc = parseDoc(content);
      if (!doc || !recorded.has(doc.kind)) continue;
      const change = describeChange(doc, null);
      if (change) this.enqueue(`${doc.kind}/${doc.metadata.namespace}/${doc.metadata.name}`, { ...change, path, content: null });
    }
    const buffered = this.buffered;
    this.buffered = undefined;
    this.active = true;
    for (const { kind, e } of buffered) this.onEvent(kind, e);
    this.opts.metrics?.auditRecording.set(1);
    this.scheduleFlush();
    this.schedulePush(0);
    this.maintenanceTimer = setInterval(() => void this.maintain(), 60_000);
    this.maintenanceTimer.unref();
    this.opts.log.info({ files: files.size, queued: this.queue.length, remote: this.opts.repo.remote ? 'yes' : 'no' }, 'audit trail recording');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.metrics?.auditRecording.set(0);
    clearTimeout(this.flushTimer);
    clearTimeout(this.pushTimer);
    clearInterval(this.maintenanceTimer);
    await this.flush();
    if (this.opts.repo.remote) await this.opts.repo.push(3).catch(() => undefined);
  }

  private onEvent(kind: AuditKind, e: CacheEvent<KubeObject>): void {
    if (this.buffered) {
      this.buffered.push({ kind, e });
      return;
    }
    if (!this.active || this.stopped) return;
    if (e.type === 'DELETED') {
      const path = auditPath(e.obj.metadata.namespace ?? 'default', e.obj.metadata.name, kind);
      const before = this.files.get(path);
      const change = before === undefined ? undefined : describeChange(parseDoc(before), null, { specManager: e.obj.metadata.specManager });
      if (change) {
        this.files.delete(path);
        this.enqueue(keyOf(kind, e.obj), { ...change, path, content: null });
      }
      return;
    }
    this.observe(kind, e.obj);
  }

  private observe(kind: AuditKind, o: KubeObject): void {
    const doc = docOf(kind, o);
    const path = auditPath(doc.metadata.namespace, doc.metadata.name, kind);
    const content = renderDoc(doc);
    const before = this.files.get(path);
    if (before === content) return;
    const change = describeChange(before === undefined ? undefined : parseDoc(before), doc, { specManager: o.metadata.specManager, resourceVersion: o.metadata.resourceVersion });
    this.files.set(path, content);
    if (change) this.enqueue(keyOf(kind, o), { ...change, path, content });
  }

  private enqueue(key: string, change: AuditChange): void {
    this.queue.push({ ...change, key });
    this.opts.metrics?.auditQueued.set(this.queue.length);
    if (this.queue.length >= (this.opts.maxBatch ?? 500)) void this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.queue.length === 0) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.opts.batchDelayMs ?? 100);
    this.flushTimer.unref();
  }

  /** Writes what is queued as commits (one flush at a time; a failed one is retried with what came after it). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.queue.length > 0 ? this.flush() : undefined));
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue.splice(0, this.opts.maxBatch ?? 500);
    this.flushing = (async () => {
      try {
        const head = await this.opts.repo.commit(batch, this.opts.now);
        this.opts.metrics?.auditCommits.inc(batch.length);
        if (head && this.opts.writeStatus !== false) void this.recordPositions(batch, head);
        this.schedulePush(0);
      } catch (err) {
        // Nothing is lost: the batch goes back in front, and is written with the next flush.
        this.queue.unshift(...batch);
        this.opts.log.error({ err: errorMessage(err), queued: this.queue.length }, 'audit commit failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        this.flushing = undefined;
        this.opts.metrics?.auditQueued.set(this.queue.length);
      }
      if (this.queue.length > 0 && !this.stopped) this.scheduleFlush();
    })();
    return this.flushing;
  }

  /** status.audit of each object in the batch: the commit that holds its latest change. */
  private async recordPositions(batch: { key: string }[], head: string): Promise<void> {
    // Only ModelDeployments have status.audit.
    const md = this.opts.sources.find((x) => x.kind === 'ModelDeployment')?.informer;
    const keys = [...new Set(batch.map((c) => c.key).filter((k) => k.startsWith('ModelDeployment/')).map((k) => k.slice('ModelDeployment/'.length)))];
    const at = (this.opts.now?.() ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
    // The tip commit holds every file of the batch: one commit id names the position of all of them.
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(keys.slice(i, i + 16).map(async (key) => {
        const [namespace, name] = key.split('/') as [string, string];
        if (!md?.store.get(key)) return;
        await this.opts.client.mergePatch(Resources.ModelDeployment, namespace, name, { status: { audit: { commit: head, at } } }, 'status').catch((err: unknown) => {
          this.opts.log.debug({ key, err: errorMessage(err) }, 'could not record the audit position');
        });
      }));
    }
  }

  private schedulePush(delayMs: number): void {
    if (!this.opts.repo.remote || this.stopped || this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      void this.pushNow();
    }, delayMs);
    this.pushTimer.unref();
  }

  private async pushNow(): Promise<void> {
    try {
      const r = await this.opts.repo.push();
      if (r.replayed > 0) {
        // Another writer moved the branch: the files at the new tip are what later changes compare with.
        const files = await this.opts.repo.readAll();
        for (const [path, content] of files) if (!this.queue.some((q) => q.path === path)) this.files.set(path, content);
      }
      if (this.pushFailures > 0) this.opts.log.info({ pushed: r.pushed }, 'audit remote reachable again: queued commits pushed');
      this.pushFailures = 0;
      this.opts.metrics?.auditUnpushed.set(0);
    } catch (err) {
      this.pushFailures++;
      this.opts.metrics?.auditPushFailures.inc();
      const unpushed = await this.opts.repo.unpushed().catch(() => -1);
      this.opts.metrics?.auditUnpushed.set(unpushed);
      if (this.pushFailures === 1 || this.pushFailures % 20 === 0) this.opts.log.warn({ err: errorMessage(err), unpushed }, 'audit push failed; the commits wait in the local repository');
      // Backoff: 1 s doubling to 60 s.
      this.schedulePush(Math.min(60_000, 1000 * 2 ** Math.min(this.pushFailures - 1, 6)));
    }
  }

  private async maintain(): Promise<void> {
    if (this.queue.length > 0 || this.stopped) return; // only when idle
    try {
      const o = await this.opts.repo.objects();
      if (o.packs > 20 || o.loose > 2000) await this.opts.repo.maintain();
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err) }, 'audit repository maintenance failed');
    }
  }
}
