// The local image registry: the CNCF distribution registry (built from its Go module, toolset `registry`) with
// its storage on local disk, in a network namespace of its own on the pod bridge. Images are pushed to it
// (`npm run image:push`) and the pod runner pulls from it, as a kubelet pulls from a cluster's registry; pods could
// reach it at the same address (environment builds push to it). A second one wants credentials (htpasswd), for
// builds that push with a Secret. The namespaces have no route off this machine, and the
// registry's telemetry exporters are off besides.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.ts';
import { addServicePod } from './podnet.ts';
import type { Started } from './processes.ts';

/** Below the model registry's address at the top of the pod range, which the pod runner never hands out either. */
export const IMAGE_REGISTRY_IP = '10.244.255.253';
/** A second registry that wants credentials (htpasswd): builds push to it with a push Secret. */
export const AUTH_IMAGE_REGISTRY_IP = '10.244.255.252';
const PORT = 5000;
/** The host part of image references in the local registry: `10.244.255.253:5000/slipway/controller@sha256:…`. */
export const IMAGE_REGISTRY = `${IMAGE_REGISTRY_IP}:${PORT}`;

export interface ImageRegistryContext {
  start: (name: string, args: string[], program: string, env?: Record<string, string>) => Started;
  dir: string;
  binDir: string;
}

export interface ImageRegistryInfo {
  host: string;
  url: string;
  /** The registry's one user, for a registry that wants credentials. */
  username?: string;
  password?: string;
}

/**
 * Starts a registry and waits until its API answers; returns its host (for image references) and URL. With
 * `auth`, it wants HTTP Basic credentials (htpasswd, bcrypt) for every request, as a private registry does.
 */
export async function startImageRegistry(ctx: ImageRegistryContext, opts: { auth?: boolean } = {}): Promise<ImageRegistryInfo> {
  const name = opts.auth ? 'image-registry-auth' : 'image-registry';
  const ip = opts.auth ? AUTH_IMAGE_REGISTRY_IP : IMAGE_REGISTRY_IP;
  const host = `${ip}:${PORT}`;
  const dir = join(ctx.dir, name);
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yml');
  const credentials = opts.auth ? { username: 'slipway', password: randomBytes(12).toString('hex') } : undefined;
  if (credentials) writeFileSync(join(dir, 'htpasswd'), `${credentials.username}:${bcrypt(credentials.password)}\n`);
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: warn, formatter: text}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'storage'))}}, delete: {enabled: true}, redirect: {disable: true}}`,
    `http: {addr: "0.0.0.0:${PORT}", secret: "local"}`,
    ...(credentials ? [`auth: {htpasswd: {realm: slipway-local, path: ${JSON.stringify(join(dir, 'htpasswd'))}}}`] : []),
    '',
  ].join('\n'));
  const net = await addServicePod(`slipway-${name}`, ip);
  const [cmd, args] = net.exec(join(ctx.binDir, 'registry'), ['serve', config]);
  const registry = ctx.start(name, args, cmd, { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' });
  const url = `http://${host}`;
  // An open registry answers /v2/ with 200; one that wants credentials, with 401.
  await eventually(`the ${name}`, async () => [200, 401].includes((await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status ?? 0), { abort: registry.exited, timeoutMs: 30_000, intervalMs: 100 });
  return { host, url, ...credentials };
}

/** A bcrypt hash for htpasswd, from Python's crypt (Debian's libxcrypt has bcrypt; Python 3.11 has the module). */
function bcrypt(password: string): string {
  const out = execFileSync('python3', ['-W', 'ignore', '-c', 'import crypt, sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))'], { input: password, encoding: 'utf8' }).trim();
  if (!out.startsWith('$2')) throw new Error('could not hash the registry password with bcrypt (python3 crypt with libxcrypt is needed)');
  return out;
}
