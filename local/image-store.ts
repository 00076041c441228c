// The pod runner's image store: what a container runtime's image service does, for images in the local registry.
// A pull reads the manifest (by digest or by the digest its tag names now), then each layer, every byte checked
// against its digest, and unpacks the layers in order into one root filesystem per manifest digest, with OCI
// whiteouts applied (`.wh.<name>` deletes what a lower layer put there; `.wh..wh..opq` empties a directory).
// Unpacked trees are kept by digest, so a second pod of the same image starts at once; a tree is written beside
// its final place and renamed in, so a crash never leaves half an image that looks whole.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { fetchBlob, fetchManifest, type PulledManifest } from '../image/distribution.ts';

const run = promisify(execFile);

export interface UnpackedImage {
  digest: string;
  rootfs: string;
  config: NonNullable<PulledManifest['config']['config']>;
}

const LAYER_TYPES = new Set(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.oci.image.layer.v1.tar']);

export class ImageStore {
  private readonly dir: string;
  private readonly pulling = new Map<string, Promise<UnpackedImage>>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The image's root filesystem and config, pulled and unpacked when not here yet (one pull per image at a time). */
  pull(ref: string): Promise<UnpackedImage> {
    const had = this.cachedRef(ref);
    if (had) return Promise.resolve(had);
    let p = this.pulling.get(ref);
    if (!p) {
      p = this.pullOnce(ref).finally(() => this.pulling.delete(ref));
      this.pulling.set(ref, p);
    }
    return p;
  }

  private async pullOnce(ref: string): Promise<UnpackedImage> {
    const m = await fetchManifest(ref);
    const had = this.cached(m.digest); // a tag that names a digest unpacked already
    if (had) return had;
    const home = join(this.dir, m.digest.replace(':', '-'));
    const scratch = `${home}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(join(scratch, 'rootfs'), { recursive: true, mode: 0o755 });
    for (const l of m.manifest.layers) {
      if (!LAYER_TYPES.has(l.mediaType)) throw new Error(`${ref}: layer ${l.digest} is ${l.mediaType}, which the local runner does not unpack`);
      const file = join(scratch, 'layer.tar');
      writeFileSync(file, await fetchBlob(ref, l.digest));
      await unpackLayer(file, join(scratch, 'rootfs'), l.mediaType.endsWith('gzip'));
      rmSync(file);
    }
    writeFileSync(join(scratch, 'manifest.json'), JSON.stringify({ digest: m.digest, manifest: m.manifest, config: m.config }));
    writeFileSync(join(scratch, 'complete'), '');
    // Another process (the pod runner, the data plane's setup) may have unpacked it meanwhile: its tree stays.
    const meanwhile = this.cached(m.digest);
    if (meanwhile) {
      rmSync(scratch, { recursive: true, force: true });
      return meanwhile;
    }
    rmSync(home, { recursive: true, force: true });
    mkdirSync(dirname(home), { recursive: true });
    renameSync(scratch, home);
    return { digest: m.digest, rootfs: join(home, 'rootfs'), config: m.config.config ?? {} };
  }

  /** The image of a reference by digest when it is unpacked already (a tag may have moved: it is looked up). */
  cachedRef(ref: string): UnpackedImage | undefined {
    const digest = /@(sha256:[a-f0-9]{64})$/.exec(ref)?.[1];
    return digest ? this.cached(digest) : undefined;
  }

  /** The config of an image already unpacked, by digest (no registry needed). */
  cached(digest: string): UnpackedImage | undefined {
    const home = join(this.dir, digest.replace(':', '-'));
    if (!existsSync(join(home, 'complete'))) return undefined;
    const m = JSON.parse(readFileSync(join(home, 'manifest.json'), 'utf8')) as PulledManifest;
    return { digest, rootfs: join(home, 'rootfs'), config: m.config.config ?? {} };
  }
}

/** One layer onto the tree below it: whiteouts first (they delete what lower layers have), then the files. */
export async function unpackLayer(file: string, rootfs: string, gzip: boolean): Promise<void> {
  const z = gzip ? ['-z'] : [];
  const { stdout } = await run('tar', [...z, '-tf', file], { maxBuffer: 256 * 1024 * 1024 });
  for (const entry of stdout.split('\n').filter(Boolean)) {
    const path = normalize(entry.replace(/^\.?\/+/, ''));
    if (path.startsWith('..')) throw new Error(`layer ${file}: entry ${entry} leaves the root filesystem`);
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base === '.wh..wh..opq') {
      const dir = join(rootfs, dirname(path));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
    } else if (base.startsWith('.wh.')) {
      rmSync(join(rootfs, dirname(path), base.slice(4)), { recursive: true, force: true });
    }
  }
  // As root, owners and modes as the layer has them (the image's nonroot user owns its state directory).
  await run('tar', [...z, '-xf', file, '-C', rootfs, '--numeric-owner', '--same-owner', '--same-permissions', '--exclude=.wh.*', '--exclude=*/.wh.*']);
}
