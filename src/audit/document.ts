// What the audit trail records of a ModelDeployment, and how a change reads in `git log`. Pure.
//
// One file per object, `<namespace>/modeldeployment/<name>.yaml`: the desired state (the spec, without what the
// server manages) and the state the controller decided (stable and canary revisions, weight and step, an abort
// or rollback with its reason, a pause, the last verb). A commit is a change of that file; its subject says what
// happened in words a person scans, its trailers say it for machines.
//
// No secret reaches a file: literal runtime.env values whose names look like credentials, credentials in URLs
// and token-like query parameters are replaced by "(redacted)"; references to Secrets (names only) are kept.
import yaml from 'js-yaml';
import type { ModelDeployment } from '../api/modeldeployment.ts';
import { redact } from '../notify/payload.ts';

/** The kinds the audit trail records, and their directory. */
export const AUDIT_KINDS = { ModelDeployment: 'modeldeployment', Experiment: 'experiment', ProjectEnvironment: 'projectenvironment' } as const;
export type AuditKind = keyof typeof AUDIT_KINDS;

export interface AuditDoc {
  apiVersion: string;
  kind: AuditKind;
  metadata: { namespace: string; name: string; uid: string; generation: number };
  spec: Record<string, unknown>;
  effective: Effective;
}

/** What the controller decided. Not the phase: a pod becoming ready is not a decision (conditions say it). */
export interface Effective {
  /** ProjectEnvironment: the image, pinned by digest, that ModelDeployments serve. Experiment: its phase. */
  image?: string;
  /** ProjectEnvironment: the packages of that image, exactly (name==version), as its build locked them. */
  lock?: string[];
  phase?: string;
  /** Experiment: the variant that won. */
  winner?: string;
  stable?: { revision: string; modelVersion: string; image?: string };
  canary?: { revision: string; modelVersion: string; weight?: number; step?: number; steps?: number };
  aborted?: { revision: string; modelVersion: string; reason: string; message: string };
  pause?: { by: string };
  /** The last request acted on (a verb), with who asked. */
  lastRequest?: { id: string; verb: string; by: string; result: string };
}

export interface AuditChange {
  path: string;
  /** The new content; null when the object is gone. */
  content: string | null;
  subject: string;
  body: string;
  trailers: Record<string, string>;
}

export const auditPath = (namespace: string, name: string, kind: AuditKind = 'ModelDeployment'): string => `${namespace}/${AUDIT_KINDS[kind]}/${name}.yaml`;

const SECRET_NAME = /(pass(word)?|secret|token|api[-_]?key|credential|private[-_]?key|access[-_]?key|auth)/i;

function redactStrings(v: unknown): unknown {
  if (typeof v === 'string') return redact(v);
  if (Array.isArray(v)) return v.map(redactStrings);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactStrings(x)]));
  return v;
}

function redactSpec(spec: Record<string, unknown>): Record<string, unknown> {
  const s = redactStrings(structuredClone(spec)) as Record<string, unknown>;
  const runtime = s.runtime as { env?: { name: string; value?: string }[] } | undefined;
  for (const e of runtime?.env ?? []) if (SECRET_NAME.test(e.name) && e.value) e.value = '(redacted)';
  // With autoscaling the HPA owns spec.replicas: its every move is not a change anyone made to the desired state.
  if (s.autoscaling) delete s.replicas;
  return s;
}

export function auditDocOf(md: ModelDeployment): AuditDoc {
  const st = md.status ?? {};
  const effective: Effective = {};
  if (st.stable) effective.stable = { revision: st.stable.revision, modelVersion: st.stable.modelVersion, image: redact(st.stable.image) };
  if (st.canary) {
    const c = st.canary;
    effective.canary = { revision: c.revision, modelVersion: c.modelVersion, ...(c.weight !== undefined ? { weight: c.weight } : {}), ...(c.step !== undefined ? { step: c.step } : {}), ...(c.steps !== undefined ? { steps: c.steps } : {}) };
  }
  if (st.aborted) effective.aborted = { revision: st.aborted.revision, modelVersion: st.aborted.modelVersion, reason: st.aborted.reason, message: redact(st.aborted.message) };
  if (st.pause) effective.pause = { by: redact(st.pause.by) };
  if (st.lastRequest) effective.lastRequest = { id: st.lastRequest.id, verb: st.lastRequest.verb, by: st.lastRequest.by, result: st.lastRequest.result };
  return {
    apiVersion: md.apiVersion ?? 'slipway.dev/v1alpha1',
    kind: 'ModelDeployment',
    metadata: { namespace: md.metadata.namespace ?? 'default', name: md.metadata.name, uid: md.metadata.uid ?? '', generation: md.metadata.generation ?? 0 },
    spec: redactSpec(md.spec),
    effective,
  };
}

