// A cache of one resource type kept current by a ListWatch, with secondary indexes (owner, label) and change
// notifications. Controllers read only from here; a relist turns into the add/update/delete events it implies.
import type { KubeClient } from './client.ts';
import { ListWatch, type ListWatchOptions, type RestartReason, type WatchEventType } from './list-watch.ts';
import { objectKey, type KubeObject, type ResourceType } from './resources.ts';

export type IndexFunc<T> = (obj: T) => string[];

export interface CacheEvent<T> {
  type: WatchEventType;
  obj: T;
  old?: T;
}

export type CacheHandler<T> = (event: CacheEvent<T>) => void;

export class Store<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indexers: Record<string, IndexFunc<T>>;
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  constructor(indexers: Record<string, IndexFunc<T>> = {}) {
    this.indexers = indexers;
    for (const name of Object.keys(indexers)) this.indices.set(name, new Map());
  }

  get size(): number {
    return this.items.size;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  byIndex(index: string, value: string): T[] {
    const keys = this.indices.get(index)?.get(value);
    if (!keys) return [];
    return [...keys].map((k) => this.items.get(k)).filter((o): o is T => o !== undefined);
  }

  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    this.index(key, obj);
    return old;
  }

  remove(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) {
      this.unindex(key, old);
      this.items.delete(key);
    }
    return old;
  }

  /**
   * Replaces the whole content (or, with `scope`, the part of it `scope` selects: one namespace's objects of an
   * informer over several); returns the events that turn the old content into the new.
   */
  replace(items: T[], scope?: (obj: T) => boolean): CacheEvent<T>[] {
    const events: CacheEvent<T>[] = [];
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.upsert(obj);
      if (!old) events.push({ type: 'ADDED', obj });
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) events.push({ type: 'MODIFIED', obj, old });
    }
    for (const [key, obj] of [...this.items]) {
      if (!seen.has(key) && (!scope || scope(obj))) {
        this.remove(obj);
        events.push({ type: 'DELETED', obj });
      }
    }
    return events;
  }

  private index(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) {
      const index = this.indices.get(name);
      if (!index) continue;
      for (const value of fn(obj)) {
        const keys = index.get(value) ?? new Set<string>();
        index.set(value, keys);
        keys.add(key);
      }
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) {
      const index = this.indices.get(name);
      for (const value of fn(obj)) {
        const keys = index?.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index?.delete(value);
      }
    }
  }
}

/** Index of objects by the uid of their controller owner. */
export const byControllerUid = <T extends KubeObject>(obj: T): string[] =>
  (obj.metadata.ownerReferences ?? []).filter((r) => r.controller).map((r) => r.uid);

export interface InformerHooks {
  onRestart?: (resource: string, reason: RestartReason, err?: unknown) => void;
  onActivity?: (resource: string) => void;
  onHandlerError?: (resource: string, err: unknown) => void;
}

/**
 * What the cache keeps of an object: managedFields are dropped (they are often the larger half of an object and
 * nothing reads them from the cache).
 */
export function trimForCache<T extends KubeObject>(obj: T): T {
  if (obj.metadata.managedFields === undefined) return obj;
  // A new object rather than `delete`: an object that loses a property goes to V8's dictionary mode, several
  // times the size of the same fields in a fast object.
  const { managedFields, ...metadata } = obj.metadata;
  const manager = specManagerOf(managedFields as ManagedFieldsEntry[]);
  return { ...obj, metadata: manager ? { ...metadata, specManager: manager } : metadata };
}

/** Values that are (nearly) unique to their object: not worth a place in the intern table. */
const UNIQUE_KEYS = new Set(['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'lastTransitionTime', 'lastUpdateTime', 'lastProbeTime', 'startedAt', 'finishedAt', 'startTime', 'lastScheduleTime', 'lastSuccessfulTime', 'since', 'at']);
const INTERN_MAX_LENGTH = 128;
const INTERN_TABLE_MAX = 50_000;
const internTable = new Map<string, string>();

function internString(s: string): string {
  const known = internTable.get(s);
  if (known !== undefined) return known;
  // Bounded: when full it starts again (strings already shared stay shared; later ones share among themselves).
  if (internTable.size >= INTERN_TABLE_MAX) internTable.clear();
  internTable.set(s, s);
  return s;
}

/**
 * One copy of each repeated short string value in a cached object: JSON.parse gives every occurrence its own
 * string ("slipway", "model-server", an image, a condition's reason and message …, the same in thousands of
 * objects). Keys are shared by V8 already. Objects are changed in place (fresh ones: just parsed).
 */
export function internStrings<T>(value: T): T {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === 'string') {
        if (v.length <= INTERN_MAX_LENGTH) value[i] = internString(v);
      } else if (v !== null && typeof v === 'object') internStrings(v);
    }
  } else if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      if (typeof v === 'string') {
        if (v.length <= INTERN_MAX_LENGTH && !UNIQUE_KEYS.has(k)) o[k] = internString(v);
      } else if (v !== null && typeof v === 'object') internStrings(v);
    }
  }
  return value;
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

