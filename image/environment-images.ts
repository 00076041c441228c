// The images that ProjectEnvironment builds need, built without Docker like the controller's:
//   python-base      Python 3.11 from pinned Debian packages (image/python-base.lock: apt's own closure of
//                    python3.11, the CA bundle and libstdc++ that manylinux wheels expect), /usr merged, dpkg's
//                    status, user 65532, no maintainer script run: a base for environments, pinned by digest
//   r-base           the same with R 4.2 (image/r-base.lock: r-base-core and the shell tools its wrapper runs)
//   environment-builder  the builder (image/environment-builder/build.py) and pip as a wheel, pinned by sha256 —
//                    mounted read-only into a build Job as an image volume, run by the base image's Python
// All are reproducible (the same inputs give the same digest) and cached by a hash of their inputs.
//   npm run image:environments [-- --push HOST [--env]]     npm run image:environments -- --lock   (re-pin the bases)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../local/toolchain.ts';
import { caBundle, closure, debianTree, fetchDeb, readLock, writeLockFile, type LockedPackage } from './debian.ts';
import { pushLayout } from './distribution.ts';
import { image, layer, sha256, writeLayout, type TarEntry } from './oci.ts';

const here = import.meta.dirname;
const PYTHON_ROOTS = ['python3.11', 'python3-minimal', 'ca-certificates', 'libstdc++6', 'base-files', 'libc-bin'];
const BUILDER_SCRIPT = join(here, 'environment-builder', 'build.py');
/** pip, run from its wheel by the builder (`python3 pip.whl/pip`): pinned by version and sha256. */
export const PIP = { version: '25.3', sha256: '9655943313a94722b7774661c21049070f6bbb0a1516bf02f7c8d5d9201514cd' } as const;

export const BUILDER_REPOSITORY = 'slipway/environment-builder';

export interface BuiltImage {
  name: string;
  dir: string;
  digest: string;
  size: number;
  cached: boolean;
}

