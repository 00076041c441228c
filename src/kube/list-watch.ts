// List-then-watch of one resource type, written for the ways real watches fail: paged lists, bookmarks, a
// server-side timeout with jitter so watches end cleanly, an inactivity watchdog for connections that go
// silent, a relist when the resource version has expired (410), and exponential backoff with full jitter that
// honours Retry-After. One connection at a time; it never stops on its own, only when told to. Every way a watch
// can end that is not a long healthy stream (a 410, a close right after it opened, an error) counts towards the
// backoff, so a misbehaving server gets a bounded rate of requests, never a hot loop.
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { KubeClient } from './client.ts';
import { isGone, isTooLargeResourceVersion, KubeApiError, type StatusCause } from './errors.ts';
import { apiVersionOf, resourcePath, type KubeObject, type ResourceType } from './resources.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ListWatchHandlers<T> {
  /** A complete, consistent list: the first one and every relist. */
  onList(items: T[], resourceVersion: string): void;
  onEvent(type: WatchEventType, obj: T): void;
  /** Why the watch restarted: expired, inactive, closed, error, throttled. */
  onRestart?(reason: RestartReason, err?: unknown): void;
  /** Any byte of a watch (events and bookmarks alike): for staleness metrics. */
  onActivity?(): void;
}

export type RestartReason = 'expired' | 'inactive' | 'closed' | 'error' | 'throttled';

export interface ListWatchOptions<T = KubeObject> {
  namespace?: string;
  labelSelector?: string;
  /**
   * Only the objects' metadata (PartialObjectMetadata): for knowing which names exist and who owns them, at a
   * fraction of the memory and bytes of whole objects.
   */
  metadataOnly?: boolean;
  pageSize?: number;
  /**
   * What is kept of each object, applied as it arrives (each list page, each event): the untrimmed objects of a
   * long list never all sit in memory at once.
   */
  transform?: (obj: T) => T;
  /** The server ends each watch after this many seconds, plus up to the same again of jitter. */
  watchTimeoutSeconds?: number;
  /** No byte for this long (bookmarks arrive about once a minute) and the connection is presumed dead. */
  inactivityTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** A watch that ends cleanly sooner than this (without an event) counts as a failure for the backoff. */
  minWatchMs?: number;
  random?: () => number;
}

interface ListResponse<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

interface RawEvent {
  type: string;
  object: KubeObject & { code?: number; reason?: string; message?: string };
}

class InactivityError extends Error {}


export class ListWatch<T extends KubeObject> {
  private readonly client: KubeClient;
  private readonly resource: ResourceType;
  private readonly handlers: ListWatchHandlers<T>;
  private readonly opts: Required<Omit<ListWatchOptions<T>, 'namespace' | 'labelSelector' | 'metadataOnly' | 'transform'>> & Pick<ListWatchOptions<T>, 'namespace' | 'labelSelector' | 'metadataOnly' | 'transform'>;
  private resourceVersion: string | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private current: IncomingMessage | undefined;
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();

  constructor(client: KubeClient, resource: ResourceType, handlers: ListWatchHandlers<T>, opts: ListWatchOptions<T> = {}) {
    this.client = client;
    this.resource = resource;
    this.handlers = handlers;
    this.opts = {
      // Small pages: a page's body, its parsed objects and their cached form are what a list holds at once (with
      // the transform applied per page, they took a cold start's peak RSS on 3000 ModelDeployments from ~300 to
      // ~220 MiB: bench/README.md, ADR 0019).
      pageSize: 100,
      watchTimeoutSeconds: 300,
      inactivityTimeoutMs: 150_000,
      backoffInitialMs: 500,
      backoffMaxMs: 30_000,
      minWatchMs: 1_000,
      random: Math.random,
      ...opts,
    };
  }

