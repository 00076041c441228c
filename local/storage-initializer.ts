// The local pod runner's storage initializer: what KServe's storage-initializer image does, for the sources this
// machine can reach. `storage-initializer.ts <uri> <dir>` puts the model at <uri> into <dir> and exits 0, or
// exits 1 with one line saying why (the pod's init container status shows it).
// - http(s)://host/…/file       the file, into <dir>/<file>; a .tar.gz/.tgz/.tar is unpacked into <dir>
// - models:/<name>/<version>     an MLflow registry version (MLFLOW_TRACKING_URI), every file of its artifacts
//   models:/<name>@<alias>
// It runs inside the pod's network namespace, which has no route off this machine; it also refuses, before
// sending anything, any host that is not loopback or in the local pod range.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const LOCAL_HOST = /^(127\.\d+\.\d+\.\d+|localhost|10\.244\.\d+\.\d+)$/;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function checkLocal(url: URL): void {
  if (!LOCAL_HOST.test(url.hostname)) fail(`refusing to fetch ${url.href}: the local environment only reaches 127.0.0.0/8 and the pod range 10.244.0.0/16`);
}

/**
 * One fetch, redirects followed by hand (at most 5) so that every address is checked before anything is sent to
 * it: a local server cannot send the initializer elsewhere.
 */
async function localFetch(url: URL, headers: Record<string, string>): Promise<Response> {
  for (let hops = 0; ; hops++) {
    checkLocal(url);
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      fail(`cannot fetch ${url.href}: ${cause?.code ?? cause?.message ?? String(err)}`);
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    if (hops >= 5) fail(`cannot fetch ${url.href}: too many redirects`);
    url = new URL(location, url);
  }
}

async function get(url: URL, headers: Record<string, string> = {}): Promise<Response> {
  const res = await localFetch(url, headers);
  if (res.status === 401 || res.status === 403) fail(`cannot fetch ${url.href}: ${res.status} ${res.statusText} (wrong or missing credentials)`);
  if (!res.ok) fail(`cannot fetch ${url.href}: ${res.status} ${res.statusText}`);
  return res;
}

function authHeaders(): Record<string, string> {
  const { MLFLOW_TRACKING_TOKEN: token, MLFLOW_TRACKING_USERNAME: user, MLFLOW_TRACKING_PASSWORD: password } = process.env;
  if (token) return { authorization: `Bearer ${token}` };
  if (user) return { authorization: `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}` };
  return {};
}

async function fetchFile(url: URL, dir: string, headers: Record<string, string> = {}): Promise<void> {
  const body = Buffer.from(await (await get(url, headers)).arrayBuffer());
  const name = basename(decodeURIComponent(url.pathname)) || 'model';
  if (/\.(tar\.gz|tgz|tar)$/.test(name)) {
    execFileSync('tar', ['-x', '-C', dir, ...(name.endsWith('.tar') ? [] : ['-z'])], { input: body });
    return;
  }
  writeFileSync(join(dir, name), body);
}

interface ArtifactList {
  files?: { path: string; is_dir: boolean }[];
}

/** Copies every file under an MLflow artifact path (mlflow-artifacts proxy API) into dir. */
async function fetchArtifacts(base: URL, artifactPath: string, dir: string, prefix = ''): Promise<number> {
  const list = new URL('api/2.0/mlflow-artifacts/artifacts', base);
  if (artifactPath) list.searchParams.set('path', artifactPath);
  const { files = [] } = (await (await get(list, authHeaders())).json()) as ArtifactList;
  let count = 0;
  for (const f of files) {
    // The listing names files relative to the listed directory (older servers: relative to the root).
    const rel = artifactPath && f.path.startsWith(`${artifactPath}/`) ? f.path.slice(artifactPath.length + 1) : f.path;
    const full = artifactPath ? `${artifactPath}/${rel}` : f.path;
    if (f.is_dir) {
      count += await fetchArtifacts(base, full, dir, join(prefix, rel));
      continue;
    }
    mkdirSync(dirname(join(dir, prefix, rel)), { recursive: true });
    const body = Buffer.from(await (await get(new URL(`api/2.0/mlflow-artifacts/artifacts/${full.split('/').map(encodeURIComponent).join('/')}`, base), authHeaders())).arrayBuffer());
    writeFileSync(join(dir, prefix, rel), body);
    count++;
  }
  return count;
}

/** models:/name/version or models:/name@alias → the version's artifacts, through the tracking server. */
async function fetchRegistryModel(uri: string, dir: string): Promise<void> {
  const tracking = process.env.MLFLOW_TRACKING_URI;
  if (!tracking) fail(`cannot resolve ${uri}: MLFLOW_TRACKING_URI is not set (give it in spec.model.secretRef)`);
  const base = new URL(tracking.endsWith('/') ? tracking : `${tracking}/`);
  checkLocal(base);
  const m = /^models:\/([^/@]+)(?:\/(\d+)|@([\w-]+))$/.exec(uri);
  if (!m) fail(`${uri} is not models:/<name>/<version> or models:/<name>@<alias>`);
  const [, name = '', version, alias] = m;
  const q = version
    ? new URL(`api/2.0/mlflow/model-versions/get?name=${encodeURIComponent(name)}&version=${version}`, base)
    : new URL(`api/2.0/mlflow/registered-models/alias?name=${encodeURIComponent(name)}&alias=${encodeURIComponent(alias ?? '')}`, base);
  const res = await localFetch(q, authHeaders());
  if (res.status === 401 || res.status === 403) fail(`${uri}: ${res.status} ${res.statusText} from ${base.href} (wrong or missing credentials: MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN)`);
  if (res.status === 404 || res.status === 400) fail(`${uri}: ${((await res.json().catch(() => ({}))) as { message?: string }).message ?? `${res.status} from the registry`}`);
  if (!res.ok) fail(`${uri}: ${res.status} ${res.statusText} from ${base.href}`);
  const { model_version: mv } = (await res.json()) as { model_version: { source: string; version: string } };
  // mlflow-artifacts:/<path> is served by the tracking server's artifact proxy.
  const src = /^mlflow-artifacts:\/+(.*)$/.exec(mv.source);
  if (!src) fail(`${uri} (version ${mv.version}) is stored at ${mv.source}, which this initializer cannot fetch (only mlflow-artifacts:/)`);
  const n = await fetchArtifacts(base, src[1]?.replace(/\/$/, '') ?? '', dir);
  if (n === 0) fail(`${uri} (version ${mv.version}) has no files at ${mv.source}`);
  process.stdout.write(`${uri} is version ${mv.version}: ${n} files from ${mv.source}\n`);
}

async function main(): Promise<void> {
  const [uri, dir] = process.argv.slice(2);
  if (!uri || !dir) fail('usage: storage-initializer <uri> <dir>');
  mkdirSync(dir, { recursive: true });
  if (uri.startsWith('models:/')) return fetchRegistryModel(uri, dir);
  if (/^https?:\/\//.test(uri)) {
    await fetchFile(new URL(uri), dir);
    process.stdout.write(`fetched ${uri} into ${dir}\n`);
    return;
  }
  const scheme = /^([a-z0-9+.-]+):/.exec(uri)?.[1] ?? uri;
  fail(`cannot fetch ${uri}: ${scheme}:// storage is not reachable from this machine (the local environment serves models over http from the pod range or from its MLflow registry)`);
}

await main();