/**
 * Who wrote the spec last, as the API server recorded it: the field manager of the newest managedFields entry
 * that owns spec fields (not a status or scale subresource write). Kept in the cache as metadata.specManager.
 */
export function specManagerOf(entries: ManagedFieldsEntry[] | undefined): string | undefined {
  let best: ManagedFieldsEntry | undefined;
  for (const e of entries ?? []) {
    if (e.subresource || !e.fieldsV1 || !('f:spec' in e.fieldsV1)) continue;
    if (!best || (e.time ?? '') >= (best.time ?? '')) best = e;
  }
  return best?.manager;
}

/** What an informer watches and keeps: ListWatch's options, or several namespaces (one list-watch each, one cache). */
export type InformerOptions<T extends KubeObject> = Omit<ListWatchOptions<T>, 'transform'> & {
  /** Watch these namespaces only (a Role in each is enough); all namespaces when neither this nor namespace is set. */
  namespaces?: string[];
  indexers?: Record<string, IndexFunc<T>>;
  hooks?: InformerHooks;
  /** What the cache keeps of each object, when the readers need only part of it (e.g. a pod's status). */
  transform?: (obj: T) => T;
};

export class Informer<T extends KubeObject> {
  readonly resource: ResourceType;
  readonly store: Store<T>;
  private readonly handlers: CacheHandler<T>[] = [];
  private readonly listWatches: ListWatch<T>[];
  private syncedResolve!: () => void;
  readonly synced: Promise<void>;
  private isSynced = false;

  constructor(client: KubeClient, resource: ResourceType, opts: InformerOptions<T> = {}) {
    this.resource = resource;
    this.store = new Store<T>(opts.indexers);
    // Trimmed as each object arrives (in ListWatch): a list's pages are never all held whole.
    const own = opts.transform;
    const transform = own ? (o: T): T => internStrings(own(trimForCache(o))) : (o: T): T => internStrings(trimForCache(o));
    this.synced = new Promise((r) => (this.syncedResolve = r));
    const hooks = opts.hooks ?? {};
    const { namespaces, indexers: _indexers, hooks: _hooks, transform: _transform, ...listWatchOpts } = opts;
    // One list-watch per namespace when given several: each relist replaces its own namespace's part of the cache.
    const scopes: (string | undefined)[] = namespaces?.length ? [...new Set(namespaces)] : [opts.namespace];
    const listed = new Set<string | undefined>();
    this.listWatches = scopes.map((namespace) => new ListWatch<T>(
      client,
      resource,
      {
        onList: (items) => {
          const scope = namespace === undefined ? undefined : (o: T): boolean => o.metadata.namespace === namespace;
          for (const e of this.store.replace(items, scope)) this.emit(e, hooks);
          listed.add(namespace);
          if (listed.size === scopes.length) {
            this.isSynced = true;
            this.syncedResolve();
          }
        },
        onEvent: (type, obj) => {
          if (type === 'DELETED') {
            const old = this.store.remove(obj);
            this.emit({ type, obj: old ?? obj }, hooks);
            return;
          }
          const old = this.store.upsert(obj);
          this.emit(old ? { type: 'MODIFIED', obj, old } : { type: 'ADDED', obj }, hooks);
        },
        onRestart: (reason, err) => hooks.onRestart?.(resource.plural, reason, err),
        onActivity: () => hooks.onActivity?.(resource.plural),
      },
      { ...listWatchOpts, transform, ...(namespace === undefined ? {} : { namespace }) },
    ));
  }

  get hasSynced(): boolean {
    return this.isSynced;
  }

  on(handler: CacheHandler<T>): void {
    this.handlers.push(handler);
  }

  start(): void {
    for (const lw of this.listWatches) lw.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.listWatches.map((lw) => lw.stop()));
  }

  private emit(event: CacheEvent<T>, hooks: InformerHooks): void {
    for (const h of this.handlers) {
      try {
        h(event);
      } catch (err) {
        // A handler bug must not tear down the watch that every other handler depends on.
        hooks.onHandlerError?.(this.resource.plural, err);
      }
    }
  }
}
