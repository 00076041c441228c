// The MLServer image the local data plane's pods run: `docker.io/seldonio/mlserver:1.7.1` is mirrored in the
// local image registry as an environment image built by Slipway's own environment build (the Job `buildJob()`
// makes, run by the pod runner: the Python base from pinned Debian packages, MLServer 1.7.1 and its runtimes from
// local/python/requirements.lock, resolved and installed by the builder), with the upstream image's command
// (`mlserver start /mnt/models/`) set in its config. The build runs once per content: the environment image, its
// SBOM and the mirror are kept in the cache as one OCI layout, keyed by the build's content hash, and pushed again
// to each new cluster's registry — the environment image under its content-hash tag, where a ProjectEnvironment
// of the same content finds it (the builder reuses an image already pushed for its hash).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchBlob, fetchManifest, OCI_MANIFEST, pushLayout, type PulledManifest } from '../image/distribution.ts';
import { pushEnvironmentImages } from '../image/environment-images.ts';
import { image, sha256, type Layer } from '../image/oci.ts';
import { projectEnvironment } from '../src/api/projectenvironment.ts';
import { BUILD_CONTAINER, buildJob, buildJobName } from '../src/environments/build-job.ts';
import { buildInputs, contentHash, type BuildInputs } from '../src/environments/content.ts';
import { parseBuildReport } from '../src/environments/report.ts';
import { EGRESS_PROXY_PORT } from './egress-proxy.ts';
import { eventually } from './eventually.ts';
import { MLSERVER_IMAGE, MLSERVER_MIRROR_PATH, repositoryOf } from './images.ts';
import { GATEWAY } from './podnet.ts';
import { servingPins } from './python.ts';
import { cacheRoot } from './toolchain.ts';

/** Where the build runs: a namespace of the local cluster's own. */
export const IMAGES_NAMESPACE = 'slipway-images';
const ENVIRONMENT = 'mlserver';
/** The upstream image's command and models directory. */
const MODELS_DIR = '/mnt/models/';
const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** The MLServer release the mirrored image is (its tag). */
const MLSERVER_VERSION = MLSERVER_IMAGE.slice(MLSERVER_IMAGE.lastIndexOf(':') + 1);

type Kubectl = (args: string[], input?: string) => Promise<string>;

interface JobView {
  status?: { succeeded?: number; failed?: number; conditions?: { type: string; status: string; message?: string }[] };
}
interface PodView {
  metadata: { creationTimestamp?: string };
  status?: { containerStatuses?: { name: string; state?: { terminated?: { exitCode: number; message?: string } } }[] };
}

/**
 * Pushes the mirrored MLServer image to the local registry at `host` (building it first when the cache does not
 * have it: needs the pod runner, its egress proxy and the registry); returns the reference by digest.
 */
export async function ensureMlserverImage(kubectl: Kubectl, host: string, log: (line: string) => void = () => {}): Promise<string> {
  const pins = servingPins();
  if (!pins.includes(`mlserver==${MLSERVER_VERSION}`)) throw new Error(`local/python/requirements.lock does not pin mlserver==${MLSERVER_VERSION}, the release ${MLSERVER_IMAGE} names`);
  const refs = await pushEnvironmentImages(host, log, ['python']);
  const repository = `${host}/slipway/mlserver-env`;
  const pe = projectEnvironment.parse({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'ProjectEnvironment',
    metadata: { name: ENVIRONMENT, namespace: IMAGES_NAMESPACE },
    spec: { baseImage: refs.bases.python, packages: { pip: pins }, build: { repository } },
  });
  const inputs = buildInputs(pe.spec);
  if (!inputs) throw new Error('the MLServer environment has no build inputs');
  const hash = contentHash(inputs);
  const dir = join(cacheRoot(), 'image', `mlserver-${sha256(`${hash}\n${sha256(readFileSync(import.meta.filename))}`).slice(0, 16)}`);
  const layout = join(dir, 'oci');
  const envRepository = repository.slice(host.length + 1);
  if (!existsSync(join(dir, 'built.json'))) {
    const t0 = Date.now();
    log(`building ${MLSERVER_IMAGE} for the local registry (${pins.length} packages, once per content)`);
    const built = await runBuild(kubectl, pe, inputs, hash, { builder: refs.builder, host });
    rmSync(dir, { recursive: true, force: true });
    await saveLayout(layout, built, `${repository}:${hash}.sbom`, {
      env: `${envRepository}:${hash}`,
      sbom: `${envRepository}:${hash}.sbom`,
      mirror: MLSERVER_MIRROR_PATH,
    });
    writeFileSync(join(dir, 'built.json'), JSON.stringify({ built, seconds: Math.round((Date.now() - t0) / 1000) }));
    log(`built ${MLSERVER_IMAGE} (${built}) in ${Math.round((Date.now() - t0) / 1000)} s`);
  }
  // The environment image first (its layers uploaded once), then its SBOM and the mirror, mounting the layers.
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
  let mirror = '';
  for (const m of index.manifests) {
    const name = m.annotations['org.opencontainers.image.ref.name'] ?? '';
    const pushed = await pushLayout(layout, `${host}/${name}`, { manifest: m.digest, mountFrom: envRepository });
    if (name === MLSERVER_MIRROR_PATH) mirror = pushed.digest;
  }
  return `${repositoryOf(`${host}/${MLSERVER_MIRROR_PATH}`)}@${mirror}`;
}

