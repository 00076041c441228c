// Environment builds, measured on the local cluster (needs root: the pod runner runs the build Jobs):
//   - a 40-requirement Python environment and a 20-package R environment, each built cold (apply → Ready: the
//     Job, resolution, downloads, install, the layer, the push), then again for the same content under another
//     name (the image is found under its content hash: no build), then with one package more (everything again:
//     a build pod starts with no cache);
//   - image sizes: the environment's layer and the whole image, compressed, and how many packages the lock holds;
//   - beside it, the same Python requirements installed the way a Dockerfile's `RUN pip install -r` does (no lock,
//     no hashes, default bytecode, then the changed files tarred and gzipped as an image builder would), in a
//     chroot of the same base image on this machine, twice: time, size, and whether the two layers are the same;
//   - and the same 20 R packages the way a Dockerfile on Debian installs them (`FROM debian:12` and `RUN apt-get
//     install r-base-core r-cran-…`: the same Debian builds the R environment takes, CRAN being out of reach),
//     as mmdebstrap bootstraps it (apt, dpkg and the maintainer scripts run): the base alone, then base + R, twice.
//   npm run bench:environments [-- --python-only] [--skip-dockerfile] [--dockerfile-only]   (mmdebstrap: apt-get install mmdebstrap)
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { fetchManifest } from '../image/distribution.ts';
import { BASE_IMAGES, buildBaseImage, pipWheelPath, pushEnvironmentImages } from '../image/environment-images.ts';
import { installSlipwayCrds, startCluster } from '../local/cluster.ts';
import { EGRESS_PROXY_PORT } from '../local/egress-proxy.ts';
import { eventually } from '../local/eventually.ts';
import { GATEWAY } from '../local/podnet.ts';
import { freePorts } from '../local/processes.ts';

const { values } = parseArgs({ options: { 'python-only': { type: 'boolean', default: false }, 'skip-dockerfile': { type: 'boolean', default: false }, 'dockerfile-only': { type: 'boolean', default: false } } });
const NS = 'bench';
const root = join(import.meta.dirname, '..');
const run = promisify(execFile);

/** 40 requirements a data-science project names (the survey behind the product counts about 40 Python packages). */
export const PYTHON_40 = [
  'numpy', 'pandas', 'scipy', 'scikit-learn', 'statsmodels', 'matplotlib', 'seaborn', 'lightgbm', 'joblib', 'threadpoolctl',
  'requests', 'urllib3', 'idna', 'certifi', 'charset-normalizer', 'pyyaml', 'click', 'tabulate', 'tqdm', 'python-dateutil',
  'pytz', 'tzdata', 'six', 'attrs', 'jinja2', 'markupsafe', 'packaging', 'pydantic', 'sqlalchemy', 'cloudpickle',
  'networkx', 'pillow', 'openpyxl', 'sympy', 'patsy', 'pyparsing', 'kiwisolver', 'cycler', 'fonttools', 'tenacity',
];
/** 20 CRAN packages (Debian's builds of them). */
export const R_20 = [
  'jsonlite', 'data.table', 'magrittr', 'dplyr', 'ggplot2', 'tidyr', 'stringr', 'readr', 'lubridate', 'purrr',
  'tibble', 'glue', 'rlang', 'httr', 'xml2', 'randomForest', 'glmnet', 'zoo', 'forecast', 'caret',
];

