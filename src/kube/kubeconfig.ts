// Where the API server is and how to prove who we are, as kubectl finds it: an explicit kubeconfig file, else
// $KUBECONFIG, else the in-cluster service account (a pod), else ~/.kube/config. Read here for what a controller
// needs — server, CA, client certificate, bearer token (inline or a file read again every minute, as projected
// service-account tokens rotate), basic auth — so that the common cases (in a pod; client certificates; tokens)
// do not load @kubernetes/client-node at all: its KubeConfig imports the whole generated API, about 80 MiB of
// resident memory for a process that sends its own requests. What it does not read (exec credential plugins,
// auth providers, several files in $KUBECONFIG) is handed to client-node's KubeConfig, loaded only then.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import yaml from 'js-yaml';

export interface TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface Connection {
  /** The API server's URL, without a trailing slash. */
  server: string;
  /** The context's namespace (a pod's own), `default` when none is named. */
  namespace: string;
  tls: TlsOptions;
  /** The authentication headers for the next request (a token file is read again once a minute). */
  headers(): Promise<Record<string, string>>;
  /** Which way it was found, for the log: in-cluster, a file's path, or client-node's loader. */
  source: string;
}

/** Where a pod's service-account credentials are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface NamedCluster { name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean; 'tls-server-name'?: string; 'proxy-url'?: string } }
interface NamedUser { name: string; user?: { 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string; token?: string; tokenFile?: string; username?: string; password?: string; exec?: unknown; 'auth-provider'?: unknown; as?: string; impersonate?: string } }
interface NamedContext { name: string; context: { cluster: string; user: string; namespace?: string } }
interface KubeconfigFile { clusters?: NamedCluster[]; users?: NamedUser[]; contexts?: NamedContext[]; 'current-context'?: string }

/** A kubeconfig this loader does not read by itself: client-node's KubeConfig takes it. */
export class UnsupportedKubeconfig extends Error {}

export interface LoadOptions {
  kubeconfig?: string;
  context?: string;
  /** For tests: the environment, the service-account directory and the clock (ms) a token file is cached by. */
  env?: NodeJS.ProcessEnv;
  serviceAccountDir?: string;
  now?: () => number;
}

/** The connection as kubectl would find it; throws UnsupportedKubeconfig for what client-node must read. */
export function loadConnection(opts: LoadOptions = {}): Connection {
  const env = opts.env ?? process.env;
  const now = opts.now ?? Date.now;
  if (opts.kubeconfig) return fromFile(opts.kubeconfig, opts.context, now);
  const list = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  if (list.length > 1) throw new UnsupportedKubeconfig('several files in $KUBECONFIG (merged by client-node)');
  if (list.length === 1 && list[0]) return fromFile(list[0], opts.context, now);
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(join(saDir, 'token'))) {
    if (opts.context) throw new UnsupportedKubeconfig('--context in a pod without a kubeconfig');
    return inCluster(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, saDir, now);
  }
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return fromFile(home, opts.context, now);
  throw new Error('no kubeconfig: not in a pod, $KUBECONFIG unset and no ~/.kube/config (or pass --kubeconfig)');
}

/**
 * How long a token read from a file is used before the file is read again: a minute, as client-go's cached file
 * token source. The kubelet renews a projected service-account token long before it expires (at 80% of a life of
 * an hour or more), so a copy a minute old is still valid; reading the file for every request was a synchronous
 * read on the event loop per request.
 */
export const TOKEN_FILE_PERIOD_MS = 60_000;

/** The headers of a bearer token kept in a file (rotated tokens), read again once a period has passed. */
function bearerFromFile(file: string, now: () => number): () => Promise<Record<string, string>> {
  let cached: { headers: Record<string, string>; readAt: number } | undefined;
  return () => {
    const t = now();
    if (!cached || t - cached.readAt >= TOKEN_FILE_PERIOD_MS || t < cached.readAt) {
      cached = { headers: { Authorization: `Bearer ${readFileSync(file, 'utf8').trim()}` }, readAt: t };
    }
    return Promise.resolve(cached.headers);
  };
}

function inCluster(host: string, port: string, dir: string, now: () => number): Connection {
  const namespaceFile = join(dir, 'namespace');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    namespace: existsSync(namespaceFile) ? readFileSync(namespaceFile, 'utf8').trim() : 'default',
    tls: { ca: readFileSync(join(dir, 'ca.crt')) },
    headers: bearerFromFile(join(dir, 'token'), now),
    source: 'in-cluster',
  };
}

function fromFile(path: string, context: string | undefined, now: () => number): Connection {
  const doc = (yaml.load(readFileSync(path, 'utf8')) ?? {}) as KubeconfigFile;
  const name = context ?? doc['current-context'];
  if (!name) throw new Error(`${path}: no current-context (pass --context)`);
  const ctx = doc.contexts?.find((c) => c.name === name)?.context;
  if (!ctx) throw new Error(`${path}: no context named ${name}`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server) throw new Error(`${path}: context ${name} names cluster ${ctx.cluster}, which has no server`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user.exec || user['auth-provider']) throw new UnsupportedKubeconfig(`${path}: user ${ctx.user} uses ${user.exec ? 'an exec credential plugin' : 'an auth provider'}`);
  if (user.as || user.impersonate || cluster['proxy-url']) throw new UnsupportedKubeconfig(`${path}: impersonation or a proxy`);
  // Relative paths in a kubeconfig are relative to the file, as kubectl reads them.
  const resolve = (p: string): string => (isAbsolute(p) ? p : join(dirname(path), p));
  const file = (p: string): Buffer => readFileSync(resolve(p));
  const data = (inline: string | undefined, ref: string | undefined): Buffer | undefined => (inline ? Buffer.from(inline, 'base64') : ref ? file(ref) : undefined);
  const ca = data(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = data(user['client-certificate-data'], user['client-certificate']);
  const key = data(user['client-key-data'], user['client-key']);
  const tls: TlsOptions = {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { rejectUnauthorized: false } : {}),
    ...(cluster['tls-server-name'] ? { servername: cluster['tls-server-name'] } : {}),
  };
  const token = user.token;
  const tokenFile = user.tokenFile;
  const basic = user.username !== undefined && user.password !== undefined ? `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` : undefined;
  return {
    server: cluster.server.replace(/\/$/, ''),
    namespace: ctx.namespace ?? 'default',
    tls,
    headers: token
      ? () => Promise.resolve({ Authorization: `Bearer ${token}` })
      : tokenFile
        ? bearerFromFile(resolve(tokenFile), now)
        : () => Promise.resolve(basic ? { Authorization: basic } : {}),
    source: path,
  };
}

/** client-node's KubeConfig for what loadConnection does not read (exec plugins, auth providers, merged files). */
export async function loadWithClientNode(opts: LoadOptions): Promise<Connection> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (opts.context) kc.setCurrentContext(opts.context);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const tls: Record<string, unknown> = {};
  await kc.applyToHTTPSOptions(tls);
  const picked: TlsOptions = {};
  for (const k of ['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'] as const) if (tls[k] !== undefined) (picked as Record<string, unknown>)[k] = tls[k];
  return {
    server: cluster.server.replace(/\/$/, ''),
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default',
    tls: picked,
    headers: async () => {
      // Per request, so short-lived tokens from exec plugins stay fresh.
      const auth: { headers?: Record<string, string> } = {};
      await kc.applyToHTTPSOptions(auth);
      return auth.headers ?? {};
    },
    source: 'client-node',
  };
}
