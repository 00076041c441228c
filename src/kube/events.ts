// Kubernetes Events for what `kubectl describe` users should see. Repeats of the same event on the same object
// update its count instead of piling up new objects. Best effort: an Event that cannot be written is logged,
// never a reconcile failure.
//
// Asynchronous, as client-go's recorder is: `record` queues the Event and returns; a few senders write the queue
// out. A reconcile does not wait a round trip for its Events, and under a burst they cannot take the client's
// rate-limit tokens ahead of the next object's children (at most SENDERS requests of Events wait for a token at
// once). Events of one object and reason go out in order, one at a time, so a repeat finds the Event it counts.
import { randomBytes } from 'node:crypto';
import type { KubeClient } from './client.ts';
import { Resources, type KubeObject } from './resources.ts';
import { rfc3339 } from './time.ts';

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

const DEDUPE_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 4096;
/** Events written at once. */
const SENDERS = 4;
/** Events waiting to be written; beyond it a new one is dropped (and said so through onError). */
const MAX_QUEUED = 10_000;

interface Queued {
  about: KubeObject;
  event: EventSpec;
  key: string;
  at: Date;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly instance: string;
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();
  private readonly onError: (err: unknown) => void;
  private readonly queue: Queued[] = [];
  /** Keys being written: a repeat waits for its first to be created. */
  private readonly sending = new Set<string>();
  private senders = 0;
  private idle: (() => void)[] = [];

  constructor(client: KubeClient, opts: { component?: string; instance: string; onError?: (err: unknown) => void }) {
    this.client = client;
    this.component = opts.component ?? 'slipway';
    this.instance = opts.instance;
    this.onError = opts.onError ?? (() => {});
  }

  /** Queues the Event (stamped now) and returns at once; `flush` waits until it is written. */
  record(about: KubeObject, event: EventSpec): void {
    if (this.queue.length >= MAX_QUEUED) {
      this.onError(new Error(`${MAX_QUEUED} Events wait to be written: dropped ${event.reason} on ${about.kind} ${about.metadata.namespace ?? ''}/${about.metadata.name}`));
      return;
    }
    const key = `${about.metadata.uid}\u0000${event.type}\u0000${event.reason}\u0000${event.message}`;
    this.queue.push({ about, event, key, at: new Date() });
    this.pump();
  }

  /** Resolves when every Event queued so far is written (or given up on), or after `timeoutMs`. */
  async flush(timeoutMs = 5000): Promise<void> {
    if (this.senders === 0 && this.queue.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => this.idle.push(r)),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private pump(): void {
    while (this.senders < SENDERS) {
      const i = this.queue.findIndex((q) => !this.sending.has(q.key));
      if (i < 0) break;
      const [next] = this.queue.splice(i, 1);
      if (!next) break;
      this.senders++;
      this.sending.add(next.key);
      void this.send(next).finally(() => {
        this.senders--;
        this.sending.delete(next.key);
        this.pump();
        if (this.senders === 0 && this.queue.length === 0) for (const r of this.idle.splice(0)) r();
      });
    }
  }

  private async send({ about, event, key, at: now }: Queued): Promise<void> {
    const namespace = about.metadata.namespace ?? 'default';
    const seen = this.recent.get(key);
    try {
      if (seen && now.getTime() - seen.at < DEDUPE_WINDOW_MS) {
        seen.count++;
        seen.at = now.getTime();
        await this.client.mergePatch(Resources.Event, seen.namespace, seen.name, { count: seen.count, lastTimestamp: rfc3339(now) });
        return;
      }
      const name = `${about.metadata.name}.${randomBytes(8).toString('hex')}`;
      const ts = rfc3339(now);
      await this.client.create(Resources.Event, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: about.apiVersion,
          kind: about.kind,
          name: about.metadata.name,
          namespace,
          uid: about.metadata.uid,
          resourceVersion: about.metadata.resourceVersion,
        },
        type: event.type,
        reason: event.reason,
        message: event.message.slice(0, 1024),
        source: { component: this.component },
        reportingComponent: `slipway.dev/${this.component}`,
        reportingInstance: this.instance,
        firstTimestamp: ts,
        lastTimestamp: ts,
        count: 1,
      });
      if (this.recent.size >= MAX_REMEMBERED) this.recent.delete(this.recent.keys().next().value ?? '');
      this.recent.set(key, { name, namespace, count: 1, at: now.getTime() });
    } catch (err) {
      this.recent.delete(key);
      this.onError(err);
    }
  }
}
