// The API server's audit log (JSON lines, see AUDIT_POLICY in local/cluster.ts): who wrote what, and the
// instant the API server finished handling it.
import { readFileSync } from 'node:fs';

export interface AuditEvent {
  verb: string;
  userAgent?: string;
  user?: { username?: string };
  stageTimestamp: string;
  requestReceivedTimestamp: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

/** Write requests the API server answered, in one namespace, oldest first. */
export function auditedWrites(path: string, namespace: string): AuditEvent[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(namespace)) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (WRITES.has(e.verb) && e.objectRef?.namespace === namespace) out.push(e);
  }
  return out.sort((a, b) => a.stageTimestamp.localeCompare(b.stageTimestamp));
}

/** Audit timestamps have microseconds; as a number of microseconds since the epoch for exact comparison. */
export function micros(ts: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts);
  if (!m) throw new Error(`not an audit timestamp: ${ts}`);
  return Date.parse(`${m[1]}Z`) * 1000 + Number(((m[2] ?? '') + '000000').slice(0, 6));
}
