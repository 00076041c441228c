// The list-watch against an in-process HTTP server that misbehaves the ways real API servers and networks do:
// 410 Gone, silence, dropped connections, 429 with Retry-After, garbage lines, paging and bookmarks.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import type { KubeClient } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { Informer, internStrings } from '../../src/kube/informer.ts';
import { ListWatch, type RestartReason } from '../../src/kube/list-watch.ts';
import { Resources, type KubeObject } from '../../src/kube/resources.ts';
import { eventually } from '../../local/eventually.ts';
import { clientFor } from '../support/fake-kubeconfig.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

interface FakeServer {
  client: KubeClient;
  requests: URL[];
  server: Server;
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.closeAllConnections?.() ?? s.close()));

/** Serves one scripted answer per request, in order; the last one repeats. */
async function fakeApiServer(script: Handler[]): Promise<FakeServer> {
  const requests: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url);
    const handler = script[Math.min(requests.length - 1, script.length - 1)];
    handler?.(req, res, url);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = await clientFor((server.address() as { port: number }).port);
  return { client, requests, server };
}

const pod = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

const list = (rv: string, items: KubeObject[], cont?: string): Handler => (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ kind: 'PodList', metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) }, items }));
};

/** A watch that writes the given lines, then either ends, hangs, or drops the connection. */
const watch = (lines: unknown[], then: 'end' | 'hang' | 'drop'): Handler => (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
  for (const l of lines) res.write(typeof l === 'string' ? `${l}\n` : `${JSON.stringify(l)}\n`);
  if (then === 'end') res.end();
  if (then === 'drop') setTimeout(() => res.socket?.destroy(), 20);
};

const hang: Handler = () => {};

function recorder() {
  const lists: string[][] = [];
  const events: string[] = [];
  const restarts: RestartReason[] = [];
  return {
    lists,
    events,
    restarts,
    handlers: {
      onList: (items: KubeObject[]) => lists.push(items.map((i) => i.metadata.name)),
      onEvent: (type: string, obj: KubeObject) => events.push(`${type} ${obj.metadata.name}`),
      onRestart: (reason: RestartReason) => restarts.push(reason),
    },
  };
}

const fast = { backoffInitialMs: 5, backoffMaxMs: 20, inactivityTimeoutMs: 5_000, random: () => 0.5 };

/** Runs a list-watch against a server scripted to force one relist; returns what it recorded once it watches again. */
async function untilRelisted(script: Handler[]): Promise<{ requests: URL[]; r: ReturnType<typeof recorder> }> {
  const { client, requests } = await fakeApiServer(script);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, fast);
  lw.start();
  await eventually('a relist', () => r.lists.length === 2);
  await eventually('a watch from the new list', () => requests.length >= 4);
  await lw.stop();
  return { requests, r };
}

test('a 410 during the watch makes it list again and resume from the new list', async () => {
  const { requests, r } = await untilRelisted([
    list('10', [pod('a', '9')]),
    watch([{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (55)' } }], 'hang'),
    list('60', [pod('a', '9'), pod('b', '58')]),
    hang,
  ]);
  assert.deepEqual(r.lists, [['a'], ['a', 'b']]);
  assert.ok(r.restarts.includes('expired'));
  assert.equal(requests[3]?.searchParams.get('resourceVersion'), '60');
});

test('a silent watch is dropped by the inactivity watchdog and resumed from the last resource version', async () => {
  const { client, requests } = await fakeApiServer([
    list('10', []),
    watch([{ type: 'ADDED', object: pod('a', '11') }], 'hang'),
    watch([{ type: 'ADDED', object: pod('b', '12') }], 'hang'),
  ]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, { ...fast, inactivityTimeoutMs: 200 });
  lw.start();
  await eventually('the event after the reconnect', () => r.events.includes('ADDED b'));
  await lw.stop();
  assert.ok(r.restarts.includes('inactive'));
  assert.equal(requests[2]?.searchParams.get('resourceVersion'), '11', 'resumes after the last event it saw');
  assert.deepEqual(r.lists, [[]], 'no relist is needed');
});

test('a dropped connection reconnects from the last event, losing nothing and listing once', async () => {
  const { client, requests } = await fakeApiServer([
    list('10', []),
    watch([{ type: 'ADDED', object: pod('a', '11') }, { type: 'MODIFIED', object: pod('a', '12') }], 'drop'),
    watch([{ type: 'DELETED', object: pod('a', '13') }], 'hang'),
  ]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, fast);
  lw.start();
  await eventually('the delete after the reconnect', () => r.events.includes('DELETED a'));
  await lw.stop();
  assert.deepEqual(r.events, ['ADDED a', 'MODIFIED a', 'DELETED a']);
  assert.equal(requests[2]?.searchParams.get('resourceVersion'), '12');
  assert.equal(r.lists.length, 1);
});

test('a 429 with Retry-After is reported as throttling and the list is retried', async () => {
  const throttled: Handler = (_req, res) => {
    res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '1' });
    res.end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'slow down' }));
  };
  const { client, requests } = await fakeApiServer([throttled, list('10', [pod('a', '9')]), hang]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, fast);
  lw.start();
  await eventually('the list after the throttle', () => r.lists.length === 1, { timeoutMs: 10_000 });
  await lw.stop();
  assert.deepEqual(r.restarts, ['throttled']);
  assert.equal(requests.length >= 2, true);
});

