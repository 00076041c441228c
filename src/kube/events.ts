// Kubernetes Events for what `kubectl describe` users should see. Repeats of the same event on the same object
// update its count instead of piling up new objects. Best effort: an Event that cannot be written is logged,
// never a reconcile failure. Each new Event carries an eventTime (the same instant as its timestamps, from the wall
// clock) in microseconds, increasing within the process:
// a reconcile's Events are written concurrently and their timestamps have whole seconds, so without it their
// order within one second would be lost (the API server lists Events by name).
import { randomBytes } from 'node:crypto';
import type { KubeClient } from './client.ts';
import { Resources, type KubeObject } from './resources.ts';
import { microTimeInOrder, rfc3339 } from './time.ts';

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

const DEDUPE_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 4096;

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly instance: string;
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();
  private readonly onError: (err: unknown) => void;

  constructor(client: KubeClient, opts: { component?: string; instance: string; onError?: (err: unknown) => void }) {
    this.client = client;
    this.component = opts.component ?? 'slipway';
    this.instance = opts.instance;
    this.onError = opts.onError ?? (() => {});
  }

  async record(about: KubeObject, event: EventSpec): Promise<void> {
    const namespace = about.metadata.namespace ?? 'default';
    const key = `${about.metadata.uid}\u0000${event.type}\u0000${event.reason}\u0000${event.message}`;
    const now = new Date();
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
      await this.client.createOnly(Resources.Event, {
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
        eventTime: microTimeInOrder(now),
        // With an eventTime the API server requires an action (what was being done when this happened).
        action: 'Reconcile',
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