/** The build Job for the environment, as the ProjectEnvironment controller makes it; the image it pushed. */
async function runBuild(kubectl: Kubectl, pe: ReturnType<typeof projectEnvironment.parse>, inputs: BuildInputs, hash: string, opts: { builder: string; host: string }): Promise<string> {
  const ns = IMAGES_NAMESPACE;
  const ca = readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
  await kubectl(['apply', '--server-side', '--field-manager=slipway-local', '-f', '-'], [
    JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
    JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'trusted-ca', namespace: ns }, data: { 'ca.crt': ca } }),
  ].join('\n'));
  const job = buildJob(pe, inputs, hash, {
    builderImage: opts.builder,
    env: [
      { name: 'HTTPS_PROXY', value: `http://${GATEWAY}:${EGRESS_PROXY_PORT}` },
      { name: 'SLIPWAY_INSECURE_REGISTRIES', value: opts.host },
    ],
    caBundle: { configMap: 'trusted-ca', key: 'ca.crt' },
  });
  // No ProjectEnvironment owns it here: the garbage collector would take a Job whose owner does not exist.
  delete job.metadata.ownerReferences;
  const name = buildJobName(ENVIRONMENT, hash);
  await kubectl(['delete', 'job', name, '-n', ns, '--ignore-not-found', '--wait=true', '--cascade=foreground']);
  await kubectl(['create', '-f', '-'], JSON.stringify(job));
  const done = await eventually(`the build Job ${ns}/${name}`, async () => {
    const j = JSON.parse(await kubectl(['get', 'job', name, '-n', ns, '-o', 'json'])) as JobView;
    const end = j.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    return end ? { ok: end.type === 'Complete', message: end.message ?? '' } : undefined;
  }, { timeoutMs: 1_800_000, intervalMs: 2000 });
  const pods = (JSON.parse(await kubectl(['get', 'pods', '-n', ns, '-l', `job-name=${name}`, '-o', 'json'])) as { items: PodView[] }).items;
  const last = pods.sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '')).at(-1);
  const message = last?.status?.containerStatuses?.find((c) => c.name === BUILD_CONTAINER)?.state?.terminated?.message;
  const report = parseBuildReport(message, inputs.repository);
  if (!report.ok) throw new Error(`the MLServer image's build failed (${report.reason}): ${report.message}`);
  if (!done.ok) throw new Error(`the MLServer image's build Job failed: ${done.message}`);
  return report.image;
}

/**
 * Writes an OCI layout of the built environment image (as pushed), its SBOM (when the build pushed one) and the
 * mirror (the same layers, the upstream MLServer image's command and MLSERVER_MODELS_DIR in its config), each
 * manifest named in index.json by the repository:tag it is pushed as.
 */
async function saveLayout(dir: string, built: string, sbomRef: string, names: { env: string; sbom: string; mirror: string }): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): string => {
    const digest = sha256(b);
    writeFileSync(join(blobs, digest), b);
    return `sha256:${digest}`;
  };
  const manifests: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[] = [];
  const keep = async (ref: string, name: string): Promise<PulledManifest> => {
    const m = await fetchManifest(ref);
    for (const d of [m.manifest.config.digest, ...m.manifest.layers.map((l) => l.digest)]) put(await fetchBlob(ref, d));
    manifests.push({ mediaType: OCI_MANIFEST, digest: put(m.raw), size: m.raw.length, annotations: { 'org.opencontainers.image.ref.name': name } });
    return m;
  };
  const env = await keep(built, names.env);
  if (await fetchManifest(sbomRef).then(() => true, () => false)) await keep(sbomRef, names.sbom);
  const mirror = withCommand(built, env);
  for (const b of [mirror.config, mirror.manifest]) put(b);
  manifests.push({ mediaType: OCI_MANIFEST, digest: mirror.manifestDigest, size: mirror.manifest.length, annotations: { 'org.opencontainers.image.ref.name': names.mirror } });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
}

/**
 * The built environment image (`ref`, as fetched) with the upstream MLServer image's command and
 * MLSERVER_MODELS_DIR in its config.
 */
function withCommand(ref: string, m: PulledManifest): ReturnType<typeof image> {
  const config = m.config;
  const layers: Layer[] = [];
  for (const [i, l] of m.manifest.layers.entries()) {
    const diffId = config.rootfs?.diff_ids?.[i];
    if (l.mediaType !== GZIP_LAYER || !diffId) throw new Error(`${ref}: layer ${l.digest} is ${l.mediaType} (a gzipped OCI layer with its diff_id is expected)`);
    const size = l.size ?? 0;
    // The blobs are in the layout already (the environment image's); the mirror's manifest only names them.
    layers.push({ blob: Buffer.alloc(0), digest: l.digest, diffId, size });
  }
  const c = config.config ?? {};
  return image(layers, {
    entrypoint: [],
    cmd: ['mlserver', 'start', MODELS_DIR],
    env: [...(c.Env ?? []).filter((e) => !e.startsWith('MLSERVER_MODELS_DIR=')), `MLSERVER_MODELS_DIR=${MODELS_DIR}`],
    user: c.User ?? '65532:65532',
    workingDir: c.WorkingDir ?? '/home/nonroot',
    labels: { ...c.Labels, 'org.opencontainers.image.title': 'mlserver', 'org.opencontainers.image.version': MLSERVER_VERSION, 'dev.slipway.built-from': ref },
  });
}