  get lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.current?.destroy();
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) {
          const { items, resourceVersion } = await this.list();
          if (this.stopped) return;
          this.handlers.onList(items, resourceVersion);
          this.resourceVersion = resourceVersion;
        }
        const started = performance.now();
        const events = await this.watch();
        this.handlers.onRestart?.('closed');
        // A long watch, or one that delivered something, is healthy: the next one starts at once. A server
        // that closes every watch as soon as it opens gets the backoff instead of a request loop.
        if (events > 0 || performance.now() - started >= this.opts.minWatchMs) failures = 0;
        else await this.sleep(this.backoff(++failures, undefined));
      } catch (err) {
        if (this.stopped) return;
        failures++;
        if (isGone(err) || isTooLargeResourceVersion(err)) {
          // Our resource version is older than etcd's compaction window (410), or newer than what this API
          // server has seen (after an etcd restore, or behind a lagging replica): only a new list is consistent.
          this.resourceVersion = undefined;
          this.handlers.onRestart?.('expired', err);
          // One expiry relists at once; a server that keeps answering 410 is retried with backoff.
          if (failures > 1) await this.sleep(this.backoff(failures - 1, err));
          continue;
        }
        const throttled = err instanceof KubeApiError && err.code === 429;
        this.handlers.onRestart?.(err instanceof InactivityError ? 'inactive' : throttled ? 'throttled' : 'error', err);
        await this.sleep(this.backoff(failures, err));
      }
    }
  }

  /** Full jitter (AWS architecture blog): uniform in [0, min(max, initial·2^n)]; Retry-After is a floor. */
  backoff(failures: number, err: unknown): number {
    const ceiling = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.min(failures - 1, 30));
    const jittered = this.opts.random() * ceiling;
    const retryAfter = err instanceof KubeApiError && err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : 0;
    return Math.max(jittered, retryAfter);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** For a metadata-only list-watch, the representation to ask for (JSON of the whole object as the fallback). */
  private accept(as: 'PartialObjectMetadata' | 'PartialObjectMetadataList'): { accept?: string } {
    return this.opts.metadataOnly ? { accept: `application/json;as=${as};g=meta.k8s.io;v=v1, application/json` } : {};
  }

  private query(): Record<string, string | undefined> {
    return { labelSelector: this.opts.labelSelector };
  }

  private async list(): Promise<{ items: T[]; resourceVersion: string }> {
    const path = resourcePath(this.resource, this.opts.namespace);
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string;
    do {
      const page: ListResponse<T> = await this.client.request({
        method: 'GET',
        path,
        query: { ...this.query(), limit: this.opts.pageSize, continue: cont },
        signal: this.abort.signal,
        timeoutMs: 60_000,
        ...this.accept('PartialObjectMetadataList'),
      });
      for (const item of page.items ?? []) {
        // List items carry no apiVersion/kind; watch events do. Make them alike.
        item.apiVersion = apiVersionOf(this.resource);
        item.kind = this.resource.kind;
        items.push(this.opts.transform ? this.opts.transform(item) : item);
      }
      resourceVersion = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  /** One watch, until it ends; returns how many events it delivered. */
  private async watch(): Promise<number> {
    const timeoutSeconds = Math.round(this.opts.watchTimeoutSeconds * (1 + this.opts.random()));
    // The watchdog covers the whole watch, from the request on: a server that never sends the response
    // headers is as dead as one that goes silent afterwards.
    const conn = new AbortController();
    const signal = AbortSignal.any([this.abort.signal, conn.signal]);
    let watchdog: NodeJS.Timeout | undefined;
    let inactive: InactivityError | undefined;
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        inactive = new InactivityError(`no watch activity for ${this.opts.inactivityTimeoutMs} ms`);
        conn.abort(inactive);
        this.current?.destroy(inactive);
      }, this.opts.inactivityTimeoutMs);
    };
    arm();
    let events = 0;
    let res: IncomingMessage | undefined;
    try {
      res = await this.client.stream({
        path: resourcePath(this.resource, this.opts.namespace),
        query: {
          ...this.query(),
          watch: 'true',
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeoutSeconds),
        },
        signal,
        ...this.accept('PartialObjectMetadata'),
      });
      this.current = res;
      arm();
      // One decoder for the whole stream: a multi-byte character split across two chunks is joined, never
      // turned into U+FFFD.
      const decoder = new StringDecoder('utf8');
      let buffered = '';
      for await (const chunk of res) {
        arm();
        this.handlers.onActivity?.();
        buffered += decoder.write(chunk as Buffer);
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line && this.dispatch(line)) events++;
        }
      }
      return events;
    } catch (err) {
      throw inactive ?? err;
    } finally {
      clearTimeout(watchdog);
      this.current = undefined;
      res?.destroy();
    }
  }

  /** Applies one watch line; true for an object event, false for a bookmark. */
  private dispatch(line: string): boolean {
    let event: RawEvent;
    try {
      event = JSON.parse(line) as RawEvent;
    } catch {
      // A line that is not JSON means the stream is corrupt: resume from the last good resource version.
      throw new Error(`undecodable watch line: ${line.slice(0, 200)}`);
    }
    const obj = event.object;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const resourceVersion = obj.metadata.resourceVersion;
        this.handlers.onEvent(event.type, this.opts.transform ? this.opts.transform(obj as T) : (obj as T));
        if (resourceVersion) this.resourceVersion = resourceVersion;
        return true;
      }
      case 'BOOKMARK':
        if (obj.metadata.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
        return false;
      case 'ERROR':
        throw new KubeApiError({
          code: obj.code ?? 500,
          reason: obj.reason,
          message: obj.message ?? 'watch error',
          causes: (obj as { details?: { causes?: StatusCause[] } }).details?.causes,
          method: 'WATCH',
          path: resourcePath(this.resource, this.opts.namespace),
        });
      default:
        throw new Error(`unknown watch event type ${event.type}`);
    }
  }
}
