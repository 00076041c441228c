// The audit repository: a bare git repository the controller owns (no working tree, no index: files are written
// as commits with `git fast-import`, hundreds a second, and read with `git cat-file`), optionally pushed to a
// remote. Operations are serialized: one writer at a time in the process.
//
// Pushing never rewrites the remote: a push refused as non-fast-forward fetches, replays the local commits on
// the remote's tip (each commit carries whole files, so a replay is the same files with the same message, and
// the newest write of a file wins while every commit stays in the history), and pushes again.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { commitMessage, type AuditChange } from './document.ts';

export interface RepositoryOptions {
  dir: string;
  branch?: string;
  /** A remote URL (file://, ssh://, https://); none: the repository stays local. */
  remote?: string | undefined;
  author?: { name: string; email: string };
  /** Environment for git. */
  env?: Record<string, string>;
  /** How to authenticate to the remote (from a Secret): never written into the URL or the repository's config. */
  credentials?: RemoteCredentials | undefined;
}

/**
 * Keys of the audit Secret: `identity` (an SSH private key) with `known_hosts` (the server's key: required, an
 * unknown host is refused); or `username` and `password` (HTTPS basic auth; a token as the password), or
 * `bearerToken`; `ca.crt` (PEM CAs to trust for https).
 */
export interface RemoteCredentials {
  identity?: string | undefined;
  knownHosts?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  bearerToken?: string | undefined;
  ca?: string | undefined;
}

/** The remote's credentials as a Secret holds them (the audit Secret; a GitOps repository's, Flux's keys). */
export function remoteCredentialsOf(d: Record<string, string>): RemoteCredentials {
  return { identity: d.identity, knownHosts: d.known_hosts, username: d.username, password: d.password, bearerToken: d.bearerToken, ca: d['ca.crt'] };
}

/** A push refused because the branch moved (another writer): fetch and try again. */
const raced = (message: string): boolean => /rejected|non-fast-forward|fetch first|stale info|failed to update ref|cannot lock ref/i.test(message);

/** Writers racing for the same branch: jittered, growing pauses, so one of them wins each round. */
const raceBackoff = (attempt: number): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * Math.min(2000, 25 * 2 ** Math.min(attempt, 7))));

/**
 * The environment that makes git authenticate with `c`: key files written (0600) into `dir`, and configuration
 * passed by GIT_CONFIG_* variables, so no credential is ever in a URL, a config file or a log.
 */
export function credentialEnv(c: RemoteCredentials | undefined, dir: string): Record<string, string> {
  if (!c) return {};
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const env: Record<string, string> = {};
  const config: [string, string][] = [];
  const file = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content.endsWith('\n') ? content : `${content}\n`, { mode: 0o600 });
    chmodSync(p, 0o600);
    return p;
  };
  if (c.identity) {
    const key = file('identity', c.identity);
    const knownHosts = file('known_hosts', c.knownHosts ?? '');
    env.GIT_SSH_COMMAND = `ssh -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o ConnectTimeout=10`;
  }
  if (c.username !== undefined && c.password !== undefined) config.push(['http.extraHeader', `Authorization: Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`]);
  else if (c.bearerToken) config.push(['http.extraHeader', `Authorization: Bearer ${c.bearerToken}`]);
  // The variable, not http.sslCAInfo: a GIT_SSL_CAINFO in the environment would take precedence over the config.
  if (c.ca) env.GIT_SSL_CAINFO = file('ca.crt', c.ca);
  if (config.length > 0) {
    env.GIT_CONFIG_COUNT = String(config.length);
    config.forEach(([k, v], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = k;
      env[`GIT_CONFIG_VALUE_${i}`] = v;
    });
  }
  return env;
}

export class PushRejected extends Error {}

export class AuditRepository {
  readonly dir: string;
  readonly branch: string;
  readonly remote: string | undefined;
  private readonly author: { name: string; email: string };
  private readonly env: Record<string, string>;
  private git: SimpleGit;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(opts: RepositoryOptions) {
    this.dir = opts.dir;
    this.branch = opts.branch ?? 'main';
    this.remote = opts.remote;
    this.author = opts.author ?? { name: 'Slipway', email: 'slipway@slipway.dev' };
    this.env = { ...baseEnv(), GIT_TERMINAL_PROMPT: '0', ...opts.env, ...credentialEnv(opts.credentials, `${opts.dir.replace(/\/+$/, '')}.credentials`) };
    if (!existsSync(opts.dir)) mkdirSync(opts.dir, { recursive: true });
    // simple-git refuses GIT_SSH_COMMAND and GIT_CONFIG_* from the environment unless told: here they are ours
    // (credentialEnv: fixed options and paths of files Slipway wrote; a Secret's values go into files, never
    // into a command line).
    this.git = simpleGit({ baseDir: opts.dir, unsafe: { allowUnsafeSshCommand: true, allowUnsafeConfigEnvCount: true } }).env(this.env);
  }