interface Penv { status?: { image?: string; lock?: string[]; phase?: string; conditions?: { type: string; status: string; reason: string; message: string }[] } }

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:environments needs root: the pod runner runs the build Jobs');
  if (values['dockerfile-only']) {
    await dockerfileStyle();
    if (!values['python-only']) await dockerfileStyleR();
    return;
  }
  const dir = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `slipway-bench-environments-${process.pid}`);
  const cluster = await startCluster({ dir, serve: true, audit: false, log: (l) => console.error(`  ${l}`) });
  const kubectl = cluster.kubectl;
  const registry = cluster.imageRegistry?.host ?? '';
  const rows: string[][] = [];
  let controller: ReturnType<typeof spawn> | undefined;
  try {
    await installSlipwayCrds(kubectl);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['create', 'configmap', 'trusted-ca', '-n', NS, '--from-file=ca.crt=/etc/ssl/certs/ca-certificates.crt']);
    const refs = await pushEnvironmentImages(registry, (l) => console.error(`  ${l}`), values['python-only'] ? ['python'] : ['python', 'r']);
    const [port] = (await freePorts(1)) as [number];
    controller = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, join(root, 'src', 'main.ts'), `--kubeconfig=${cluster.kubeconfig}`, `--namespace=${NS}`,
      '--no-leader-elect', `--metrics-port=${port}`, '--metrics-host=127.0.0.1', `--environment-builder-image=${refs.builder}`,
      `--environment-build-env=HTTPS_PROXY=http://${GATEWAY}:${EGRESS_PROXY_PORT}`, `--environment-build-env=SLIPWAY_INSECURE_REGISTRIES=${registry}`,
      '--environment-build-ca=trusted-ca'], { stdio: 'ignore', env: { ...process.env, SLIPWAY_LOG_LEVEL: 'warn' } });
    await eventually('the controller', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000 });

    /** Applies an environment and times apply → Ready; a failed build stops the bench with its reason. */
    const build = async (name: string, base: string, packages: Record<string, string[]>, repo: string): Promise<{ seconds: number; status: NonNullable<Penv['status']> }> => {
      const t0 = performance.now();
      await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', metadata: { name }, spec: { baseImage: base, packages, build: { repository: `${registry}/${NS}/${repo}` } } }));
      const status = await eventually(`${name} Ready`, async () => {
        const s = (JSON.parse(await kubectl(['get', 'penv', name, '-n', NS, '-o', 'json'])) as Penv).status;
        const ready = s?.conditions?.find((c) => c.type === 'Ready');
        if (s?.phase === 'Failed') throw new Error(`${name}: ${ready?.reason}: ${ready?.message}`);
        return ready?.status === 'True' ? s : undefined;
      }, { timeoutMs: 1_800_000, intervalMs: 250 });
      return { seconds: (performance.now() - t0) / 1000, status: status ?? {} };
    };
    const sizes = async (image: string, baseRef: string): Promise<{ layer: number; total: number }> => {
      const m = await fetchManifest(image);
      const base = await fetchManifest(baseRef);
      const sizeOf = (mm: typeof m): number => (mm.manifest.layers as { size?: number }[]).reduce((s, l) => s + (l.size ?? 0), 0);
      return { layer: sizeOf(m) - sizeOf(base), total: sizeOf(m) };
    };
    const mib = (b: number): string => (b / 1048576).toFixed(1);

    const cases: { what: string; base: string; packages: Record<string, string[]>; more: Record<string, string[]> }[] = [
      { what: `Python, ${PYTHON_40.length} requirements`, base: refs.bases.python ?? '', packages: { pip: PYTHON_40 }, more: { pip: [...PYTHON_40, 'rich'] } },
      ...(values['python-only'] ? [] : [{ what: `R, ${R_20.length} CRAN packages`, base: refs.bases.r ?? '', packages: { r: R_20 }, more: { r: [...R_20, 'tidyverse'] } }]),
    ];
    for (const [i, c] of cases.entries()) {
      const cold = await build(`env-${i}`, c.base, c.packages, `env-${i}`);
      const size = await sizes(cold.status.image ?? '', c.base);
      const warm = await build(`env-${i}-again`, c.base, c.packages, `env-${i}`);
      const changed = await build(`env-${i}`, c.base, c.more, `env-${i}`);
      console.error(`  ${c.what}: cold ${cold.seconds.toFixed(1)} s, same content ${warm.seconds.toFixed(1)} s, one more ${changed.seconds.toFixed(1)} s`);
      rows.push([c.what, String(cold.status.lock?.length ?? 0), cold.seconds.toFixed(1), warm.seconds.toFixed(1), changed.seconds.toFixed(1), mib(size.layer), mib(size.total)]);
    }
  } finally {
    controller?.kill('SIGTERM');
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nEnvironment builds on the local cluster (${new Date().toISOString().slice(0, 10)}, ${(await run('nproc')).stdout.trim()} cores)`);
  console.log('| environment | packages locked | cold build, s | same content again, s | one package more, s | layer, MiB (gzip) | image, MiB (gzip) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);

  if (!values['skip-dockerfile']) {
    await dockerfileStyle();
    if (!values['python-only']) await dockerfileStyleR();
  }
}

/**
 * `FROM debian:12` + `RUN apt-get update && apt-get install -y --no-install-recommends r-base-core r-cran-…` as a
 * Debian bootstrap makes it (mmdebstrap, variant apt, from the machine's Debian mirror): the base alone, then the
 * base with R and the 20 packages, twice. The RUN step's share is the difference; the image is the whole tree.
 */
async function dockerfileStyleR(): Promise<void> {
  await run('mmdebstrap', ['--version']).catch(() => {
    throw new Error('the R Dockerfile-style comparison needs mmdebstrap (apt-get install mmdebstrap)');
  });
  const packages = ['r-base-core', ...R_20.map((n) => `r-cran-${n.toLowerCase()}`)];
  const bootstrap = async (include: string[]): Promise<{ seconds: number; tar: number; gz: number; digest: string; debs: number }> => {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-debian-'));
    try {
      const tar = join(dir, 'root.tar');
      const t0 = performance.now();
      await run('mmdebstrap', ['--quiet', '--variant=apt', '--mode=root', ...(include.length ? [`--include=${include.join(',')}`] : []), 'bookworm', tar], { maxBuffer: 64 * 1024 * 1024 });
      const seconds = (performance.now() - t0) / 1000;
      const list = (await run('tar', ['-xOf', tar, './var/lib/dpkg/status'], { maxBuffer: 64 * 1024 * 1024 })).stdout;
      await run('gzip', ['-k', '-6', tar]);
      return {
        seconds,
        tar: readFileSync(tar).length,
        gz: readFileSync(`${tar}.gz`).length,
        digest: createHash('sha256').update(readFileSync(tar)).digest('hex'),
        debs: (list.match(/^Package: /gm) ?? []).length,
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const base = await bootstrap([]);
  const withR = [await bootstrap(packages), await bootstrap(packages)];
  const mib = (n: number): string => (n / 1048576).toFixed(1);
  console.log(`
The same ${R_20.length} R packages, Dockerfile-style on Debian 12 (\`FROM debian:12\`, \`RUN apt-get install r-base-core r-cran-…\`), bootstrapped by mmdebstrap on this machine`);
  console.log('| tree | Debian packages | bootstrap, s | RUN step (minus the base), s | tree, MiB | gzip, MiB | tar sha256 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  console.log(`| debian:12 (variant apt) | ${base.debs} | ${base.seconds.toFixed(1)} | – | ${mib(base.tar)} | ${mib(base.gz)} | ${base.digest.slice(0, 16)}… |`);
  for (const [i, r] of withR.entries()) console.log(`| + R, run ${i + 1} | ${r.debs} | ${r.seconds.toFixed(1)} | ${(r.seconds - base.seconds).toFixed(1)} | ${mib(r.tar)} | ${mib(r.gz)} | ${r.digest.slice(0, 16)}… |`);
  console.log(withR[0]?.digest === withR[1]?.digest ? 'The two runs gave the same tree.' : 'The two runs gave different trees (file times, maintainer scripts\' output): the same Dockerfile is not the same image.');
}

/**
 * `RUN pip install -r requirements.txt` as an image builder runs it: in the base image (a chroot of python-base
 * here, with this machine's network), resolution and install in one step, pip's defaults (bytecode with
 * timestamps, no hashes), then the files it wrote tarred with their metadata and gzipped. Twice, to see whether
 * the same Dockerfile gives the same layer.
 */
async function dockerfileStyle(): Promise<void> {
  const base = buildBaseImage('python');
  const index = JSON.parse(readFileSync(join(base.dir, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(base.dir, 'oci', 'blobs', 'sha256', (index.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const results: { seconds: number; bytes: number; digest: string }[] = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    const tree = mkdtempSync(join(tmpdir(), 'slipway-bench-dockerfile-'));
    try {
      for (const l of manifest.layers) await run('tar', ['-xzf', join(base.dir, 'oci', 'blobs', 'sha256', l.digest.slice(7)), '-C', tree]);
      for (const d of ['proc', 'dev', 'work', 'opt/pip', 'etc/slipway']) mkdirSync(join(tree, d), { recursive: true });
      writeFileSync(join(tree, 'work', 'requirements.txt'), `${PYTHON_40.join('\n')}\n`);
      writeFileSync(join(tree, 'etc', 'slipway', 'ca.crt'), readFileSync('/etc/ssl/certs/ca-certificates.crt'));
      writeFileSync(join(tree, 'etc', 'resolv.conf'), readFileSync('/etc/resolv.conf'));
      writeFileSync(join(tree, 'opt', 'pip', 'pip.whl'), readFileSync(pipWheelPath()));
      const t0 = performance.now();
      const script = [
        `mount -t proc proc ${tree}/proc`,
        `mount --bind /dev ${tree}/dev`,
        `exec chroot ${tree} /usr/bin/python3 /opt/pip/pip.whl/pip install --disable-pip-version-check --no-cache-dir --cert /etc/slipway/ca.crt --root /work/stage -r /work/requirements.txt`,
      ].join('\n');
      await run('unshare', ['--mount', 'sh', '-c', script], { maxBuffer: 64 * 1024 * 1024, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' } });
      // The layer: the files the RUN step wrote, with their metadata, as a builder's snapshot keeps them.
      const layer = join(tree, 'layer.tar.gz');
      await run('tar', ['-czf', layer, '-C', join(tree, 'work', 'stage'), '.']);
      const seconds = (performance.now() - t0) / 1000;
      const bytes = readFileSync(layer);
      results.push({ seconds, bytes: bytes.length, digest: createHash('sha256').update(bytes).digest('hex') });
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  }
  console.log(`\nThe same ${PYTHON_40.length} requirements, Dockerfile-style (\`RUN pip install -r\`, then the layer tarred and gzipped), in a chroot of python-base on this machine`);
  console.log('| run | install + layer, s | layer, MiB (gzip) | layer sha256 |');
  console.log('| --- | --- | --- | --- |');
  for (const [i, r] of results.entries()) console.log(`| ${i + 1} | ${r.seconds.toFixed(1)} | ${(r.bytes / 1048576).toFixed(1)} | ${r.digest.slice(0, 16)}… |`);
  console.log(results[0]?.digest === results[1]?.digest ? 'The two runs gave the same layer.' : 'The two runs gave different layers (timestamps in the tar and in the bytecode): the same Dockerfile is not the same image.');
  console.log(`Base images: ${Object.values(BASE_IMAGES).map((b) => b.name).join(', ')}.`);
}

await main();
