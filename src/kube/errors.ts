// The API server's errors as types the controllers act on: a Status body mapped to what to do next.

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** An error answer from the API server (a non-2xx response, usually with a metav1.Status body). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly causes: StatusCause[];
  readonly retryAfterSeconds: number | undefined;
  readonly method: string;
  readonly path: string;
  /** The API server's own message, without our method and path: what a user should read. */
  readonly statusMessage: string;

  constructor(init: { code: number; reason?: string | undefined; message: string; causes?: StatusCause[] | undefined; retryAfterSeconds?: number | undefined; method: string; path: string }) {
    super(`${init.method} ${init.path}: ${init.code} ${init.reason ?? ''}: ${init.message}`.replace(/ +:/, ':'));
    this.name = 'KubeApiError';
    this.code = init.code;
    this.reason = init.reason ?? reasonForCode(init.code);
    this.causes = init.causes ?? [];
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.method = init.method;
    this.path = init.path;
    this.statusMessage = init.message;
  }
}

function reasonForCode(code: number): string {
  switch (code) {
    case 400: return 'BadRequest';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 409: return 'Conflict';
    case 410: return 'Expired';
    case 422: return 'Invalid';
    case 429: return 'TooManyRequests';
    case 500: return 'InternalError';
    case 503: return 'ServiceUnavailable';
    case 504: return 'Timeout';
    default: return 'Unknown';
  }
}

export function parseStatusError(code: number, body: string, method: string, path: string, retryAfter: string | undefined): KubeApiError {
  let status: { reason?: string; message?: string; details?: { causes?: StatusCause[]; retryAfterSeconds?: number } } = {};
  try {
    status = JSON.parse(body) as typeof status;
  } catch {
    status = { message: body.slice(0, 500) || `HTTP ${code}` };
  }
  const header = retryAfter !== undefined ? Number(retryAfter) : undefined;
  return new KubeApiError({
    code,
    reason: status.reason || undefined,
    message: status.message ?? `HTTP ${code}`,
    causes: status.details?.causes,
    retryAfterSeconds: Number.isFinite(header) ? header : status.details?.retryAfterSeconds,
    method,
    path,
  });
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.code === 409;
export const isGone = (err: unknown): boolean => err instanceof KubeApiError && (err.code === 410 || err.reason === 'Expired');
/**
 * The resource version asked for is newer than anything this API server has seen (504 with the cause
 * ResourceVersionTooLarge): waiting does not help when etcd was restored or the server lags for good; relist.
 */
export const isTooLargeResourceVersion = (err: unknown): boolean =>
  err instanceof KubeApiError &&
  (err.causes.some((c) => c.reason === 'ResourceVersionTooLarge') || /too large resource version/i.test(err.statusMessage));
export const isAlreadyExists = (err: unknown): boolean => err instanceof KubeApiError && err.reason === 'AlreadyExists';

/**
 * What a reconcile should do about an error: Conflict (re-read and retry at once), NotFound, TooManyRequests (retry
 * after the server's Retry-After), Terminal (the request can never succeed as is: invalid, forbidden; tell the user,
 * do not hot-loop), Transient (everything else: retry with backoff).
 */
export const ERROR_CLASSES = ['Conflict', 'NotFound', 'TooManyRequests', 'Terminal', 'Transient'] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export function classify(err: unknown): ErrorClass {
  if (!(err instanceof KubeApiError)) return 'Transient';
  if (err.code === 409) return 'Conflict';
  if (err.code === 404) return 'NotFound';
  if (err.code === 429) return 'TooManyRequests';
  if (err.code === 400 || err.code === 403 || err.code === 422) return 'Terminal';
  return 'Transient';
}