  /** Authenticates with `c` from now on (the audit Secret, read when the trail starts). */
  useCredentials(c: RemoteCredentials | undefined): void {
    Object.assign(this.env, credentialEnv(c, `${this.dir.replace(/\/+$/, '')}.credentials`));
    this.git.env(this.env);
  }

  private get ref(): string {
    return `refs/heads/${this.branch}`;
  }

  private get remoteRef(): string {
    return `refs/remotes/origin/${this.branch}`;
  }

  /** Runs `fn` after every operation queued before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Creates the repository if needed, points `origin` at the remote, and takes the remote's branch if it has one. */
  open(): Promise<void> {
    return this.serial(async () => {
      if (!existsSync(`${this.dir}/HEAD`)) await this.git.raw(['init', '--bare', '--quiet', `--initial-branch=${this.branch}`]);
      // Maintenance runs when Slipway says, off the hot path (a blocking auto-gc every ~1,100 commits otherwise).
      await this.git.raw(['config', 'gc.auto', '0']);
      await this.git.raw(['config', 'core.logAllRefUpdates', 'false']);
      if (this.remote) {
        const remotes = await this.git.getRemotes(true);
        if (!remotes.some((r) => r.name === 'origin')) await this.git.raw(['remote', 'add', 'origin', this.remote]);
        else await this.git.raw(['remote', 'set-url', 'origin', this.remote]);
        await this.fetchRemote().catch(() => undefined); // the remote may be down now: commits queue locally
        const local = await this.revParse(this.ref);
        const remote = await this.revParse(this.remoteRef);
        if (!local && remote) await this.git.raw(['update-ref', this.ref, remote]);
      }
    });
  }

