// The images that ProjectEnvironment builds need, built without Docker like the controller's:
//   python-base      Python 3.11 from pinned Debian packages (image/python-base.lock: apt's own closure of
//                    python3.11, the CA bundle and libstdc++ that manylinux wheels expect), /usr merged, user
//                    65532, no package manager run: a base for environments, pinned by digest once pushed
//   environment-builder  the builder (image/environment-builder/build.py) and pip as a wheel, pinned by sha256 —
//                    mounted read-only into a build Job as an image volume, run by the base image's Python
// Both are reproducible (the same inputs give the same digest) and cached by a hash of their inputs.
//   npm run image:environments [-- --push HOST]     npm run image:environments -- --lock   (re-pin python-base)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../local/toolchain.ts';
import { caBundle, closure, debianTree, fetchDeb, readLock, writeLockFile, type LockedPackage } from './debian.ts';
import { pushLayout } from './distribution.ts';
import { image, layer, sha256, writeLayout, type TarEntry } from './oci.ts';

const here = import.meta.dirname;
export const PYTHON_BASE_LOCK = join(here, 'python-base.lock');
const PYTHON_ROOTS = ['python3.11', 'python3-minimal', 'ca-certificates', 'libstdc++6'];
const BUILDER_SCRIPT = join(here, 'environment-builder', 'build.py');
/** pip, run from its wheel by the builder (`python3 pip.whl/pip`): pinned by version and sha256. */
export const PIP = { version: '25.3', sha256: '9655943313a94722b7774661c21049070f6bbb0a1516bf02f7c8d5d9201514cd' } as const;

export const PYTHON_BASE_REPOSITORY = 'slipway/python-base';
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

/** The Python base image: Debian's Python 3.11 and what it loads, from image/python-base.lock. */
export function buildPythonBase(log: (l: string) => void = () => {}): BuiltImage {
  const lock = readFileSync(PYTHON_BASE_LOCK, 'utf8');
  const hash = sha256([lock, ...['environment-images.ts', 'debian.ts', 'oci.ts'].map((f) => sha256(readFileSync(join(here, f))))].join('\n')).slice(0, 16);
  return cachedImage('python-base', hash, () => {
    const debs = readLock(PYTHON_BASE_LOCK);
    log(`python-base: ${debs.length} Debian packages (image/python-base.lock)`);
    const entries = debianTree(debs, join(cacheRoot(), 'debs'), keepForPython, (stage): TarEntry[] => {
      const text = (path: string, s: string | Buffer): TarEntry => ({ path, type: 'file', mode: 0o644, data: Buffer.isBuffer(s) ? s : Buffer.from(s) });
      return [
        text('etc/ssl/certs/ca-certificates.crt', caBundle(stage)),
        text('etc/passwd', 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n'),
        text('etc/group', 'root:x:0:\nnonroot:x:65532:\n'),
        text('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
        { path: 'tmp', type: 'dir', mode: 0o1777 },
        { path: 'home/nonroot', type: 'dir', mode: 0o755, uid: 65532, gid: 65532 },
      ];
    }, 'image/python-base.lock');
    const img = image([layer(entries)], {
      entrypoint: [],
      cmd: ['/usr/bin/python3'],
      env: ['PATH=/usr/local/bin:/usr/bin', 'LANG=C.UTF-8', 'HOME=/home/nonroot', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt', 'PYTHONUNBUFFERED=1'],
      user: '65532:65532',
      workingDir: '/',
      labels: { 'org.opencontainers.image.title': 'slipway-python-base', 'org.opencontainers.image.base.name': 'debian:12', 'dev.slipway.python': '3.11' },
    });
    return { img, ref: `${PYTHON_BASE_REPOSITORY}:3.11` };
  }, log);
}

/** pip's wheel in the cache (downloaded from the package index once), checked against its sha256. */
function pipWheel(): Buffer {
  const dir = join(cacheRoot(), 'wheels');
  const file = join(dir, `pip-${PIP.version}-py3-none-any.whl`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--dest', dir, `pip==${PIP.version}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const data = readFileSync(file);
  if (sha256(data) !== PIP.sha256) throw new Error(`${file} does not match pip ${PIP.version}'s pinned sha256`);
  return data;
}

/** The builder image: build.py and pip's wheel at its root (mounted at /opt/slipway/builder as an image volume). */
export function buildBuilderImage(log: (l: string) => void = () => {}): BuiltImage {
  const script = readFileSync(BUILDER_SCRIPT);
  const hash = sha256(`${sha256(script)}\n${PIP.sha256}\n${sha256(readFileSync(join(here, 'oci.ts')))}`).slice(0, 16);
  return cachedImage('environment-builder', hash, () => {
    const img = image([layer([
      { path: 'build.py', type: 'file', mode: 0o644, data: script },
      { path: 'pip.whl', type: 'file', mode: 0o644, data: pipWheel() },
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
export async function pushEnvironmentImages(host: string, log: (l: string) => void = () => {}): Promise<{ pythonBase: string; builder: string }> {
  const base = buildPythonBase(log);
  const builder = buildBuilderImage(log);
  await pushLayout(join(base.dir, 'oci'), `${host}/${PYTHON_BASE_REPOSITORY}:3.11`);
  await pushLayout(join(builder.dir, 'oci'), `${host}/${BUILDER_REPOSITORY}:latest`);
  return { pythonBase: `${host}/${PYTHON_BASE_REPOSITORY}@${base.digest}`, builder: `${host}/${BUILDER_REPOSITORY}@${builder.digest}` };
}

/** Re-pins image/python-base.lock to what the archive serves now. */
export function lockPythonBase(): LockedPackage[] {
  const pkgs = closure(PYTHON_ROOTS);
  return writeLockFile(PYTHON_BASE_LOCK, 'the Python base image (apt\'s closure of ' + PYTHON_ROOTS.join(', ') + ')', pkgs, (p) => fetchDeb(p, join(cacheRoot(), 'debs'), false));
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { lock: { type: 'boolean', default: false }, push: { type: 'string' } } });
  if (values.lock) {
    console.log(`wrote image/python-base.lock: ${lockPythonBase().length} packages`);
  } else if (values.push) {
    const refs = await pushEnvironmentImages(values.push, (l) => console.error(l));
    console.log(`${refs.pythonBase}\n${refs.builder}`);
  } else {
    for (const b of [buildPythonBase((l) => console.error(l)), buildBuilderImage((l) => console.error(l))]) {
      console.log(`${b.name}@${b.digest} ${(b.size / 1048576).toFixed(1)} MiB compressed${b.cached ? ' (cached)' : ''}: ${b.dir}/oci`);
    }
  }
}
