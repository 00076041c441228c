// act: carries out a ModelDeployment plan. Children by server-side apply (field manager `slipway`, forced: a hand
// edit of a field Slipway owns is reverted), deletes with a uid precondition, the status through the status
// subresource with optimistic concurrency, then Events. Idempotent: acting on the same plan twice changes nothing
// the second time.
import type { ModelDeployment } from '../../api/modeldeployment.ts';
import type { KubeClient } from '../../kube/client.ts';
import { classify, isNotFound, KubeApiError } from '../../kube/errors.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { Resources } from '../../kube/resources.ts';
import { errorMessage } from '../../runtime/log.ts';
import type { Notifier } from '../../notify/notifier.ts';
import { CHILD_RESOURCES } from './observe.ts';
import { stalledStatus, type ChildKind, type Plan } from './plan.ts';

export class ModelDeploymentActuator {
  private readonly client: KubeClient;
  private readonly events: EventRecorder;
  private readonly now: () => Date;
  private readonly notifier: Notifier | undefined;

  constructor(client: KubeClient, events: EventRecorder, now: () => Date, notifier?: Notifier) {
    this.client = client;
    this.events = events;
    this.now = now;
    this.notifier = notifier;
  }

  async act(md: ModelDeployment, p: Plan): Promise<void> {
    if (p.routesFirst) await this.writeRoutes(p);
    await this.writeChildren(md, p);
    if (!p.routesFirst) await this.writeRoutes(p);
    if (p.statusChanged) await this.writeStatus(md, p.status);
    // Independent of each other (best effort, never a failure): written concurrently, one round trip.
    await Promise.all(p.events.map((e) => this.events.record(md, e)));
    // Decisions are announced once their status is written: a conflict above plans (and decides) again.
    for (const e of p.events) if (e.notify) this.notifier?.notify({ ...md, status: p.status }, { ...e, kind: e.notify });
  }

  /**
   * The user's routing objects, replaced over the resourceVersion they were read at: an edit made meanwhile is
   * a conflict, and the reconcile reads the object again rather than overwrite it.
   */
  private async writeRoutes(p: Plan): Promise<void> {
    for (const r of p.routes) await this.client.replace(r.resource, r.object);
  }

  private async writeChildren(md: ModelDeployment, p: Plan): Promise<void> {
    // The children are independent of each other: written concurrently, a reconcile costs one round trip.
    const applied = await Promise.allSettled(p.apply.map((obj) => this.client.apply(CHILD_RESOURCES[obj.kind as ChildKind], obj, { force: true })));
    const failed = applied.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const err = (applied[failed] as PromiseRejectedResult).reason as unknown;
      const obj = p.apply[failed];
      if (obj && classify(err) === 'Terminal') {
        // The API server refuses this child as we build it (quota, policy, validation): a person must act.
        const message = `${obj.kind} ${obj.metadata.name} was refused: ${err instanceof KubeApiError ? err.statusMessage : errorMessage(err)}`;
        await this.recordFailure(md, 'ApplyFailed', message, p);
      }
      throw err;
    }
    await Promise.all(
      p.delete.map((child) =>
        this.client.delete(CHILD_RESOURCES[child.kind], md.metadata.namespace, child.name, { uid: child.uid }).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        }),
      ),
    );
  }

  /**
   * The status, written only over the version of the ModelDeployment it was planned from: a reconcile that read
   * a stale cache gets a conflict and plans again, instead of setting progress back.
   */
  private async writeStatus(md: ModelDeployment, status: Plan['status']): Promise<void> {
    await this.client.apply(
      Resources.ModelDeployment,
      {
        metadata: {
          name: md.metadata.name,
          namespace: md.metadata.namespace ?? 'default',
          ...(md.metadata.resourceVersion ? { resourceVersion: md.metadata.resourceVersion } : {}),
        },
        status,
      },
      { subresource: 'status', force: true },
    );
  }

  /** Records a failure the planner could not foresee (the API server refused a write): Stalled, and a Warning. */
  async recordFailure(md: ModelDeployment, reason: string, message: string, p?: Plan): Promise<void> {
    const status = stalledStatus(md, reason, message, p?.status, this.now());
    if (!status) return; // exactly this failure is recorded already: a failing spec must not become a write storm
    await this.writeStatus(md, status);
    await this.events.record(md, { type: 'Warning', reason, message });
    this.notifier?.notify({ ...md, status }, { kind: 'Failed', type: 'Warning', reason, message });
  }
}