  private async revParse(ref: string): Promise<string | undefined> {
    try {
      return (await this.git.raw(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  head(): Promise<string | undefined> {
    return this.serial(() => this.revParse(this.ref));
  }

  /** Every file of the branch's tip, by path. */
  readAll(): Promise<Map<string, string>> {
    return this.serial(async () => {
      const head = await this.revParse(this.ref);
      const files = new Map<string, string>();
      if (!head) return files;
      const listing = await this.git.raw(['ls-tree', '-r', '-z', '--full-tree', head]);
      const entries = listing.split('\0').filter(Boolean).map((l) => {
        const [meta, path] = l.split('\t') as [string, string];
        return { sha: meta.split(' ')[2] ?? '', path };
      });
      const contents = await this.catFiles(entries.map((e) => e.sha));
      entries.forEach((e, i) => files.set(e.path, contents[i] ?? ''));
      return files;
    });
  }

  /** Blob contents by sha, through one `git cat-file --batch`. */
  private catFiles(shas: string[]): Promise<string[]> {
    if (shas.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const p = spawn('git', ['cat-file', '--batch'], { cwd: this.dir, env: this.env });
      const chunks: Buffer[] = [];
      p.stdout.on('data', (c: Buffer) => chunks.push(c));
      p.on('error', reject);
      p.on('close', (code) => {
        if (code !== 0) return reject(new Error(`git cat-file exited with ${code}`));
        const buf = Buffer.concat(chunks);
        const out: string[] = [];
        let at = 0;
        for (let i = 0; i < shas.length; i++) {
          const nl = buf.indexOf(10, at);
          const header = buf.subarray(at, nl).toString();
          const size = Number(header.split(' ')[2]);
          out.push(buf.subarray(nl + 1, nl + 1 + size).toString('utf8'));
          at = nl + 1 + size + 1;
        }
        resolve(out);
      });
      p.stdin.end(shas.join('\n') + '\n');
    });
  }

  /**
   * One commit per change, in order, on the branch's tip, through one `git fast-import`; the new tip. The branch
   * moves only if nobody moved it meanwhile (fast-import refuses a ref that is not a fast-forward).
   */
  commit(changes: AuditChange[], now: () => Date = () => new Date()): Promise<string | undefined> {
    return this.serial(async () => {
      const parent = await this.revParse(this.ref);
      if (changes.length === 0) return parent;
      await this.fastImport(this.ref, parent, changes.map((c) => ({ message: commitMessage(c), files: [{ path: c.path, content: c.content }], at: now() })));
      return this.revParse(this.ref);
    });
  }

  private fastImport(ref: string, parent: string | undefined, commits: { message: string; files: { path: string; content: string | null }[]; at: Date; author?: string }[]): Promise<void> {
    const parts: (string | Buffer)[] = [];
    const data = (s: string): void => {
      const b = Buffer.from(s, 'utf8');
      parts.push(`data ${b.length}\n`, b, '\n');
    };
    commits.forEach((c, i) => {
      const when = `${Math.floor(c.at.getTime() / 1000)} +0000`;
      parts.push(`commit ${ref}\n`, `author ${c.author ?? `${this.author.name} <${this.author.email}> ${when}`}\n`, `committer ${this.author.name} <${this.author.email}> ${when}\n`);
      data(c.message);
      if (i === 0 && parent) parts.push(`from ${parent}\n`);
      for (const f of c.files) {
        if (f.content === null) parts.push(`D ${quotePath(f.path)}\n`);
        else {
          parts.push(`M 100644 inline ${quotePath(f.path)}\n`);
          data(f.content);
        }
      }
      parts.push('\n');
    });
    parts.push('done\n');
    return new Promise((resolve, reject) => {
      const p = spawn('git', ['fast-import', '--quiet', '--done'], { cwd: this.dir, env: this.env });
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git fast-import failed: ${err.trim().split('\n').slice(-3).join(' ')}`))));
      p.stdin.on('error', () => undefined); // reported by close
      for (const part of parts) p.stdin.write(part);
      p.stdin.end();
    });
  }

  private async fetchRemote(): Promise<void> {
    await this.git.raw(['fetch', '--quiet', '--no-tags', 'origin', `+${this.ref}:${this.remoteRef}`]).catch(async (err: unknown) => {
      // A remote without the branch yet is not an error.
      const ls = await this.git.raw(['ls-remote', '--heads', 'origin', this.branch]);
      if (ls.trim() !== '') throw err;
    });
  }

  /** Commits the remote does not have yet (0 without a remote). */
  unpushed(): Promise<number> {
    return this.serial(async () => {
      if (!this.remote) return 0;
      const remote = await this.revParse(this.remoteRef);
      const local = await this.revParse(this.ref);
      if (!local) return 0;
      return Number((await this.git.raw(['rev-list', '--count', remote ? `${remote}..${local}` : local])).trim());
    });
  }

  /**
   * Pushes the branch. On a non-fast-forward: fetch, replay the local commits on the remote's tip, try again (up
   * to `attempts`). Throws when the remote cannot be reached; the commits stay queued in the local repository.
   */
  push(attempts = 30): Promise<{ pushed: number; replayed: number }> {
    return this.serial(async () => {
      if (!this.remote) return { pushed: 0, replayed: 0 };
      let replayed = 0;
      for (let attempt = 1; ; attempt++) {
        const local = await this.revParse(this.ref);
        if (!local) return { pushed: 0, replayed };
        const remote = await this.revParse(this.remoteRef);
        const count = Number((await this.git.raw(['rev-list', '--count', remote ? `${remote}..${local}` : local])).trim());
        if (count === 0 && remote) {
          // Nothing of ours to send; the remote may be ahead (another writer): take it.
          const ahead = (await this.git.raw(['merge-base', '--is-ancestor', local, remote]).then(() => true, () => false)) && local !== remote;
          if (ahead) await this.git.raw(['update-ref', this.ref, remote, local]);
          return { pushed: 0, replayed };
        }
        try {
          await this.git.raw(['push', '--quiet', '--porcelain', 'origin', `${this.ref}:${this.ref}`]);
          await this.git.raw(['update-ref', this.remoteRef, local]);
          return { pushed: count, replayed };
        } catch (err) {
          const message = (err as Error).message;
          if (!raced(message) || attempt >= attempts) throw new PushRejected(gitError(message));
          await this.fetchRemote();
          replayed += await this.replayOnRemote();
          await raceBackoff(attempt);
        }
      }
    });
  }

  /** Rewrites the local-only commits on top of the remote's tip: same files, same messages and dates, in order. */
  private async replayOnRemote(): Promise<number> {
    const remote = await this.revParse(this.remoteRef);
    const local = await this.revParse(this.ref);
    if (!remote || !local) return 0;
    const base = (await this.git.raw(['merge-base', local, remote]).catch(() => '')).trim();
    const range = base ? `${base}..${local}` : local;
    const shas = (await this.git.raw(['rev-list', '--reverse', range])).split('\n').filter(Boolean);
    if (shas.length === 0) {
      await this.git.raw(['update-ref', this.ref, remote, local]);
      return 0;
    }
    const commits: { message: string; files: { path: string; content: string | null }[]; at: Date; author: string }[] = [];
    for (const sha of shas) {
      const meta = await this.git.raw(['log', '-1', '--format=%an <%ae> %at +0000%x00%ct%x00%B', sha]);
      const [author = '', ct = '0', message = ''] = meta.split('\0');
      const diff = (await this.git.raw(['diff-tree', '-r', '-z', '--no-commit-id', '--name-status', '--root', sha])).split('\0').filter(Boolean);
      const changes: { status: string; path: string }[] = [];
      for (let i = 0; i < diff.length; i += 2) changes.push({ status: diff[i] ?? '', path: diff[i + 1] ?? '' });
      const blobs = await Promise.all(changes.map((c) => (c.status === 'D' ? Promise.resolve(null) : this.git.raw(['cat-file', 'blob', `${sha}:${c.path}`]))));
      commits.push({ message: message.replace(/\n+$/, '\n'), at: new Date(Number(ct) * 1000), author, files: changes.map((c, i) => ({ path: c.path, content: blobs[i] ?? null })) });
    }
    const tmp = `refs/slipway/replay`;
    await this.git.raw(['update-ref', '-d', tmp]).catch(() => undefined);
    await this.fastImport(tmp, remote, commits);
    const replayed = await this.revParse(tmp);
    if (replayed) await this.git.raw(['update-ref', this.ref, replayed, local]);
    await this.git.raw(['update-ref', '-d', tmp]);
    return shas.length;
  }

  /**
   * Edits one file of the remote's `base` branch and pushes the commit to `target` (the same branch, or a branch
   * for review): fetch, read the file at the remote's tip, edit, commit on that tip, push. A push refused because
   * the branch moved starts over from the new tip (the edit is made again on what is there now). Nothing local is
   * kept between calls. `upToDate` when the edit changes nothing.
   */
  editOnRemote(base: string, target: string, path: string, edit: (text: string) => { text: string; message: string } | undefined, attempts = 10): Promise<{ commit?: string; upToDate: boolean }> {
    return this.serial(async () => {
      if (!this.remote) throw new Error('no remote to edit');
      const tracking = `refs/slipway/remotes/${base}`;
      for (let attempt = 1; ; attempt++) {
        await this.git.raw(['fetch', '--quiet', '--no-tags', 'origin', `+refs/heads/${base}:${tracking}`]);
        const tip = await this.revParse(tracking);
        if (!tip) throw new Error(`the remote has no branch ${base}`);
        let text: string;
        try {
          text = await this.git.raw(['cat-file', 'blob', `${tip}:${path}`]);
        } catch {
          throw new Error(`the remote's ${base} has no file ${path}`);
        }
        const next = edit(text);
        if (!next) return { upToDate: true };
        const ref = 'refs/slipway/edit';
        await this.git.raw(['update-ref', '-d', ref]).catch(() => undefined);
        await this.fastImport(ref, tip, [{ message: next.message, files: [{ path, content: next.text }], at: new Date() }]);
        const commit = await this.revParse(ref);
        if (!commit) throw new Error('the edit was not committed');
        try {
          await this.git.raw(['push', '--quiet', '--porcelain', 'origin', `${commit}:refs/heads/${target}`]);
          return { commit, upToDate: false };
        } catch (err) {
          const message = (err as Error).message;
          if (!raced(message) || attempt >= attempts) throw new PushRejected(gitError(message));
          await raceBackoff(attempt);
        }
      }
    });
  }

  /**
   * Off the hot path (callers run it when idle): every fast-import leaves a small pack; a geometric repack folds
   * them into a few (cheap however large the history: it rewrites only the small packs), loose objects included.
   */
  maintain(): Promise<void> {
    return this.serial(async () => {
      await this.git.raw(['repack', '-d', '-q', '--geometric=2']);
      await this.git.raw(['prune-packed', '-q']);
    });
  }

  /** Packs and loose objects now (what maintenance is due on), and bytes on disk. */
  objects(): Promise<{ packs: number; loose: number; bytes: number }> {
    return this.serial(async () => {
      const out = await this.git.raw(['count-objects', '-v']);
      const n = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(out)?.[1] ?? 0);
      return { packs: n('packs'), loose: n('count'), bytes: (n('size') + n('size-pack')) * 1024 };
    });
  }
}

/**
 * The environment git runs with: what it needs from the process's (PATH, HOME, locale, the machine's CA bundle),
 * nothing else — no EDITOR, pager, askpass or proxy a shell happened to set.
 */
function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ', 'GIT_SSL_CAINFO', 'SSL_CERT_FILE', 'SSL_CERT_DIR'];
  return Object.fromEntries(keep.flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k]]] : [])));
}

/** What git said that matters: its fatal/error/rejected lines, not its hints. */
export function gitError(message: string): string {
  const lines = message.split('\n').map((l) => l.trim().replace(/^Error: /, '')).filter(Boolean);
  const noise = /^(hint:|Please make sure you have the correct access rights|and the repository exists|To |Everything up-to-date)/;
  const key = lines.filter((l) => !noise.test(l));
  return (key.length > 0 ? key : lines).slice(-4).join(' ');
}

/** A path as fast-import reads it: quoted when it has a space, quote, backslash or newline. */
function quotePath(p: string): string {
  return /[\s"\\]/.test(p) ? JSON.stringify(p) : p;
}
