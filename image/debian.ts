// The image's base, assembled from pinned Debian packages: the shared-library closure of the programs the
// controller runs (git for the audit trail, its HTTPS and SSH transports; Node's own libraries) mapped to the
// packages that ship them, locked with exact versions and the .deb's sha256 (image/debian.lock), downloaded with
// `apt-get download pkg=version`, checked against the lock, and unpacked with dpkg-deb. Only what runs is kept:
// binaries, libraries, the CA bundle; no shell, no package manager, no docs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256, treeEntries, type TarEntry } from './oci.ts';

export const LOCK = join(import.meta.dirname, 'debian.lock');

/** Programs from Debian the image carries, and the packages of the files besides their libraries. */
export const PROGRAMS = ['/usr/bin/git', '/usr/lib/git-core/git-remote-http', '/usr/bin/ssh'];
const EXTRA_PACKAGES = ['git', 'openssh-client', 'ca-certificates', 'libc6'];

export interface LockedPackage {
  name: string;
  version: string;
  /** sha256 of the .deb */
  sha256: string;
}

const run = (cmd: string, args: string[], cwd?: string): string => execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'] });

/** The libraries a program loads (ldd), as paths. */
function libraries(program: string): string[] {
  return run('ldd', [program]).split('\n').flatMap((l) => {
    const m = /=>\s+(\/\S+)/.exec(l) ?? /^\s*(\/\S+)\s+\(/.exec(l);
    return m?.[1] ? [m[1]] : [];
  });
}

/** The package that ships a path (dpkg -S), trying the merged-/usr twin of the path too. */
function packageOf(path: string): string {
  const candidates = [path, realpathSync(path), path.startsWith('/usr/') ? path.slice(4) : `/usr${path}`];
  for (const p of candidates) {
    try {
      return (run('dpkg', ['-S', p]).split(':')[0] ?? '').trim();
    } catch {
      // try the next form
    }
  }
  throw new Error(`no Debian package ships ${path}`);
}

/** Resolves the closure on this machine and writes image/debian.lock (npm run image:lock). */
export function writeLock(node: string, download: (p: LockedPackage) => string): LockedPackage[] {
  const names = new Set(EXTRA_PACKAGES);
  for (const program of [...PROGRAMS, node]) {
    if (program !== node) names.add(packageOf(program));
    for (const lib of libraries(program)) names.add(packageOf(lib));
  }
  // The version the archive serves now (apt's candidate): an installed one may be gone from it.
  const candidate = (name: string): string => {
    const v = /Candidate:\s*(\S+)/.exec(run('apt-cache', ['policy', name]))?.[1];
    if (!v || v === '(none)') throw new Error(`the archive has no version of ${name}`);
    return v;
  };
  const pkgs = [...names].sort().map((name) => ({ name, version: candidate(name), sha256: '' }));
  return writeLockFile(LOCK, 'the controller image', pkgs, download);
}

/** Writes a lock file: each package's .deb downloaded and hashed. */
export function writeLockFile(path: string, of: string, pkgs: LockedPackage[], download: (p: LockedPackage) => string): LockedPackage[] {
  for (const p of pkgs) p.sha256 = sha256(readFileSync(download(p)));
  writeFileSync(path, `# Debian packages of ${of}: name, version, sha256 of the .deb (npm run image:lock).\n${pkgs.map((p) => `${p.name} ${p.version} ${p.sha256}`).join('\n')}\n`);
  return pkgs;
}

/**
 * The packages apt would install on an empty system for `roots` (their Depends and Pre-Depends, without
 * Recommends), with the versions the archive serves now: a whole distribution's worth of a program, as
 * mmdebstrap would choose it, without running any maintainer script.
 */
export function closure(roots: string[]): LockedPackage[] {
  const out = run('apt-get', ['install', '--simulate', '--no-install-recommends', '-o', 'Debug::NoLocking=1', '-o', 'Dir::State::status=/dev/null', ...roots]);
  const pkgs = out.split('\n').flatMap((l) => {
    const m = /^Inst (\S+) \((\S+)/.exec(l);
    return m?.[1] && m[2] ? [{ name: m[1], version: m[2], sha256: '' }] : [];
  });
  if (!pkgs.length) throw new Error(`apt resolved nothing for ${roots.join(' ')}`);
  return pkgs.sort((a, b) => a.name.localeCompare(b.name));
}

export function readLock(path = LOCK): LockedPackage[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const [name = '', version = '', hash = ''] = l.split(' ');
    return { name, version, sha256: hash };
  });
}

