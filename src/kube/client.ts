// The only door to the API server. kubeconfig.ts finds the server, TLS and credentials (client-node's loader only
// for exec plugins and the like); a token bucket paces requests when a rate limit is set; the requests themselves
// are plain HTTP so that every patch has the content type we chose, every error is a typed KubeApiError, and
// watches are streams we control.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { finished } from 'node:stream/promises';
import { parseStatusError } from './errors.ts';
import { loadConnection, loadWithClientNode, UnsupportedKubeconfig, type Connection } from './kubeconfig.ts';
import { ClientRateLimiter, type RateLimit } from './rate-limit.ts';
import { currentTrace } from './trace.ts';
import { apiVersionOf, resourcePath, type KubeObject, type ResourceType } from './resources.ts';

/** The one field manager Slipway applies with: ownership of every field it sets is in this name. */
export const FIELD_MANAGER = 'slipway';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Query;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Another representation than plain JSON, e.g. PartialObjectMetadata (metadata only). */
  accept?: string;
  /**
   * A successful answer is drained unread (an error's is still read for its Status): for writes whose result
   * nobody reads, the watch brings the object to the cache anyway, and parsing it would be CPU and garbage.
   */
  discardAnswer?: boolean;
}

export interface RequestObserver {
  (method: string, path: string, code: number, seconds: number): void;
}

export interface KubeClientOptions {
  kubeconfig?: string;
  context?: string;
  /** Client-side cap on concurrent requests (keep-alive sockets). */
  maxSockets?: number;
  /** Sent as User-Agent: the API server's audit log and metrics tell replicas apart by it. */
  userAgent?: string;
  /** Client-side rate limit (client-go's QPS/Burst) on every request this client sends; none when unset. */
  rateLimit?: RateLimit;
}

/**
 * Decides whether a write may start, and for how long it may run: `open()` throws when writing is not allowed
 * (this replica does not hold the lease, or might not any more), and otherwise returns a signal that aborts the
 * write the moment that changes.
 */
export interface WriteGate {
  open(): AbortSignal;
}

/** A write refused on this side because the replica may no longer act as the leader. */
export class NotLeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotLeaderError';
  }
}