/** What of a Debian package a Python base keeps: no docs, manuals, locales or Debian's own bookkeeping. */
function keepForPython(path: string): boolean {
  if (/^usr\/share\/(doc|man|info|locale|lintian|bug|bash-completion|zsh|fish)(\/|$)/.test(path)) return false;
  if (/^var\/(cache|log)\//.test(path)) return false;
  return true;
}

function cachedImage(name: string, hash: string, make: () => { img: ReturnType<typeof image>; ref: string }, log: (l: string) => void): BuiltImage {
  const dir = join(cacheRoot(), 'image', `${name}-${hash}`);
  const meta = join(dir, 'built.json');
  if (existsSync(meta)) return { ...(JSON.parse(readFileSync(meta, 'utf8')) as Omit<BuiltImage, 'cached'>), cached: true };
  const t0 = Date.now();
  const { img, ref } = make();
  rmSync(dir, { recursive: true, force: true });
  writeLayout(join(dir, 'oci'), img, ref);
  const built = { name, dir, digest: img.manifestDigest, size: img.size };
  writeFileSync(meta, JSON.stringify(built));
  log(`built ${ref}@${img.manifestDigest} (${(img.size / 1048576).toFixed(1)} MiB compressed) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { ...built, cached: false };
}

/** A base image of pinned Debian packages: its lock, the packages apt's closure starts from, its labels. */
interface BaseImage {
  name: string;
  tag: string;
  lock: string;
  roots: string[];
  labels: Record<string, string>;
}

export const BASE_IMAGES = {
  python: { name: 'python-base', tag: '3.11', lock: 'python-base.lock', roots: PYTHON_ROOTS, labels: { 'dev.slipway.python': '3.11' } },
  // R beside Python (the builder runs on Python): R 4.2 and what its shell wrapper runs.
  r: { name: 'r-base', tag: '4.2', lock: 'r-base.lock', roots: [...PYTHON_ROOTS, 'r-base-core', 'bash', 'dash', 'coreutils', 'sed', 'grep', 'debianutils'], labels: { 'dev.slipway.python': '3.11', 'dev.slipway.r': '4.2' } },
} satisfies Record<string, BaseImage>;
export type BaseImageName = keyof typeof BASE_IMAGES;

/**
 * dpkg's status file for the packages of a base: what an apt resolution in a build sees as installed (name,
 * version, what it provides and depends on), as in any Debian image.
 */
function dpkgStatus(debs: string[]): string {
  const fields = ['Package', 'Version', 'Architecture', 'Multi-Arch', 'Provides', 'Pre-Depends', 'Depends'];
  return debs.map((deb) => {
    const control = execFileSync('dpkg-deb', ['-f', deb, ...fields], { encoding: 'utf8' }).trim().split('\n');
    const [first = '', ...rest] = control;
    return [first, 'Status: install ok installed', ...rest].join('\n');
  }).sort().join('\n\n') + '\n';
}

/**
 * What a package's maintainer scripts would make: links (update-alternatives: the BLAS and LAPACK R loads,
 * /bin/sh, which) and configuration from templates (ucf: R's Renviron). Packages are unpacked, never configured.
 */
function alternatives(stage: string): TarEntry[] {
  const links: [string, string, string][] = [
    ['usr/lib/x86_64-linux-gnu/libblas.so.3', 'blas/libblas.so.3', 'usr/lib/x86_64-linux-gnu/blas/libblas.so.3'],
    ['usr/lib/x86_64-linux-gnu/liblapack.so.3', 'lapack/liblapack.so.3', 'usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3'],
    ['usr/bin/sh', 'dash', 'usr/bin/dash'],
    ['usr/bin/which', 'which.debianutils', 'usr/bin/which.debianutils'],
  ];
  const entries: TarEntry[] = links.filter(([path, , target]) => existsSync(join(stage, target)) && !existsSync(join(stage, path))).map(([path, link]) => ({ path, type: 'symlink', mode: 0o777, link }));
  // Configuration files a postinst installs with ucf from a template in the package: R's Renviron.
  const ucf: [string, string][] = [['etc/R/Renviron', 'usr/lib/R/etc/Renviron.ucf']];
  for (const [path, template] of ucf) {
    if (existsSync(join(stage, template)) && !existsSync(join(stage, path))) entries.push({ path, type: 'file', mode: 0o644, data: readFileSync(join(stage, template)) });
  }
  return entries;
}

/** A base image for environments: the locked Debian packages, /usr merged, dpkg's status, user 65532. */
export function buildBaseImage(which: BaseImageName = 'python', log: (l: string) => void = () => {}): BuiltImage {
  const def: BaseImage = BASE_IMAGES[which];
  const lockPath = join(here, def.lock);
  const lock = readFileSync(lockPath, 'utf8');
  const hash = sha256([lock, ...['environment-images.ts', 'debian.ts', 'oci.ts'].map((f) => sha256(readFileSync(join(here, f))))].join('\n')).slice(0, 16);
  return cachedImage(def.name, hash, () => {
    const locked = readLock(lockPath);
    log(`${def.name}: ${locked.length} Debian packages (image/${def.lock})`);
    const debs = locked.map((p) => fetchDeb(p, join(cacheRoot(), 'debs'), true, `image/${def.lock}`));
    const entries = debianTree(locked, join(cacheRoot(), 'debs'), keepForPython, (stage): TarEntry[] => {
      const text = (path: string, s: string | Buffer): TarEntry => ({ path, type: 'file', mode: 0o644, data: Buffer.isBuffer(s) ? s : Buffer.from(s) });
      return [
        text('etc/ssl/certs/ca-certificates.crt', caBundle(stage)),
        text('etc/passwd', 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n'),
        text('etc/group', 'root:x:0:\nnonroot:x:65532:\n'),
        text('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
        text('var/lib/dpkg/status', dpkgStatus(debs)),
        ...alternatives(stage),
        { path: 'tmp', type: 'dir', mode: 0o1777 },
        { path: 'home/nonroot', type: 'dir', mode: 0o755, uid: 65532, gid: 65532 },
      ];
    }, `image/${def.lock}`);
    const img = image([layer(entries)], {
      entrypoint: [],
      cmd: ['/usr/bin/python3'],
      env: ['PATH=/usr/local/bin:/usr/bin', 'LANG=C.UTF-8', 'HOME=/home/nonroot', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt', 'PYTHONUNBUFFERED=1'],
      user: '65532:65532',
      // The user's home: servers that write beside themselves (MLServer's .metrics) can.
      workingDir: '/home/nonroot',
      labels: { 'org.opencontainers.image.title': `slipway-${def.name}`, 'org.opencontainers.image.base.name': 'debian:12', ...def.labels },
    });
    return { img, ref: `slipway/${def.name}:${def.tag}` };
  }, log);
}

/** pip's wheel in the cache (downloaded from the package index once), checked against its sha256. */
export function pipWheelPath(): string {
  const dir = join(cacheRoot(), 'wheels');
  const file = join(dir, `pip-${PIP.version}-py3-none-any.whl`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--dest', dir, `pip==${PIP.version}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (sha256(readFileSync(file)) !== PIP.sha256) throw new Error(`${file} does not match pip ${PIP.version}'s pinned sha256`);
  return file;
}

/** The builder image: build.py and pip's wheel at its root (mounted at /opt/slipway/builder as an image volume). */
export function buildBuilderImage(log: (l: string) => void = () => {}): BuiltImage {
  const script = readFileSync(BUILDER_SCRIPT);
  const hash = sha256(`${sha256(script)}\n${PIP.sha256}\n${sha256(readFileSync(join(here, 'oci.ts')))}`).slice(0, 16);
  return cachedImage('environment-builder', hash, () => {
    const img = image([layer([
      { path: 'build.py', type: 'file', mode: 0o644, data: script },
      { path: 'pip.whl', type: 'file', mode: 0o644, data: readFileSync(pipWheelPath()) },
    ])], {
      entrypoint: [],
      env: [],
      user: '65532:65532',
      workingDir: '/',
      labels: { 'org.opencontainers.image.title': 'slipway-environment-builder', 'dev.slipway.pip': PIP.version },
    });
    return { img, ref: `${BUILDER_REPOSITORY}:${hash}` };
  }, log);
}

/** Builds both (or takes them from the cache) and pushes them to `host`; returns their references by digest. */
export async function pushEnvironmentImages(host: string, log: (l: string) => void = () => {}, bases: BaseImageName[] = ['python']): Promise<{ bases: Record<string, string>; builder: string }> {
  const refs: Record<string, string> = {};
  for (const which of bases) {
    const def = BASE_IMAGES[which];
    const built = buildBaseImage(which, log);
    await pushLayout(join(built.dir, 'oci'), `${host}/slipway/${def.name}:${def.tag}`);
    refs[which] = `${host}/slipway/${def.name}@${built.digest}`;
  }
  const builder = buildBuilderImage(log);
  await pushLayout(join(builder.dir, 'oci'), `${host}/${BUILDER_REPOSITORY}:latest`);
  return { bases: refs, builder: `${host}/${BUILDER_REPOSITORY}@${builder.digest}` };
}

/** Re-pins a base image's lock to what the archive serves now. */
export function lockBase(which: BaseImageName): LockedPackage[] {
  const def = BASE_IMAGES[which];
  const pkgs = closure(def.roots);
  return writeLockFile(join(here, def.lock), `the ${def.name} image (apt's closure of ${def.roots.join(', ')})`, pkgs, (p) => fetchDeb(p, join(cacheRoot(), 'debs'), false));
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { lock: { type: 'boolean', default: false }, push: { type: 'string' }, env: { type: 'boolean', default: false } } });
  const all = Object.keys(BASE_IMAGES) as BaseImageName[];
  if (values.lock) {
    for (const which of all) console.log(`wrote image/${BASE_IMAGES[which].lock}: ${lockBase(which).length} packages`);
  } else if (values.push) {
    const refs = await pushEnvironmentImages(values.push, (l) => console.error(l), all);
    // --env: lines for eval (the bases' references, and the builder's as the controller's default).
    if (values.env) console.log(`export SLIPWAY_PYTHON_BASE=${refs.bases.python ?? ''}\nexport SLIPWAY_R_BASE=${refs.bases.r ?? ''}\nexport SLIPWAY_ENVIRONMENT_BUILDER_IMAGE=${refs.builder}`);
    else console.log([...Object.values(refs.bases), refs.builder].join('\n'));
  } else {
    for (const b of [...all.map((w) => buildBaseImage(w, (l) => console.error(l))), buildBuilderImage((l) => console.error(l))]) {
      console.log(`${b.name}@${b.digest} ${(b.size / 1048576).toFixed(1)} MiB compressed${b.cached ? ' (cached)' : ''}: ${b.dir}/oci`);
    }
  }
}
