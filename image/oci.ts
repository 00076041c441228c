// A small, deterministic OCI image writer (no Docker daemon, no base image): layers are tar archives written
// here — entries sorted by path, owner 0:0, mtime 0, modes normalized, hard links as links — gzipped with a fixed
// header, so the same files give the same bytes and the same digest on any machine. The image is written as an
// OCI image layout (oci-layout, index.json, blobs/sha256/…), which registries and tools (crane, skopeo) read.
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface TarEntry {
  /** Path inside the image, without a leading slash (directories without a trailing one). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  mode: number;
  data?: Buffer;
  /** symlink: the target as written; hardlink: the path of the entry it links to. */
  link?: string;
  uid?: number;
  gid?: number;
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, e: TarEntry, size: number, typeflag: string, linkname = '', prefix = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(e.uid ?? 0, 8), 108, 8, 'ascii');
  h.write(octal(e.gid ?? 0, 8), 116, 8, 'ascii');
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(0, 12), 136, 12, 'ascii'); // mtime 0
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder
  h.write(typeflag, 156, 1, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** A PAX extended header carrying what ustar cannot (long paths, long link names). */
function pax(records: Record<string, string>, e: TarEntry): Buffer[] {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (Buffer.byteLength(`${len}${rest}`) !== len) len = Buffer.byteLength(`${len}${rest}`);
    body += `${len}${rest}`;
  }
  const data = Buffer.from(body, 'utf8');
  return [header('PaxHeader', { ...e, mode: 0o644 }, data.length, 'x'), data, pad(data.length)];
}

/** Splits a path into ustar's prefix (≤155) and name (≤100), or undefined when it cannot. */
function split(path: string): { name: string; prefix: string } | undefined {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { name, prefix };
  }
  return undefined;
}

/** The tar archive of the entries, sorted by path: the same entries give the same bytes. */
export function tar(entries: TarEntry[]): Buffer {
  const out: Buffer[] = [];
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const e of sorted) {
    const path = e.type === 'dir' ? `${e.path}/` : e.path;
    const typeflag = { file: '0', dir: '5', symlink: '2', hardlink: '1' }[e.type];
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const records: Record<string, string> = {};
    const parts = split(path);
    if (!parts) records.path = path;
    if (e.link && Buffer.byteLength(e.link) > 100) records.linkpath = e.link;
    if (Object.keys(records).length > 0) out.push(...pax(records, e));
    const name = parts ?? { name: path.slice(0, 100), prefix: '' };
    out.push(header(name.name, e, data.length, typeflag, e.link && Buffer.byteLength(e.link) <= 100 ? e.link : '', name.prefix), data, pad(data.length));
  }
  out.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(out);
}

/**
 * The entries of a directory tree, as they will be in the image under `into`: regular files keep their
 * executable bit (modes become 0755 or 0644), directories 0755, symlinks as they are, and files with the same
 * inode after the first become hard links to it. `keep` filters by path inside the image.
 */
export function treeEntries(root: string, into: string, keep: (path: string) => boolean = () => true): TarEntry[] {
  const entries: TarEntry[] = [];
  const inodes = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const path = join(into, relative(root, full));
      if (!keep(path)) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        entries.push({ path, type: 'dir', mode: 0o755 });
        walk(full);
      } else if (st.isSymbolicLink()) {
        entries.push({ path, type: 'symlink', mode: 0o777, link: readlinkSync(full) });
      } else if (st.isFile()) {
        const inode = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(inode) : undefined;
        if (first) entries.push({ path, type: 'hardlink', mode: 0o644, link: first });
        else {
          if (st.nlink > 1) inodes.set(inode, path);
          entries.push({ path, type: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, data: readFileSync(full) });
        }
      }
    }
  };
  walk(root);
  // Hard links must follow their target in path order: a link whose target sorts after it becomes the file.
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const e of entries) {
    if (e.type !== 'hardlink' || !e.link || e.link < e.path) continue;
    const target = byPath.get(e.link);
    if (target?.type === 'file') {
      e.type = 'file';
      e.mode = target.mode;
      if (target.data) e.data = target.data;
      target.type = 'hardlink';
      target.link = e.path;
      delete target.data;
      for (const other of entries) if (other.type === 'hardlink' && other.link === target.path && other !== target) other.link = e.path;
    }
  }
  return entries;
}

/** Parent directories of every entry, so that a layer is complete on its own. */
export function withParents(entries: TarEntry[]): TarEntry[] {
  const have = new Set(entries.map((e) => e.path));
  const dirs: TarEntry[] = [];
  for (const e of entries) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!have.has(d)) {
        have.add(d);
        dirs.push({ path: d, type: 'dir', mode: 0o755 });
      }
    }
  }
  return [...dirs, ...entries];
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export interface Layer {
  /** The gzipped tar, as pushed. */
  blob: Buffer;
  digest: string;
  /** The uncompressed tar's digest (the config's diff_id). */
  diffId: string;
  size: number;
}

export function layer(entries: TarEntry[]): Layer {
  const t = tar(withParents(entries));
  // Node's gzip header has no file name and mtime 0: the same tar gives the same bytes.
  const blob = gzipSync(t, { level: 9 });
  return { blob, digest: `sha256:${sha256(blob)}`, diffId: `sha256:${sha256(t)}`, size: blob.length };
}

export interface ImageConfig {
  entrypoint: string[];
  cmd?: string[];
  env: string[];
  user: string;
  workingDir: string;
  labels: Record<string, string>;
}

export interface Image {
  manifestDigest: string;
  manifest: Buffer;
  config: Buffer;
  layers: Layer[];
  /** Compressed size: the config and the layers. */
  size: number;
}

export function image(layers: Layer[], c: ImageConfig): Image {
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: { Entrypoint: c.entrypoint, ...(c.cmd ? { Cmd: c.cmd } : {}), Env: c.env, User: c.user, WorkingDir: c.workingDir, Labels: c.labels },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'slipway image/build.ts' })),
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    annotations: c.labels,
  }));
  return { manifestDigest: `sha256:${sha256(manifest)}`, manifest, config, layers, size: config.length + layers.reduce((s, l) => s + l.size, 0) };
}

/** Writes the image as an OCI image layout in `dir` (tagged `ref` in index.json). */
export function writeLayout(dir: string, img: Image, ref: string): void {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): void => writeFileSync(join(blobs, sha256(b)), b);
  put(img.config);
  put(img.manifest);
  for (const l of img.layers) put(l.blob);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifestDigest, size: img.manifest.length, annotations: { 'org.opencontainers.image.ref.name': ref } }],
  }));
}