function encodeQuery(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

export class KubeClient {
  readonly server: string;
  readonly namespace: string;
  private readonly connection: Connection;
  private readonly agent: HttpAgent | HttpsAgent;
  /**
   * Watches' connections, apart: each watch holds its connection for minutes, one per informer and namespace, so
   * in the bounded pool of requests enough of them (16 informers over 2 namespaces fill 32 sockets) would leave
   * no socket for any request. Watches are few and bounded by the informers; requests are what the pool bounds.
   */
  private readonly watchAgent: HttpAgent | HttpsAgent;
  private readonly observers: RequestObserver[] = [];
  private readonly userAgent: string;
  private readonly makeAgent: (maxSockets: number) => HttpAgent | HttpsAgent;
  private writeGate: WriteGate | undefined;
  private readonly limiter: ClientRateLimiter | undefined;
  private readonly throttleObservers: ((waitMs: number) => void)[] = [];

  private constructor(connection: Connection, makeAgent: (maxSockets: number) => HttpAgent | HttpsAgent, maxSockets: number, userAgent: string, rateLimit?: RateLimit) {
    this.connection = connection;
    this.makeAgent = makeAgent;
    this.agent = makeAgent(maxSockets);
    this.watchAgent = makeAgent(Infinity);
    this.server = connection.server; // without a trailing slash (kubeconfig.ts)
    this.namespace = connection.namespace;
    this.userAgent = userAgent;
    this.limiter = rateLimit && rateLimit.qps > 0 ? new ClientRateLimiter(rateLimit) : undefined;
  }

  /**
   * Loads --kubeconfig / $KUBECONFIG / the in-cluster service account / ~/.kube/config, like kubectl
   * (kubeconfig.ts; client-node's loader only for what that does not read).
   */
  static async load(opts: KubeClientOptions = {}): Promise<KubeClient> {
    const where = { ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) };
    let connection: Connection;
    try {
      connection = loadConnection(where);
    } catch (err) {
      if (!(err instanceof UnsupportedKubeconfig)) throw err;
      connection = await loadWithClientNode(where);
    }
    const tls = connection.tls;
    const makeAgent = (maxSockets: number): HttpAgent | HttpsAgent =>
      connection.server.startsWith('https:') ? new HttpsAgent({ keepAlive: true, maxSockets, ...tls }) : new HttpAgent({ keepAlive: true, maxSockets });
    return new KubeClient(connection, makeAgent, opts.maxSockets ?? 32, opts.userAgent ?? 'slipway', opts.rateLimit);
  }

  /** Which way the connection was found: in-cluster, a kubeconfig's path, or client-node's loader. */
  get source(): string {
    return this.connection.source;
  }

  /**
   * The same identity and server over connections of its own, and outside the rate limit: a lease renewal must
   * never wait behind watches and reconciles for a socket or a token, nor share a dead keep-alive connection.
   */
  withOwnConnections(maxSockets = 2): KubeClient {
    return new KubeClient(this.connection, this.makeAgent, maxSockets, this.userAgent);
  }

  /** From now on every write (POST, PUT, PATCH, DELETE) asks the gate first and is aborted when it closes. */
  gateWrites(gate: WriteGate | undefined): void {
    this.writeGate = gate;
  }

  /** Sees every wait for the rate limiter's token (ms; 0 when none was needed). */
  observeThrottle(observer: (waitMs: number) => void): void {
    this.throttleObservers.push(observer);
  }

  /** Sees every response (metrics: requests per reconcile, latency, error codes). */
  observe(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  private async open(opts: RequestOptions, agent: HttpAgent | HttpsAgent = this.agent): Promise<{ res: IncomingMessage; started: number; throttledMs: number }> {
    let throttledMs = 0;
    if (this.limiter) {
      throttledMs = await this.limiter.take();
      for (const o of this.throttleObservers) o(throttledMs);
    }
    const url = new URL(this.server + opts.path + encodeQuery(opts.query));
    // Per request, so projected service-account tokens and exec plugins' short-lived ones stay fresh.
    const headers: Record<string, string> = { Accept: opts.accept ?? 'application/json', 'User-Agent': this.userAgent, ...(await this.connection.headers()) };
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    // A write may start only through the gate, and the gate may abort it while it runs.
    const gated = opts.method !== 'GET' && this.writeGate ? this.writeGate.open() : undefined;
    const signal = gated && opts.signal ? AbortSignal.any([gated, opts.signal]) : (gated ?? opts.signal);
    const started = performance.now();
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: opts.method, headers, agent, ...(signal ? { signal } : {}) }, resolve);
      if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`${opts.method} ${opts.path}: no answer in ${opts.timeoutMs} ms`)));
      // An abort says why it happened (e.g. the lease term ended): that reason is the error, not "aborted".
      req.on('error', (err) => reject(signal?.aborted && signal.reason instanceof Error ? signal.reason : err));
      req.end(payload);
    });
    return { res, started, throttledMs };
  }

  private report(method: string, path: string, code: number, started: number, throttledMs = 0): void {
    const seconds = (performance.now() - started) / 1000;
    for (const o of this.observers) o(method, path, code, seconds);
    currentTrace()?.requests.push({ request: `${method} ${path.replace(/^\/apis?\/|\/namespaces\/[^/]+/g, '')}`, code, ms: Math.round(seconds * 10_000) / 10, throttledMs: Math.round(throttledMs * 10) / 10 });
  }

  /** A request whose answer is read whole; non-2xx answers throw a KubeApiError. */
  async request<T>(opts: RequestOptions): Promise<T> {
    const { res, started, throttledMs } = await this.open({ timeoutMs: 30_000, ...opts });
    if (opts.discardAnswer && res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) {
      res.resume();
      await finished(res);
      this.report(opts.method, opts.path, res.statusCode, started, throttledMs);
      return undefined as T;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const code = res.statusCode ?? 0;
    this.report(opts.method, opts.path, code, started, throttledMs);
    if (code < 200 || code >= 300) {
      throw parseStatusError(code, body, opts.method, opts.path, headerOf(res, 'retry-after'));
    }
    return (body ? JSON.parse(body) : undefined) as T;
  }

  /** A streaming GET (watch). The caller owns the response and must destroy it. */
  async stream(opts: Omit<RequestOptions, 'method' | 'body'>): Promise<IncomingMessage> {
    const { res, started } = await this.open({ ...opts, method: 'GET' }, this.watchAgent);
    const code = res.statusCode ?? 0;
    this.report('WATCH', opts.path, code, started);
    if (code < 200 || code >= 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      throw parseStatusError(code, Buffer.concat(chunks).toString('utf8'), 'GET', opts.path, headerOf(res, 'retry-after'));
    }
    return res;
  }

  get<T extends KubeObject>(r: ResourceType, namespace: string | undefined, name: string, opts: { signal?: AbortSignal } = {}): Promise<T> {
    return this.request<T>({ method: 'GET', path: resourcePath(r, namespace, name), ...opts });
  }

  create<T extends KubeObject>(r: ResourceType, obj: T, opts: { signal?: AbortSignal } = {}): Promise<T> {
    return this.request<T>({ method: 'POST', path: resourcePath(r, obj.metadata.namespace), body: obj, query: { fieldManager: FIELD_MANAGER }, ...opts });
  }

  /** A create whose answer nobody reads (an Event): the body is drained, not parsed. */
  async createOnly(r: ResourceType, obj: KubeObject): Promise<void> {
    await this.request<void>({ method: 'POST', path: resourcePath(r, obj.metadata.namespace), body: obj, query: { fieldManager: FIELD_MANAGER }, discardAnswer: true });
  }

  /** Replace with optimistic concurrency: `obj.metadata.resourceVersion` must be current or the server answers 409. */
  replace<T extends KubeObject>(r: ResourceType, obj: T, opts: { signal?: AbortSignal } = {}): Promise<T> {
    return this.request<T>({ method: 'PUT', path: resourcePath(r, obj.metadata.namespace, obj.metadata.name), body: obj, query: { fieldManager: FIELD_MANAGER }, ...opts });
  }

  /**
   * Server-side apply of a full configuration: fields we applied before and leave out now are removed.
   * `force` takes ownership of fields another manager set (a hand edit of a field we own is reverted). The
   * answer (the whole object, managed fields and all) is not read: the informers' watches bring it.
   */
  async apply(r: ResourceType, obj: KubeObject, opts: { force?: boolean; subresource?: 'status' } = {}): Promise<void> {
    const body = { ...obj, apiVersion: apiVersionOf(r), kind: r.kind };
    await this.request<void>({
      method: 'PATCH',
      path: resourcePath(r, obj.metadata.namespace, obj.metadata.name, opts.subresource),
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: opts.force ?? true },
      discardAnswer: true,
    });
  }

  mergePatch<T extends KubeObject>(r: ResourceType, namespace: string | undefined, name: string, patch: unknown, subresource?: string): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: resourcePath(r, namespace, name, subresource),
      body: patch,
      contentType: 'application/merge-patch+json',
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** Deletes with the given propagation; a uid precondition makes sure we delete the object we looked at. */
  delete(r: ResourceType, namespace: string | undefined, name: string, opts: { uid?: string; propagationPolicy?: 'Background' | 'Foreground' | 'Orphan' } = {}): Promise<unknown> {
    return this.request({
      method: 'DELETE',
      path: resourcePath(r, namespace, name),
      body: {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        propagationPolicy: opts.propagationPolicy ?? 'Background',
        ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
      },
    });
  }

  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}

function headerOf(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

