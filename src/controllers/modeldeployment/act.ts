// act: carries out a ModelDeployment plan. Children by server-side apply (field manager `slipway`, forced: a hand
// edit of a field Slipway owns is reverted), deletes with a uid precondition, the status through the status
// subresource with optimistic concurrency, then Events. Idempotent: acting on the same plan twice changes nothing
// the second time.
//
// Slipway never takes what is not its own: a child it is about to create is looked up first (in the caches, which
// hold the metadata of every object of the child kinds), and if an object of that name exists without this
// ModelDeployment as its controller, nothing is written at all; the ModelDeployment goes Stalled and names it.
import type { ModelDeployment } from '../../api/modeldeployment.ts';
import type { KubeClient } from '../../kube/client.ts';
import { classify, isNotFound, KubeApiError } from '../../kube/errors.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { Resources, type KubeObject } from '../../kube/resources.ts';
import { errorMessage } from '../../runtime/log.ts';
import { CHILD_RESOURCES } from './observe.ts';
import { stalledStatus, type ChildKind, type Plan } from './plan.ts';

/** How often a ModelDeployment blocked by someone else's object looks again (its deletion sends no event). */
export const NOT_OWNED_RETRY_MS = 60_000;

/** Finds an existing object by kind and name (the informer caches). */
export type Lookup = (kind: ChildKind, namespace: string, name: string) => KubeObject | undefined;

export interface ActResult {
  requeue?: { afterMs: number; reason: string };
}

export class ModelDeploymentActuator {
  private readonly client: KubeClient;
  private readonly events: EventRecorder;
  private readonly now: () => Date;
  private readonly lookup: Lookup | undefined;

  /** Without `lookup`, each child about to be created is looked up with a GET. */
  constructor(client: KubeClient, events: EventRecorder, now: () => Date, lookup?: Lookup) {
    this.client = client;
    this.events = events;
    this.now = now;
    this.lookup = lookup;
  }

  async act(md: ModelDeployment, p: Plan): Promise<ActResult> {
    const foreign = await this.foreignObjects(md, p.create);
    if (foreign.length > 0) {
      const names = foreign.map((o) => `${o.kind} ${o.metadata.name}`).join(', ');
      const message = `${names} already exists and is not managed by this ModelDeployment: Slipway leaves it as it is. Rename the ModelDeployment, or delete or rename the existing object`;
      await this.recordFailure(md, 'ObjectNotOwned', message, p);
      return { requeue: { afterMs: NOT_OWNED_RETRY_MS, reason: 'ObjectNotOwned' } };
    }
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
    if (p.statusChanged) await this.writeStatus(md, p.status);
    for (const e of p.events) await this.events.record(md, e);
    return {};
  }

  /** The objects among those about to be created that exist already and are not controlled by this ModelDeployment. */
  private async foreignObjects(md: ModelDeployment, creates: KubeObject[]): Promise<KubeObject[]> {
    const lookup = this.lookup;
    const found: (KubeObject | undefined)[] = await Promise.all(
      creates.map((obj) =>
        lookup
          ? Promise.resolve(lookup(obj.kind as ChildKind, obj.metadata.namespace ?? 'default', obj.metadata.name)).then((live) => live && { ...live, ...(obj.kind ? { kind: obj.kind } : {}) })
          : this.client.get<KubeObject>(CHILD_RESOURCES[obj.kind as ChildKind], obj.metadata.namespace, obj.metadata.name).then(
          (live): KubeObject => ({ ...live, ...(obj.kind ? { kind: obj.kind } : {}) }),
          (err: unknown) => {
            if (isNotFound(err)) return undefined;
            throw err;
          },
        ),
      ),
    );
    return found.filter((live): live is KubeObject => live !== undefined && !(live.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === md.metadata.uid));
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
  }
}