/**
 * An Experiment or a ProjectEnvironment: the spec, and what its controller decided (an environment's resolved
 * image; an experiment's phase and winner).
 */
export function genericDocOf(kind: Exclude<AuditKind, 'ModelDeployment'>, o: { apiVersion?: string | undefined; metadata: { namespace?: string | undefined; name: string; uid?: string | undefined; generation?: number | undefined }; spec?: unknown; status?: unknown }): AuditDoc {
  const st = (o.status ?? {}) as { image?: string; lock?: string[]; phase?: string; winner?: string };
  const effective: Effective = {};
  if (kind === 'ProjectEnvironment' && st.image) effective.image = redact(st.image);
  if (kind === 'ProjectEnvironment' && st.lock?.length) effective.lock = st.lock;
  if (kind === 'Experiment') {
    if (st.phase) effective.phase = st.phase;
    if (st.winner) effective.winner = st.winner;
  }
  return {
    apiVersion: o.apiVersion ?? 'slipway.dev/v1alpha1',
    kind,
    metadata: { namespace: o.metadata.namespace ?? 'default', name: o.metadata.name, uid: o.metadata.uid ?? '', generation: o.metadata.generation ?? 0 },
    spec: redactStrings(structuredClone(o.spec ?? {})) as Record<string, unknown>,
    effective,
  };
}

export function renderDoc(doc: AuditDoc): string {
  return `# The desired state of ${doc.kind} ${doc.metadata.namespace}/${doc.metadata.name} and what Slipway decided (written by Slipway).\n${yaml.dump(doc, { lineWidth: -1, noRefs: true, sortKeys: false })}`;
}

export function parseDoc(content: string): AuditDoc | undefined {
  try {
    const d = yaml.load(content) as AuditDoc | undefined;
    return d && typeof d === 'object' && d.kind in AUDIT_KINDS ? d : undefined;
  } catch {
    return undefined;
  }
}

const model = (r: { modelVersion: string } | undefined): string => (r ? `model ${r.modelVersion}` : 'nothing');

/** Top-level spec fields that differ, as `a.b` paths one level deep. */
function changedFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[k];
    const y = b[k];
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x) && !Array.isArray(y)) {
      for (const k2 of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (JSON.stringify((x as Record<string, unknown>)[k2]) !== JSON.stringify((y as Record<string, unknown>)[k2])) out.push(`${k}.${k2}`);
      }
    } else out.push(k);
  }
  return out;
}

/** The failing measurement of a rollback, as "error-rate 5.66% vs 0.95%" or "backtest: Job failed", from the abort message. */
function evidence(message: string): string | undefined {
  const metric = /failed: ([\w.-]+): /.exec(message)?.[1];
  const at = message.lastIndexOf('(canary ');
  if (!metric || at < 0) return undefined;
  const [canary = '', stable] = message.slice(at + '(canary '.length).replace(/\)\s*$/, '').split(', stable ');
  const short = (v: string): string => (v.startsWith('Job ') ? v.replace(/^Job \S+ /, 'Job ') : (v.split(' ')[0] ?? v));
  return stable ? `${metric} ${short(canary)} vs ${short(stable)}` : `${metric}: ${short(canary)}`;
}

export interface ChangeContext {
  /** Who changed the spec, as the API server recorded it (the field manager of the latest spec write). */
  specManager?: string | undefined;
  resourceVersion?: string | undefined;
}

/**
 * The change from what the file holds to what the object is now, or undefined when they are the same (nothing
 * to commit: never an empty commit). The subject names the most significant thing that happened.
 */
