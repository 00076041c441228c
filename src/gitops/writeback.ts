// GitOps write-back: after an automatic rollback of a ModelDeployment that names the Git repository it is
// applied from (spec.gitOps), Slipway edits that manifest to what runs (the stable revision's spec.model, and
// spec.image), commits with the evidence, and pushes — to the branch Argo CD or Flux syncs, or to a branch for
// review. Until the fix lands, a re-sync of the old manifest changes nothing: a rolled-back revision is not
// started again while the spec names it (status.aborted).
//
// Level-based and idempotent: a rollback whose write-back is recorded in status.writeBack is done; otherwise the
// manifest at the remote's tip is read and edited — a manifest that already says what runs needs no commit
// (UpToDate). Never in a reconcile: a leader task with its own queue; failures retry with backoff.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ModelDeployment } from '../api/modeldeployment.ts';
import { AuditRepository, remoteCredentialsOf, type RemoteCredentials } from '../audit/repository.ts';
import { commitMessage } from '../audit/document.ts';
import type { KubeClient } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Informer } from '../kube/informer.ts';
import { isNotFound } from '../kube/errors.ts';
import { Resources, type KubeObject } from '../kube/resources.ts';
import type { SecretReader } from '../kube/secrets.ts';
import { deploymentName, type KeptRevision } from '../controllers/modeldeployment/children.ts';
import { errorMessage, type Logger } from '../runtime/log.ts';
import { rfc3339 } from '../kube/time.ts';
import { rewriteManifest } from './manifest.ts';

export interface WriteBackOptions {
  informer: Informer<KubeObject>;
  client: KubeClient;
  secrets: SecretReader;
  events: EventRecorder;
  log: Logger;
  /** Where the working repositories live (one per remote URL). */
  dir: string;
  now?: () => Date;
}

/** The rollback that still needs its write-back, if any. */
export function pendingWriteBack(md: ModelDeployment): { revision: string; stable: string } | undefined {
  const s = md.status;
  if (!md.spec.gitOps || s?.aborted?.reason !== 'RolledBack' || !s.stable) return undefined;
  if (s.writeBack?.revision === s.aborted.revision && s.writeBack.state !== 'Failed') return undefined;
  return { revision: s.aborted.revision, stable: s.stable.revision };
}

export const reviewBranch = (md: ModelDeployment, revision: string): string => `slipway/rollback/${md.metadata.name}-${revision}`;

export class GitOpsWriteBack {
  private readonly opts: WriteBackOptions;
  private readonly queue = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly repos = new Map<string, AuditRepository>();
  private active = false;
  private running: Promise<void> | undefined;
  private timers = new Set<NodeJS.Timeout>();

  constructor(opts: WriteBackOptions) {
    this.opts = opts;
    opts.informer.on((e) => {
      if (this.active && e.type !== 'DELETED' && pendingWriteBack(e.obj as unknown as ModelDeployment)) this.enqueue(key(e.obj));
    });
  }

  start(): Promise<void> {
    this.active = true;
    for (const o of this.opts.informer.store.list()) if (pendingWriteBack(o as unknown as ModelDeployment)) this.enqueue(key(o));
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.active = false;
    for (const t of this.timers) clearTimeout(t);
    await this.running;
  }

