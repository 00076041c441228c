// Requests: how a person or a tool asks a ModelDeployment for a verb (promote, abort, undo, …) without touching
// its spec. A request is the `slipway.dev/request` annotation, a small JSON object with a unique id:
//
//   slipway.dev/request: {"id":"5f2c9a1e","verb":"undo","revision":"7c1d2e3f4a"}
//
// The API server stamps who wrote it into `slipway.dev/requested-by` (the chart's MutatingAdmissionPolicy, from
// request.userInfo), so the requester is the authenticated user, not something anyone can type. The controller
// acts on each id once and records it in status.lastRequest: a GitOps tool that re-applies the same manifest
// (and does not own the annotation) neither repeats nor undoes a verb.
import { REQUEST_VERBS } from '../../api/modeldeployment.ts';

export const ANNOTATION_REQUEST = 'slipway.dev/request';
export const ANNOTATION_REQUESTED_BY = 'slipway.dev/requested-by';

export type Verb = (typeof REQUEST_VERBS)[number];

export interface VerbRequest {
  id: string;
  verb: Verb;
  /** undo: the revision to go back to. */
  revision?: string;
  /** Who asked, as the API server stamped it. */
  by: string;
}

/** When no admission policy stamped the request (the chart's request policy is not installed). */
export const UNSTAMPED = 'unknown (no slipway.dev/requested-by stamp: install the chart\'s request policy)';

export function requestBody(verb: Verb, id: string, revision?: string): string {
  return JSON.stringify({ id, verb, ...(revision ? { revision } : {}) });
}

/** The request in the annotations, an error a person can act on, or nothing. */
export function parseRequest(annotations: Record<string, string> | undefined): VerbRequest | { id: string; error: string } | undefined {
  const raw = annotations?.[ANNOTATION_REQUEST];
  if (raw === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return { id: raw, error: `${ANNOTATION_REQUEST} must be JSON such as {"id":"<unique>","verb":"promote"}; use kubectl slipway to write it` };
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as { id?: unknown; verb?: unknown; revision?: unknown };
  const id = typeof b.id === 'string' && b.id.length > 0 && b.id.length <= 64 ? b.id : undefined;
  if (!id) return { id: raw, error: `${ANNOTATION_REQUEST} needs an "id" (a unique string of at most 64 characters), so that it is acted on once` };
  if (typeof b.verb !== 'string' || !(REQUEST_VERBS as readonly string[]).includes(b.verb)) {
    return { id, error: `${ANNOTATION_REQUEST}: unknown verb ${JSON.stringify(b.verb)}; one of ${REQUEST_VERBS.join(', ')}` };
  }
  const verb = b.verb as Verb;
  if (verb === 'undo' && (typeof b.revision !== 'string' || b.revision.length === 0)) {
    return { id, error: `${ANNOTATION_REQUEST}: undo needs the "revision" to go back to (kubectl slipway history lists them)` };
  }
  return { id, verb, ...(verb === 'undo' ? { revision: b.revision as string } : {}), by: annotations?.[ANNOTATION_REQUESTED_BY] ?? UNSTAMPED };
}