/** The .deb of a locked package in `cache` (downloaded if missing), checked against its hash. */
export function fetchDeb(p: LockedPackage, cache: string, check = true, lock = 'image/debian.lock'): string {
  mkdirSync(cache, { recursive: true });
  const found = (): string | undefined => readdirSync(cache).find((f) => f.startsWith(`${p.name}_`) && f.endsWith('.deb') && f.includes(`_${p.version.replace(/:/g, '%3a')}_`));
  let file = found();
  if (!file) {
    try {
      run('apt-get', ['download', '-q', `${p.name}=${p.version}`], cache);
    } catch (err) {
      throw new Error(`apt-get download ${p.name}=${p.version} failed (is that version still in the archive? npm run image:lock pins what the machine has): ${((err as { stderr?: string }).stderr ?? '').trim().split('\n').pop() ?? ''}`, { cause: err });
    }
    file = found();
    if (!file) throw new Error(`apt-get download ${p.name}=${p.version} left no .deb in ${cache}`);
  }
  const path = join(cache, file);
  if (check && p.sha256 && sha256(readFileSync(path)) !== p.sha256) throw new Error(`${file} does not match its sha256 in ${lock}`);
  return path;
}

/** What of an unpacked package goes into the image (paths inside the package, no leading slash). */
export function keep(path: string): boolean {
  if (/^(usr\/)?share\/(doc|man|info|locale|lintian|bug|bash-completion|perl5|gitweb|gitk|git-gui|zsh|fish)(\/|$)/.test(path)) return false;
  if (/^usr\/lib\/git-core\/(mergetools|git-gui|git-citool|gitk)/.test(path)) return false;
  if (/^usr\/(s?bin)\//.test(path)) return /^usr\/bin\/(git|ssh)$/.test(path);
  if (/^(s?bin)\//.test(path)) return false;
  if (/^usr\/lib\/x86_64-linux-gnu\/(perl|gconv)/.test(path)) return false;
  if (/^usr\/libexec\//.test(path)) return false;
  if (/^var\//.test(path)) return false;
  return true;
}

/** Unpacks the packages into `root`, with /usr merged (lib, lib64, bin are links into usr). */
export function unpack(debs: string[], root: string): void {
  mkdirSync(root, { recursive: true });
  for (const deb of debs) run('dpkg-deb', ['-x', deb, root]);
}

/** The CA bundle update-ca-certificates would write: every certificate of the package, sorted, concatenated. */
export function caBundle(root: string): Buffer {
  const dir = join(root, 'usr', 'share', 'ca-certificates');
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.crt')) files.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return Buffer.concat(files.map((f) => readFileSync(f)));
}

const MERGED: [string, string][] = [['lib/', 'usr/lib/'], ['lib64/', 'usr/lib64/'], ['bin/', 'usr/bin/'], ['sbin/', 'usr/sbin/']];
const merged = (p: string): string => {
  for (const [from, to] of MERGED) if (p === from.slice(0, -1)) return to.slice(0, -1);
  for (const [from, to] of MERGED) if (p.startsWith(from)) return to + p.slice(from.length);
  return p;
};

/**
 * The layer entries of a root filesystem made of Debian packages: the locked .debs unpacked, the paths `keepPath`
 * keeps with /usr merged (lib, lib64, bin, sbin are links into usr), then the entries `own` writes over them
 * (given the unpacked tree, to read from it).
 */
export function debianTree(pkgs: LockedPackage[], debCache: string, keepPath: (path: string) => boolean, own: (stage: string) => TarEntry[], lock?: string): TarEntry[] {
  const stage = mkdtempSync(join(tmpdir(), 'slipway-image-base-'));
  try {
    unpack(pkgs.map((p) => fetchDeb(p, debCache, true, lock)), stage);
    const entries = new Map<string, TarEntry>();
    for (const e of treeEntries(stage, '', (p) => keepPath(merged(p)))) {
      const path = merged(e.path);
      if (path === '' || entries.has(path)) continue;
      entries.set(path, { ...e, path, ...(e.type === 'hardlink' && e.link ? { link: merged(e.link) } : {}) });
    }
    for (const [from, to] of MERGED) entries.set(from.slice(0, -1), { path: from.slice(0, -1), type: 'symlink', mode: 0o777, link: to.slice(0, -1) });
    for (const e of own(stage)) entries.set(e.path, e);
    return [...entries.values()];
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