test('backoff grows exponentially with full jitter, is capped, and never undercuts Retry-After', async () => {
  const { client } = await fakeApiServer([hang]);
  const lw = new ListWatch(client, Resources.Pod, recorder().handlers, { backoffInitialMs: 100, backoffMaxMs: 1000, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 10].map((n) => lw.backoff(n, new Error('x'))), [100, 200, 400, 800, 1000, 1000]);
  const zero = new ListWatch(client, Resources.Pod, recorder().handlers, { backoffInitialMs: 100, backoffMaxMs: 1000, random: () => 0 });
  assert.equal(zero.backoff(3, new Error('x')), 0, 'full jitter reaches down to zero');
  const throttle = new KubeApiError({ code: 429, message: 'slow down', retryAfterSeconds: 2, method: 'GET', path: '/' });
  assert.equal(zero.backoff(1, throttle), 2000);
});

test('a garbage line restarts the watch from the last good resource version', async () => {
  const { client, requests } = await fakeApiServer([
    list('10', []),
    watch([{ type: 'ADDED', object: pod('a', '11') }, '{"type": "ADDED", "object": {trunc', { type: 'ADDED', object: pod('never', '99') }], 'hang'),
    watch([{ type: 'ADDED', object: pod('b', '12') }], 'hang'),
  ]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, fast);
  lw.start();
  await eventually('the event after the restart', () => r.events.includes('ADDED b'));
  await lw.stop();
  assert.deepEqual(r.events, ['ADDED a', 'ADDED b'], 'nothing after the garbage line in the same stream is trusted');
  assert.equal(requests[2]?.searchParams.get('resourceVersion'), '11');
  assert.ok(r.restarts.includes('error'));
});

test('lists are paged, and bookmarks move the resource version a clean restart resumes from', async () => {
  const { client, requests } = await fakeApiServer([
    list('10', [pod('a', '1'), pod('b', '2')], 'page-2'),
    list('10', [pod('c', '3')]),
    watch([{ type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: '50' } } }], 'end'),
    hang,
  ]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, { ...fast, pageSize: 2 });
  lw.start();
  await eventually('the second watch', () => requests.length >= 4);
  await lw.stop();
  assert.deepEqual(r.lists, [['a', 'b', 'c']]);
  assert.equal(requests[0]?.searchParams.get('limit'), '2');
  assert.equal(requests[1]?.searchParams.get('continue'), 'page-2');
  assert.equal(requests[2]?.searchParams.get('allowWatchBookmarks'), 'true');
  assert.equal(requests[3]?.searchParams.get('resourceVersion'), '50');
  assert.deepEqual(r.restarts, ['closed']);
});

test('the transform runs on each page as it arrives, before the next page is asked for, and on each event', async () => {
  const { client, requests } = await fakeApiServer([
    list('10', [pod('a', '1'), pod('b', '2')], 'page-2'),
    list('10', [pod('c', '3')]),
    watch([{ type: 'ADDED', object: { kind: 'Pod', ...pod('d', '11') } }], 'hang'),
  ]);
  const r = recorder();
  const seen: string[] = [];
  const lw = new ListWatch(client, Resources.Pod, r.handlers, {
    ...fast,
    pageSize: 2,
    transform: (o) => {
      seen.push(`${o.metadata.name} after ${requests.length} request(s)`);
      return { ...o, metadata: { ...o.metadata, labels: { slim: 'yes' } } };
    },
  });
  lw.start();
  await eventually('the event', () => r.events.length === 1);
  await lw.stop();
  assert.deepEqual(seen, ['a after 1 request(s)', 'b after 1 request(s)', 'c after 2 request(s)', 'd after 3 request(s)']);
  assert.deepEqual(r.lists, [['a', 'b', 'c']]);
  assert.equal(lw.lastResourceVersion, '11');
});

