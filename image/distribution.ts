// The OCI distribution API, the part of it Slipway needs: push an OCI image layout to a registry (blobs by
// monolithic upload, skipping those it has, then the manifest under a tag), and read an image back by tag or
// digest with every byte checked against its digest. Plain HTTP, and only to this machine (loopback or the local
// pod range): it talks to the local registry, not to registries elsewhere.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { assertPodRangeIsLocal } from '../local/podnet.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface Reference {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** `host:port/name/space:tag`, `host/name@sha256:…` (a registry host is required: nothing is looked up elsewhere). */
export function parseReference(ref: string): Reference {
  const m = /^([^/]+)\/([a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$/.exec(ref);
  if (!m || !(m[1]?.includes('.') || m[1]?.includes(':') || m[1] === 'localhost')) throw new Error(`${ref}: not an image reference with a registry host (host[:port]/name[:tag][@sha256:…])`);
  return { host: m[1], repository: m[2] ?? '', ...(m[3] ? { tag: m[3] } : {}), ...(m[4] ? { digest: m[4] } : {}) };
}

/** The registry must be on this machine: loopback, or the local pod range. */
export function assertLocalRegistry(host: string): void {
  const ip = host.replace(/:\d+$/, '');
  if (!/^(127\.\d+\.\d+\.\d+|10\.244\.\d+\.\d+|localhost)$/.test(ip)) throw new Error(`registry ${host}: only registries on this machine (127.0.0.0/8, the local pod range 10.244.0.0/16) are used`);
}

/**
 * The repository's API base for `ref`, once its registry is known to be on this machine: a loopback address, or a
 * pod-range address while the local bridge owns the whole range (without the bridge, 10.244.0.0/16 would follow
 * the default route off the machine).
 */
async function repositoryBase(ref: string): Promise<{ r: Reference; base: string }> {
  const r = parseReference(ref);
  assertLocalRegistry(r.host);
  if (r.host.startsWith('10.244.')) await assertPodRangeIsLocal();
  return { r, base: `http://${r.host}/v2/${r.repository}` };
}

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function call(url: string, init: RequestInit, what: string): Promise<Response> {
  const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(120_000) });
  if (res.status >= 400) {
    const body = await res.text().catch(() => '');
    throw new Error(`${what}: ${res.status} ${res.statusText}${body ? `: ${body.slice(0, 300)}` : ''}`);
  }
  return res;
}

/**
 * Pushes an image of an OCI layout (its first manifest, or the one of `opts.manifest`) as `ref`; returns the
 * manifest's digest. A blob the repository lacks is first mounted from `opts.mountFrom` (a repository of the same
 * registry that has it: nothing is sent again), else uploaded.
 */
export async function pushLayout(layoutDir: string, ref: string, opts: { manifest?: string; mountFrom?: string } = {}): Promise<{ digest: string; pushed: number; present: number }> {
  const { r, base } = await repositoryBase(ref);
  const blob = (digest: string): Buffer => readFileSync(join(layoutDir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
  const index = JSON.parse(readFileSync(join(layoutDir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const digest = opts.manifest ?? index.manifests[0]?.digest;
  if (!digest) throw new Error(`${layoutDir}: no manifest in index.json`);
  const manifestBytes = blob(digest);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  let pushed = 0;
  let present = 0;
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    if ((await fetch(`${base}/blobs/${d}`, { method: 'HEAD', signal: AbortSignal.timeout(30_000) })).status === 200) {
      present++;
      continue;
    }
    const mount = opts.mountFrom ? `?mount=${d}&from=${encodeURIComponent(opts.mountFrom)}` : '';
    const start = await call(`${base}/blobs/uploads/${mount}`, { method: 'POST' }, `start the upload of ${d}`);
    // 201: mounted from the other repository; 202: an upload to make after all.
    if (start.status === 201) {
      present++;
      continue;
    }
    const location = start.headers.get('location');
    if (!location) throw new Error(`start the upload of ${d}: no Location`);
    const url = new URL(location, `http://${r.host}`);
    if (url.host !== r.host) throw new Error(`upload of ${d}: the registry sent it elsewhere (${url.host})`);
    url.searchParams.set('digest', d);
    await call(url.toString(), { method: 'PUT', body: new Uint8Array(blob(d)), headers: { 'content-type': 'application/octet-stream' } }, `upload ${d}`);
    pushed++;
  }
  await call(`${base}/manifests/${r.tag ?? digest}`, { method: 'PUT', body: new Uint8Array(manifestBytes), headers: { 'content-type': OCI_MANIFEST } }, `put the manifest ${digest}`);
  return { digest, pushed, present };
}

export interface PulledManifest {
  digest: string;
  /** The manifest's bytes, as the registry has them (its digest is of these). */
  raw: Buffer;
  manifest: { config: { digest: string }; layers: { digest: string; mediaType: string; size?: number }[] };
  config: { config?: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; User?: string; WorkingDir?: string; Labels?: Record<string, string> }; rootfs?: { diff_ids?: string[] } };
}

/** The manifest and config of `ref` (by digest, or the digest its tag names now), checked against their digests. */
export async function fetchManifest(ref: string): Promise<PulledManifest> {
  const { r, base } = await repositoryBase(ref);
  const res = await call(`${base}/manifests/${r.digest ?? r.tag ?? 'latest'}`, { headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } }, `manifest of ${ref}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  const digest = digestOf(bytes);
  if (r.digest && digest !== r.digest) throw new Error(`manifest of ${ref}: its content has digest ${digest}`);
  const type = res.headers.get('content-type') ?? '';
  if (type !== OCI_MANIFEST) throw new Error(`manifest of ${ref}: ${type || 'no media type'} (an OCI image manifest for linux/amd64 is needed)`);
  const manifest = JSON.parse(bytes.toString('utf8')) as PulledManifest['manifest'];
  const config = JSON.parse((await fetchBlob(ref, manifest.config.digest)).toString('utf8')) as PulledManifest['config'];
  return { digest, raw: bytes, manifest, config };
}

/** A blob of the repository of `ref`, checked against its digest. */
export async function fetchBlob(ref: string, digest: string): Promise<Buffer> {
  const { base } = await repositoryBase(ref);
  const res = await call(`${base}/blobs/${digest}`, {}, `blob ${digest} of ${ref}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (digestOf(bytes) !== digest) throw new Error(`blob ${digest} of ${ref}: its content has digest ${digestOf(bytes)}`);
  return bytes;
}

if (import.meta.main) {
  // `npm run image:push -- REGISTRY_HOST[/NAME[:TAG]]`: builds the controller image (or takes it from the cache)
  // and pushes it; prints the reference by digest for the chart's image.repository and image.digest.
  const { positionals } = parseArgs({ allowPositionals: true });
  const { buildImage, IMAGE_REF } = await import('./build.ts');
  const target = positionals[0] ?? process.env.SLIPWAY_IMAGE_REGISTRY;
  if (!target) {
    console.error('usage: npm run image:push -- HOST[:PORT][/NAME[:TAG]]   (or SLIPWAY_IMAGE_REGISTRY, set by cluster:up --serve)');
    process.exit(2);
  }
  const ref = target.includes('/') ? target : `${target}/${IMAGE_REF}`;
  const built = buildImage({ log: (l) => console.error(l) });
  const { digest, pushed, present } = await pushLayout(join(built.dir, 'oci'), ref);
  const repo = ref.replace(/:[\w][\w.-]*$/, '');
  console.error(`pushed ${pushed} blobs (${present} already there)`);
  console.log(`${repo}@${digest}`);
}
