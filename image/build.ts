// `npm run image:build`: the controller's OCI image, without a Docker daemon. Three layers:
//   base  Debian packages pinned in image/debian.lock (git and its transports, the libraries Node and git load,
//         the CA bundle), /usr merged, a nonroot user (65532), /tmp and /var/lib/slipway
//   node  the Node 24 binary of the `node` package this repository pins (from the npm registry)
//   app   the production dependencies (npm ci --omit=dev from package-lock.json) and the sources as JavaScript
//         (types stripped at build time, relative imports pointed at the .js files)
// Reproducible: every input is pinned and every byte written deterministically, so the same commit gives the same
// digest. Written as an OCI image layout with an SPDX SBOM beside it, cached by a hash of the inputs.
//   npm run image:build [-- --out DIR] [--no-cache]      npm run image:lock   (re-pin the Debian packages)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { stripTypeScriptTypes } from 'node:module';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../local/toolchain.ts';
import { NODE_FLAGS, PROCESS_ENV } from '../src/runtime/node-flags.ts';
import { caBundle, debianTree, fetchDeb, keep, readLock, writeLock, type LockedPackage } from './debian.ts';
import { image, layer, sha256, treeEntries, writeLayout, type Image, type TarEntry } from './oci.ts';

const root = join(import.meta.dirname, '..');
export const NODE_BINARY = join(root, 'node_modules', 'node', 'bin', 'node');
const VERSION = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
export const IMAGE_REF = `slipway/controller:${VERSION}`;

/** Every file whose content decides the image, hashed: the cache key. */
export function inputsHash(): string {
  const files = ['package.json', 'package-lock.json', 'image/debian.lock', 'image/build.ts', 'image/oci.ts', 'image/debian.ts'].map((f) => join(root, f));
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(join(root, 'src'));
  const h = files.map((f) => `${relative(root, f)} ${sha256(readFileSync(f))}`).join('\n');
  return sha256(`${h}\nnode ${nodeVersion()}\n`).slice(0, 16);
}

const nodeVersion = (): string => execFileSync(NODE_BINARY, ['--version'], { encoding: 'utf8' }).trim();

