// Sends notifications of the decisions the controller takes (rollback, a pause for a person, a failure, a
// promotion) to the webhooks a ModelDeployment names, in the background: a reconcile hands the decision over and
// goes on; the sender reads the Secret with the URLs, posts, and retries with backoff on network errors, 408, 429
// and 5xx. A receiver that keeps failing loses that notification after the last attempt (logged, counted); the
// decision itself is in status and in an Event either way.
//
// Delivery is once per decision in the normal course: a decision is handed over only after the status that
// records it was written, and a decision is recorded once. A controller that dies between the two loses the
// notification (at most once); every payload carries an id a receiver can deduplicate retries with.
import type { ModelDeployment } from '../api/modeldeployment.ts';
import type { Logger } from '../runtime/log.ts';
import { errorMessage } from '../runtime/log.ts';
import type { ControllerMetrics } from '../runtime/metrics.ts';
import { originOf, send } from '../runtime/http.ts';
import type { SecretReader } from '../kube/secrets.ts';
import { notificationId, redact, slackPayload, webhookPayload, type Notification, type NotificationKind } from './payload.ts';

export interface NotifierOptions {
  secrets: SecretReader;
  log: Logger;
  metrics?: ControllerMetrics;
  /** The Secret used when a ModelDeployment names none (`namespace/name`). */
  defaultSecret?: { namespace: string; name: string } | undefined;
  attempts?: number;
  /** The first retry's delay; doubled each time, with jitter. */
  backoffMs?: number;
  timeoutMs?: number;
  /** Notifications in flight at most; more are dropped (and counted) rather than pile up in memory. */
  maxPending?: number;
}

/** Secret keys and the payload each takes. */
const TARGETS = [
  { key: 'webhook-url', target: 'webhook', body: webhookPayload },
  { key: 'slack-url', target: 'slack', body: slackPayload },
] as const;

export interface Decision {
  kind: NotificationKind;
  reason: string;
  type: 'Normal' | 'Warning';
  message: string;
}

export class Notifier {
  private readonly opts: NotifierOptions;
  private readonly pending = new Set<Promise<void>>();
  /** No new notifications once set (shutting down). */
  private closing = false;
  /** Retries end once set (the shutdown's grace is over). */
  private abandoned = false;

  constructor(opts: NotifierOptions) {
    this.opts = opts;
  }

  /** Hands a decision over; never throws, never waits. */
  notify(md: ModelDeployment, d: Decision): void {
    const spec = md.spec.notifications;
    if (spec && !spec.on.includes(d.kind)) return;
    const namespace = md.metadata.namespace ?? 'default';
    const secret = spec ? { namespace, name: spec.secretRef.name } : this.opts.defaultSecret;
    if (!secret || this.closing) return;
    if (this.pending.size >= (this.opts.maxPending ?? 1000)) {
      this.count(d.kind, 'all', 'dropped');
      this.opts.log.warn({ namespace, name: md.metadata.name, kind: d.kind }, 'too many notifications in flight: one dropped');
      return;
    }
    const message = redact(d.message);
    const n: Notification = {
      id: notificationId(md.metadata.uid ?? '', d.reason, message),
      kind: d.kind,
      reason: d.reason,
      severity: d.type === 'Warning' ? 'warning' : 'info',
      namespace,
      name: md.metadata.name,
      uid: md.metadata.uid ?? '',
      generation: md.metadata.generation,
      stableRevision: md.status?.stable?.revision,
      modelVersion: md.status?.stable?.modelVersion,
      canaryRevision: md.status?.canary?.revision ?? md.status?.aborted?.revision,
      message,
      time: new Date().toISOString(),
    };
    const p = this.deliver(secret, n).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Waits (at most `ms`) for notifications in flight, then drops the rest: for a clean shutdown. */
  async stop(ms = 5000): Promise<void> {
    this.closing = true;
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => setTimeout(r, ms).unref())]);
    this.abandoned = true;
  }

  private async deliver(secret: { namespace: string; name: string }, n: Notification): Promise<void> {
    const log = this.opts.log.child({ namespace: n.namespace, name: n.name, notification: n.kind, id: n.id });
    let data: Record<string, string>;
    try {
      data = await this.opts.secrets.read(secret.namespace, secret.name);
    } catch (err) {
      this.count(n.kind, 'all', 'failed');
      log.warn({ err: errorMessage(err) }, `notification not sent: the Secret ${secret.namespace}/${secret.name} with its URLs cannot be read`);
      return;
    }
    const targets = TARGETS.filter((t) => data[t.key]);
    if (targets.length === 0) log.warn(`notification not sent: Secret ${secret.namespace}/${secret.name} has neither webhook-url nor slack-url`);
    await Promise.all(targets.map(async (t) => {
      const url = data[t.key] ?? '';
      const body = t.body(n);
      const attempts = this.opts.attempts ?? 5;
      for (let attempt = 1; ; attempt++) {
        let why: string;
        try {
          const res = await send('POST', url, { body, headers: { 'content-type': 'application/json', 'idempotency-key': n.id }, timeoutMs: this.opts.timeoutMs ?? 5000, maxBytes: 64 << 10 });
          if (res.status >= 200 && res.status < 300) {
            this.count(n.kind, t.target, 'sent');
            log.info({ target: t.target, to: originOf(url), attempt }, 'notification sent');
            return;
          }
          why = `answered ${res.status}`;
          if (res.status < 500 && res.status !== 408 && res.status !== 429) attempt = attempts; // a refusal: retrying will not help
        } catch (err) {
          why = errorMessage(err);
        }
        if (attempt >= attempts || this.abandoned) {
          this.count(n.kind, t.target, 'failed');
          log.warn({ target: t.target, to: originOf(url), attempts: attempt, why }, 'notification not sent');
          return;
        }
        const base = (this.opts.backoffMs ?? 1000) * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base / 2));
      }
    }));
  }

  private count(kind: string, target: string, result: 'sent' | 'failed' | 'dropped'): void {
    this.opts.metrics?.notifications.inc({ kind, target, result });
  }
}