  private enqueue(k: string): void {
    this.queue.add(k);
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    while (this.active && this.queue.size > 0) {
      const k = this.queue.values().next().value as string;
      this.queue.delete(k);
      const obj = this.opts.informer.store.get(k) as unknown as ModelDeployment | undefined;
      const pending = obj && pendingWriteBack(obj);
      if (!obj || !pending) continue;
      try {
        await this.writeBack(obj, pending.revision, pending.stable);
        this.failures.delete(k);
      } catch (err) {
        const n = (this.failures.get(k) ?? 0) + 1;
        this.failures.set(k, n);
        const message = `the write-back of the rollback to ${obj.spec.gitOps?.repository} failed (attempt ${n}, retrying): ${errorMessage(err)}`;
        this.opts.log.warn({ key: k, err: errorMessage(err) }, 'write-back failed');
        if (n === 1 || n % 10 === 0) await this.opts.events.record(obj, { type: 'Warning', reason: 'WriteBackFailed', message }).catch(() => undefined);
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (this.active) this.enqueue(k);
        }, Math.min(300_000, 2000 * 2 ** Math.min(n - 1, 8)));
        t.unref();
        this.timers.add(t);
      }
    }
  }

  private async repo(url: string, credentials: RemoteCredentials | undefined): Promise<AuditRepository> {
    const id = createHash('sha256').update(url).digest('hex').slice(0, 16);
    let repo = this.repos.get(id);
    if (!repo) {
      repo = new AuditRepository({ dir: join(this.opts.dir, id), remote: url });
      await repo.open();
      this.repos.set(id, repo);
    }
    repo.useCredentials(credentials);
    return repo;
  }

  private async writeBack(md: ModelDeployment, rolledBack: string, stable: string): Promise<void> {
    const g = md.spec.gitOps;
    if (!g) return;
    const ns = md.metadata.namespace ?? 'default';
    const cr = await this.opts.client.get(Resources.ControllerRevision, ns, deploymentName(md, stable)).catch((err: unknown) => {
      if (isNotFound(err)) throw new Error(`the stable revision ${stable} is not kept (ControllerRevision ${deploymentName(md, stable)})`);
      throw err;
    });
    const kept = cr.data as KeptRevision;
    const model = kept.model ?? { version: kept.modelVersion };
    const secret = g.secretRef ? await this.opts.secrets.read(ns, g.secretRef.name) : undefined;
    const credentials = secret && remoteCredentialsOf(secret);
    const repo = await this.repo(g.repository, credentials);
    const target = g.mode === 'branch' ? reviewBranch(md, rolledBack) : g.branch;
    const why = md.status?.aborted?.message ?? '';
    const badVersion = md.status?.aborted?.modelVersion ?? '?';
    const result = await repo.editOnRemote(g.branch, target, g.path, (text) => {
      const edit = rewriteManifest(text, g.path, { name: md.metadata.name, namespace: ns }, model, md.spec.image !== undefined ? kept.image : undefined, g.field);
      if (!edit.changed) return undefined;
      return {
        text: edit.text,
        message: commitMessage({
          subject: `${ns}/${md.metadata.name}: roll back model ${badVersion} → ${kept.modelVersion} (what runs since the automatic rollback)`,
          body: [`Slipway rolled revision ${rolledBack} back; revision ${stable} serves. This makes ${g.path} say so, so the next sync keeps it.`, '', ...edit.edits.map((e) => `- ${e}`), '', why].join('\n'),
          trailers: { 'Slipway-Kind': 'ModelDeployment', 'Slipway-Object': `${ns}/${md.metadata.name}`, 'Slipway-Decision': 'write-back', 'Slipway-Revision': stable, 'Slipway-Rolled-Back-Revision': rolledBack, 'Slipway-Actor': 'slipway' },
        }),
      };
    });
    const at = rfc3339(this.opts.now?.() ?? new Date());
    const writeBack = result.upToDate
      ? { revision: rolledBack, state: 'UpToDate' as const, branch: g.branch, message: `${g.path} on ${g.branch} already says what runs (model ${kept.modelVersion})`, at }
      : { revision: rolledBack, state: 'Pushed' as const, commit: result.commit, branch: target, message: `${g.path} now names model ${kept.modelVersion} on ${target}${g.mode === 'branch' ? ' (for review)' : ''}`, at };
    await this.opts.client.mergePatch(Resources.ModelDeployment, ns, md.metadata.name, { status: { writeBack } }, 'status');
    await this.opts.events.record(md, { type: 'Normal', reason: 'WrittenBack', message: `${writeBack.message}${result.commit ? ` (commit ${result.commit.slice(0, 12)})` : ''}` }).catch(() => undefined);
    this.opts.log.info({ key: key(md as unknown as KubeObject), ...writeBack }, 'write-back done');
  }
}

const key = (o: KubeObject): string => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