export function describeChange(before: AuditDoc | undefined, after: AuditDoc | null, ctx: ChangeContext = {}): Omit<AuditChange, 'path' | 'content'> | undefined {
  const doc = after ?? before;
  if (!doc) return undefined;
  const who = `${doc.metadata.namespace}/${doc.metadata.name}`;
  const trailers: Record<string, string> = {
    'Slipway-Kind': doc.kind,
    'Slipway-Object': who,
    'Slipway-Uid': doc.metadata.uid,
    'Slipway-Generation': String(doc.metadata.generation),
  };
  if (ctx.resourceVersion) trailers['Slipway-Resource-Version'] = ctx.resourceVersion;
  const revision = after?.effective.canary?.revision ?? after?.effective.stable?.revision;
  if (revision) trailers['Slipway-Revision'] = revision;
  const result = (decision: string, subject: string, body: string[], actor: string): Omit<AuditChange, 'path' | 'content'> => ({
    subject: `${who}: ${subject}`,
    body: body.filter(Boolean).join('\n'),
    trailers: { ...trailers, 'Slipway-Decision': decision, 'Slipway-Actor': actor },
  });
  const controller = 'slipway';

  if (!after) return result('deleted', 'deleted', [`The ModelDeployment was deleted; it served ${model(before?.effective.stable)}.`], ctx.specManager ?? 'unknown');
  if (!before || before.metadata.uid !== after.metadata.uid) {
    const what = after.kind === 'ModelDeployment' ? ` (model ${String((after.spec.model as { version?: string } | undefined)?.version ?? '?')})` : '';
    return result('created', `created${what}`, [`Generation ${after.metadata.generation}.`], ctx.specManager ?? 'unknown');
  }
  if (after.metadata.generation !== before.metadata.generation && JSON.stringify(after.spec) !== JSON.stringify(before.spec)) {
    const fields = changedFields(before.spec, after.spec);
    const mv = (d: AuditDoc): string | undefined => (d.spec.model as { version?: string } | undefined)?.version;
    const what = after.kind === 'ModelDeployment' && mv(before) !== mv(after) ? `model version ${mv(before)} → ${mv(after)}` : fields.slice(0, 3).join(', ') + (fields.length > 3 ? ', …' : '');
    return result('spec-changed', `spec changed by ${ctx.specManager ?? 'unknown'}: ${what}`, [`Generation ${before.metadata.generation} → ${after.metadata.generation}.`, `Fields: ${fields.join(', ')}.`], ctx.specManager ?? 'unknown');
  }
  const b = before.effective;
  const a = after.effective;
  if (a.image !== b.image && a.image) return result('environment-image', `environment image ${a.image}${b.image ? ` (was ${b.image})` : ''}`, [], controller);
  if (a.winner !== b.winner && a.winner) return result('winner', `winner: ${a.winner}`, [], controller);
  if (a.phase !== b.phase && a.phase) return result('status', `now ${a.phase}${b.phase ? ` (was ${b.phase})` : ''}`, [], controller);
  if (JSON.stringify(a) === JSON.stringify(b)) {
    // The spec is the same (a generation bump with no change Slipway records, e.g. HPA replicas): nothing to say.
    return JSON.stringify(after) === JSON.stringify(before) ? undefined : result('spec-changed', `generation ${after.metadata.generation}`, [], ctx.specManager ?? 'unknown');
  }
  const request = a.lastRequest && a.lastRequest.id !== b.lastRequest?.id ? a.lastRequest : undefined;
  const requester = request ? `${request.by}` : controller;
  if (a.aborted && (b.aborted?.revision !== a.aborted.revision || b.aborted.reason !== a.aborted.reason)) {
    if (a.aborted.reason === 'RolledBack') {
      const ev = evidence(a.aborted.message);
      return result('rolled-back', `rolled back model ${a.aborted.modelVersion} → ${a.stable?.modelVersion ?? '?'}${ev ? ` (${ev})` : ''}`, [a.aborted.message], controller);
    }
    return result('aborted', `rollout of model ${a.aborted.modelVersion} stopped (${a.aborted.reason})`, [a.aborted.message], request ? requester : controller);
  }
  if (a.stable && a.stable.revision !== b.stable?.revision) {
    const from = b.stable ? ` (was model ${b.stable.modelVersion}, revision ${b.stable.revision})` : '';
    return result(b.stable ? 'promoted' : 'serving', `${b.stable ? 'promoted' : 'serving'} model ${a.stable.modelVersion} (revision ${a.stable.revision})${from}`, [], request ? requester : controller);
  }
  if (a.pause && !b.pause) return result('paused', `paused: ${a.pause.by}`, [], request ? requester : controller);
  if (!a.pause && b.pause) return result('resumed', 'resumed', [], request ? requester : controller);
  if (a.canary && (a.canary.revision !== b.canary?.revision)) {
    return result('rollout-started', `rollout of model ${a.canary.modelVersion} started beside ${model(a.stable)}`, [], controller);
  }
  if (a.canary && (a.canary.weight !== b.canary?.weight || a.canary.step !== b.canary?.step)) {
    const step = a.canary.step !== undefined && a.canary.steps ? `step ${Math.min(a.canary.step + 1, a.canary.steps)} of ${a.canary.steps}: ` : '';
    return result('step', `${step}${a.canary.weight ?? 0}% of traffic to model ${a.canary.modelVersion}`, [], request ? requester : controller);
  }
  if (request) return result(request.verb, `${request.verb} requested by ${request.by}: ${request.result}`, [], requester);
  if (!a.aborted && b.aborted) return result('retried', `rollout of model ${b.aborted.modelVersion} may start again`, [], controller);
  return result('status', 'status changed', [], controller);
}

/** The commit message: subject, blank line, body, blank line, trailers. */
export function commitMessage(c: Pick<AuditChange, 'subject' | 'body' | 'trailers'>): string {
  const trailers = Object.entries(c.trailers).map(([k, v]) => `${k}: ${v.replace(/\s+/g, ' ')}`).join('\n');
  return `${c.subject}\n\n${c.body ? `${c.body}\n\n` : ''}${trailers}\n`;
}