test('interning the strings of cached objects changes no value, whatever the table has seen before', () => {
  const object = (i: number) => JSON.parse(JSON.stringify({
    metadata: { name: `m-${i}`, uid: `u-${i}`, labels: { 'app.kubernetes.io/managed-by': 'slipway', tier: i % 2 ? 'a' : 'b' }, resourceVersion: String(i) },
    spec: { args: ['--port', String(8000 + (i % 3))], long: 'x'.repeat(200 + i), nested: [[{ v: 'é ✓' }]], n: i, t: true, z: null },
  })) as unknown;
  // More distinct strings than the table holds: it starts again, and every value stays what it was.
  for (let i = 0; i < 60_000; i += 1) {
    const o = object(i);
    assert.deepEqual(internStrings(o), object(i));
  }
});

test('an informer turns a relist into the deletes and updates it implies', async () => {
  const { client } = await fakeApiServer([
    list('10', [pod('a', '1'), pod('b', '2')]),
    watch([{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'gone' } }], 'hang'),
    list('20', [pod('a', '5'), pod('c', '6')]),
    hang,
  ]);
  const informer = new Informer(client, Resources.Pod, fast);
  const seen: string[] = [];
  informer.on((e) => seen.push(`${e.type} ${e.obj.metadata.name}`));
  informer.start();
  await informer.synced;
  await eventually('the relist', () => informer.store.get('ns/c') !== undefined);
  await informer.stop();
  assert.deepEqual(seen, ['ADDED a', 'ADDED b', 'MODIFIED a', 'ADDED c', 'DELETED b']);
  assert.deepEqual(informer.store.keys().sort(), ['ns/a', 'ns/c']);
});

test('the cache drops managedFields, which nothing reads from it', async () => {
  const withFields = { metadata: { name: 'a', namespace: 'ns', resourceVersion: '1', managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }] } };
  const { client } = await fakeApiServer([list('10', [withFields]), watch([{ type: 'MODIFIED', object: { ...withFields, metadata: { ...withFields.metadata, resourceVersion: '2' } } }], 'hang')]);
  const informer = new Informer(client, Resources.Pod, fast);
  const versions: string[] = [];
  informer.on((e) => versions.push(`${e.obj.metadata.resourceVersion} ${'managedFields' in e.obj.metadata}`));
  informer.start();
  await eventually('the watch event', () => versions.length === 2);
  await informer.stop();
  assert.deepEqual(versions, ['1 false', '2 false']);
});

test('a multi-byte character split across two chunks of a watch reaches the cache whole', async () => {
  const line = Buffer.from(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', namespace: 'ns', resourceVersion: '11', annotations: { note: 'modèle ünïcode ✓' } } } })}\n`);
  const cut = line.indexOf(Buffer.from('è')) + 1; // inside the two bytes of è
  const split: Handler = (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.write(line.subarray(0, cut));
    setTimeout(() => res.write(line.subarray(cut)), 50);
  };
  const { client } = await fakeApiServer([list('10', []), split, hang]);
  const informer = new Informer(client, Resources.Pod, fast);
  informer.start();
  await eventually('the event', () => informer.store.get('ns/a'));
  await informer.stop();
  assert.equal(informer.store.get('ns/a')?.metadata.annotations?.note, 'modèle ünïcode ✓');
});

/** Requests made in a window of time against a server that answers every watch the same way. */
async function requestsIn(ms: number, script: Handler[]): Promise<{ requests: URL[]; restarts: RestartReason[]; lists: number }> {
  const { client, requests } = await fakeApiServer(script);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, { backoffInitialMs: 50, backoffMaxMs: 200, inactivityTimeoutMs: 5_000, random: () => 1 });
  lw.start();
  await new Promise((resolve) => setTimeout(resolve, ms));
  await lw.stop();
  return { requests: [...requests], restarts: r.restarts, lists: r.lists.length };
}

test('a server that answers every watch with 410 is relisted with backoff, not in a loop', async () => {
  const gone: Handler = (req, res, url) => {
    if (url.searchParams.get('watch') !== 'true') return list('10', [])(req, res, url);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
  };
  const { requests, restarts, lists } = await requestsIn(1_000, [gone]);
  // With 50 ms doubling to a 200 ms cap, one second holds at most about 8 list+watch pairs.
  assert.ok(requests.length <= 20, `${requests.length} requests in one second`);
  assert.ok(lists >= 2, 'it does relist');
  assert.ok(restarts.every((r) => r === 'expired'));
});