function baseLayer(pkgs: LockedPackage[], debCache: string): TarEntry[] {
  return debianTree(pkgs, debCache, keep, (stage) => {
    const text = (path: string, s: string | Buffer, mode = 0o644): TarEntry => ({ path, type: 'file', mode, data: Buffer.isBuffer(s) ? s : Buffer.from(s) });
    return [
      text('etc/ssl/certs/ca-certificates.crt', caBundle(stage)),
      text('etc/passwd', 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/slipway:/usr/sbin/nologin\n'),
      text('etc/group', 'root:x:0:\nnonroot:x:65532:\n'),
      text('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
      { path: 'tmp', type: 'dir', mode: 0o1777 },
      { path: 'var/lib/slipway', type: 'dir', mode: 0o755, uid: 65532, gid: 65532 },
    ];
  });
}

function appLayer(): { entries: TarEntry[]; npm: { name: string; version: string }[] } {
  const stage = mkdtempSync(join(tmpdir(), 'slipway-image-app-'));
  try {
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(root, f), join(stage, f));
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: stage, stdio: ['ignore', 'ignore', 'inherit'] });
    cpSync(join(root, 'src'), join(stage, 'src'), { recursive: true });
    stripTypes(join(stage, 'src'));
    const lock = JSON.parse(readFileSync(join(stage, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
    const npm = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/')).map(([p, v]) => ({ name: p.slice(p.lastIndexOf('node_modules/') + 'node_modules/'.length), version: v.version ?? '' }));
    // npm's own bookkeeping in the tree varies with the npm that ran; it is not needed at run time.
    const entries = treeEntries(stage, 'app', (p) => !p.endsWith('node_modules/.package-lock.json') && p !== 'app/package-lock.json');
    return { entries, npm };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * The sources as JavaScript: types stripped ahead of time (Node's own stripper, the one it would run at every
 * start) and relative imports pointed at the .js files. The controller then starts without loading the type
 * stripper, which costs about 18 MiB of resident memory for the life of the process.
 */
export function stripTypes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      stripTypes(path);
      continue;
    }
    if (!name.endsWith('.ts')) continue;
    const js = stripTypeScriptTypes(readFileSync(path, 'utf8'), { mode: 'strip' })
      .replace(/(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
    writeFileSync(path.replace(/\.ts$/, '.js'), js);
    rmSync(path);
  }
}

/** SPDX 2.3: every package in the image. */
function sbom(img: Image, debs: LockedPackage[], node: string, npm: { name: string; version: string }[]): string {
  const pkg = (i: number, name: string, version: string, purl: string) => ({
    SPDXID: `SPDXRef-Package-${i}`, name, versionInfo: version, downloadLocation: 'NOASSERTION', filesAnalyzed: false,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }],
  });
  const packages = [
    ...debs.map((d, i) => pkg(i, d.name, d.version, `pkg:deb/debian/${d.name}@${encodeURIComponent(d.version)}?arch=amd64`)),
    pkg(debs.length, 'node', node.replace(/^v/, ''), `pkg:generic/node@${node.replace(/^v/, '')}`),
    ...npm.map((p, i) => pkg(debs.length + 1 + i, p.name, p.version, `pkg:npm/${p.name.startsWith('@') ? `%40${p.name.slice(1)}` : p.name}@${p.version}`)),
  ];
  return JSON.stringify({
    spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: `${IMAGE_REF}@${img.manifestDigest}`,
    documentNamespace: `https://slipway.dev/spdx/${img.manifestDigest}`,
    creationInfo: { created: '1970-01-01T00:00:00Z', creators: ['Tool: slipway image/build.ts'] },
    packages,
  }, null, 2);
}

export interface Built {
  dir: string;
  digest: string;
  size: number;
  layers: string[];
  cached: boolean;
}

/** Builds the image into the cache (or reuses it) and returns where its OCI layout is. */
export function buildImage(opts: { cache?: boolean; log?: (line: string) => void } = {}): Built {
  const log = opts.log ?? (() => {});
  const dir = join(cacheRoot(), 'image', inputsHash());
  const meta = join(dir, 'built.json');
  if (opts.cache !== false && existsSync(meta)) return { ...(JSON.parse(readFileSync(meta, 'utf8')) as Omit<Built, 'cached'>), cached: true };
  const t0 = Date.now();
  const debs = readLock();
  log(`base: ${debs.length} Debian packages (image/debian.lock)`);
  const base = layer(baseLayer(debs, join(cacheRoot(), 'debs')));
  const node = nodeVersion();
  log(`node: ${node}`);
  const nodeLayer = layer([{ path: 'usr/local/bin/node', type: 'file', mode: 0o755, data: readFileSync(NODE_BINARY) }]);
  log('app: npm ci --omit=dev, src/');
  const app = appLayer();
  const appL = layer(app.entries);
  const img = image([base, nodeLayer, appL], {
    entrypoint: ['/usr/local/bin/node', ...NODE_FLAGS, '/app/src/main.js'],
    env: ['PATH=/usr/local/bin:/usr/bin', 'HOME=/var/lib/slipway', 'NODE_ENV=production', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt', 'GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt', ...Object.entries(PROCESS_ENV).map(([k, v]) => `${k}=${v}`)],
    user: '65532:65532',
    workingDir: '/app',
    labels: { 'org.opencontainers.image.title': 'slipway-controller', 'org.opencontainers.image.version': VERSION, 'org.opencontainers.image.licenses': 'Apache-2.0' },
  });
  rmSync(dir, { recursive: true, force: true });
  writeLayout(join(dir, 'oci'), img, IMAGE_REF);
  writeFileSync(join(dir, 'sbom.spdx.json'), sbom(img, debs, node, app.npm));
  const built = { dir, digest: img.manifestDigest, size: img.size, layers: img.layers.map((l) => l.digest) };
  writeFileSync(meta, JSON.stringify(built));
  log(`built ${IMAGE_REF}@${img.manifestDigest} (${(img.size / 1048576).toFixed(1)} MiB compressed) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { ...built, cached: false };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'no-cache': { type: 'boolean', default: false }, lock: { type: 'boolean', default: false } } });
  if (values.lock) {
    const pkgs = writeLock(NODE_BINARY, (p) => fetchDeb(p, join(cacheRoot(), 'debs'), false));
    console.log(`wrote image/debian.lock: ${pkgs.length} packages`);
  } else {
    const b = buildImage({ cache: !values['no-cache'], log: (l) => console.error(l) });
    if (values.out) {
      mkdirSync(values.out, { recursive: true });
      cpSync(b.dir, values.out, { recursive: true });
    }
    console.log(`${IMAGE_REF}@${b.digest}\n${(b.size / 1048576).toFixed(1)} MiB compressed; OCI layout and SBOM in ${values.out ?? b.dir}${b.cached ? ' (cached)' : ''}`);
  }
}
