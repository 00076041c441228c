// What a notification says, as data: built from a decision the controller has recorded (an Event it emitted with
// the status that holds it), shaped as a generic JSON document or a Slack message. Pure.
//
// No secret reaches a payload: the messages are the controller's own words about a ModelDeployment (names,
// revisions, model versions, measurements), never env values or Secret data; URLs with credentials in them are
// redacted all the same, in case a model URI carried some.
import { createHash } from 'node:crypto';
import type { NOTIFICATION_KINDS } from '../api/modeldeployment.ts';

export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export interface Notification {
  /** The same decision always has the same id: receivers can drop a retry they already have. */
  id: string;
  kind: NotificationKind;
  /** The Event's reason, e.g. RolledBack, AnalysisInconclusive, ProgressDeadlineExceeded, Promoted. */
  reason: string;
  severity: 'info' | 'warning';
  namespace: string;
  name: string;
  uid: string;
  generation: number | undefined;
  stableRevision: string | undefined;
  modelVersion: string | undefined;
  canaryRevision: string | undefined;
  message: string;
  time: string;
}

/** `scheme://user:password@host` → `scheme://***@host`, and token-like query parameters. */
export function redact(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+(:[^\s/@]*)?@/gi, '$1***@')
    .replace(/([?&](?:token|access_token|api_key|apikey|key|sig|signature|password|secret)=)[^&\s]+/gi, '$1***');
}

export function notificationId(uid: string, reason: string, message: string): string {
  return createHash('sha256').update(`${uid}\n${reason}\n${message}`).digest('hex').slice(0, 24);
}

export function webhookPayload(n: Notification): string {
  return JSON.stringify({ ...n, source: 'slipway' });
}

const TITLES: Record<NotificationKind, string> = {
  RolledBack: 'rolled back',
  Paused: 'paused for a person',
  Failed: 'failed',
  Promoted: 'promoted',
};

/** A Slack incoming-webhook message: a plain `text` fallback and one section block. */
export function slackPayload(n: Notification): string {
  const icon = n.severity === 'warning' ? ':warning:' : ':white_check_mark:';
  const title = `${icon} ModelDeployment ${n.namespace}/${n.name} ${TITLES[n.kind]}`;
  const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const fields = [
    n.stableRevision ? `*stable* ${n.stableRevision}${n.modelVersion ? ` (model version ${n.modelVersion})` : ''}` : undefined,
    n.canaryRevision ? `*canary* ${n.canaryRevision}` : undefined,
    `*reason* ${n.reason}`,
  ].filter((x): x is string => x !== undefined);
  return JSON.stringify({
    text: `${title}: ${n.message}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${escape(title)}*\n${escape(n.message)}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escape(fields.join(' · ')) }] },
    ],
  });
}