test('a server that closes every watch at once gets backoff, not a request loop', async () => {
  const { requests, restarts } = await requestsIn(1_000, [list('10', []), watch([], 'end')]);
  assert.ok(requests.length <= 12, `${requests.length} requests in one second`);
  assert.ok(requests.length >= 3, 'it keeps watching');
  assert.ok(restarts.every((r) => r === 'closed'));
});

test('"too large resource version" makes it list again instead of retrying the same version forever', async () => {
  const tooLarge: Handler = (_req, res) => {
    res.writeHead(504, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code: 504, reason: 'Timeout', message: 'Too large resource version: 900, current: 20', details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 } }));
  };
  const { requests, r } = await untilRelisted([list('900', []), tooLarge, list('20', [pod('a', '19')]), hang]);
  assert.equal(requests[2]?.searchParams.get('watch'), null, 'the third request is a list');
  assert.equal(requests[3]?.searchParams.get('resourceVersion'), '20');
  assert.deepEqual(r.restarts, ['expired']);
});

test('a watch whose response headers never come is dropped by the watchdog and retried', async () => {
  const { client, requests } = await fakeApiServer([list('10', []), hang, watch([{ type: 'ADDED', object: pod('b', '12') }], 'hang')]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, { ...fast, inactivityTimeoutMs: 200 });
  lw.start();
  await eventually('the event after the retry', () => r.events.includes('ADDED b'), { timeoutMs: 5_000 });
  await lw.stop();
  assert.deepEqual(r.restarts, ['inactive']);
  assert.equal(requests[2]?.searchParams.get('resourceVersion'), '10');
});

test('a metadata-only list-watch asks for PartialObjectMetadata, for lists and watches alike', async () => {
  const accepts: string[] = [];
  const recordAccept = (h: Handler): Handler => (req, res, url) => {
    accepts.push(String(req.headers.accept));
    h(req, res, url);
  };
  const { client } = await fakeApiServer([recordAccept(list('10', [pod('a', '9')])), recordAccept(watch([{ type: 'ADDED', object: pod('b', '11') }], 'hang'))]);
  const r = recorder();
  const lw = new ListWatch(client, Resources.Pod, r.handlers, { ...fast, metadataOnly: true });
  lw.start();
  await eventually('the watch event', () => r.events.includes('ADDED b'));
  await lw.stop();
  assert.match(accepts[0] ?? '', /^application\/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1/);
  assert.match(accepts[1] ?? '', /^application\/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1/);
});

test('an informer over several namespaces lists and watches each, and a relist of one leaves the others alone', async () => {
  const inNs = (ns: string, name: string, rv: string): KubeObject => ({ metadata: { name, namespace: ns, resourceVersion: rv } });
  const calls = new Map<string, number>();
  const paths: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    paths.push(url.pathname);
    const ns = /\/namespaces\/([^/]+)\//.exec(url.pathname)?.[1] ?? '';
    const n = (calls.get(ns) ?? 0) + 1;
    calls.set(ns, n);
    // a: listed, then its watch expires and it lists again with a1 gone; b: listed once, then a quiet watch.
    if (ns === 'a') [list('10', [inNs('a', 'a1', '1'), inNs('a', 'a2', '2')]), watch([{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'gone' } }], 'hang'), list('20', [inNs('a', 'a2', '2')]), hang][Math.min(n - 1, 3)]?.(req, res, url);
    else [list('11', [inNs('b', 'b1', '3')]), hang][Math.min(n - 1, 1)]?.(req, res, url);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = await clientFor((server.address() as { port: number }).port);
  const informer = new Informer(client, Resources.Pod, { ...fast, namespaces: ['a', 'b'] });
  const seen: string[] = [];
  informer.on((e) => seen.push(`${e.type} ${e.obj.metadata.name}`));
  informer.start();
  await informer.synced;
  await eventually('the relist of a', () => informer.store.get('a/a1') === undefined);
  await informer.stop();
  assert.deepEqual(informer.store.keys().sort(), ['a/a2', 'b/b1'], 'b1 survives the relist of namespace a');
  assert.ok(seen.includes('DELETED a1') && !seen.includes('DELETED b1'));
  assert.ok(paths.every((p) => p.startsWith('/api/v1/namespaces/a/') || p.startsWith('/api/v1/namespaces/b/')), 'no cluster-wide request');
});
