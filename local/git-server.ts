// Real git servers on loopback for the audit trail's tests: git's own smart-HTTP backend (git-http-backend, as
// CGI) behind a Node HTTPS server that asks for basic auth, and OpenSSH's sshd (Debian's openssh-server) with a
// generated host key and one authorized client key. Both serve bare repositories under one directory.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:https';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePorts, startComponent, stopProcess } from './processes.ts';
import { eventually } from './eventually.ts';
import { makePki } from './pki.ts';

export const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';
export const SSHD = '/usr/sbin/sshd';

export function bareRepository(root: string, name: string): string {
  const dir = join(root, name);
  execFileSync('git', ['init', '--bare', '--quiet', '--initial-branch=main', dir]);
  // Pushes over HTTP need this on the server side.
  execFileSync('git', ['config', 'http.receivepack', 'true'], { cwd: dir });
  return dir;
}

export interface HttpsGitServer {
  url: (repo: string) => string;
  ca: string;
  close: () => Promise<void>;
}

/** git smart HTTP over TLS (a CA of its own), with basic auth for one user. */
export async function startHttpsGitServer(root: string, user: { username: string; password: string }): Promise<HttpsGitServer> {
  const pkiDir = join(root, '.pki');
  mkdirSync(pkiDir, { recursive: true });
  const pki = makePki(pkiDir);
  const expected = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  const server = createServer({ cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey) }, (req, res) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('unauthorized');
      req.resume();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://x');
    const cgi = spawn(GIT_HTTP_BACKEND, [], {
      env: {
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: user.username,
        REMOTE_ADDR: '127.0.0.1',
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        PATH: process.env.PATH ?? '/usr/bin:/bin',
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
    cgi.on('error', () => res.writeHead(500).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (repo) => `https://127.0.0.1:${port}/${repo}`,
    ca: readFileSync(pki.caCert, 'utf8'),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export interface SshGitServer {
  url: (repoPath: string) => string;
  /** The client's private key, and the known_hosts line for the server. */
  identity: string;
  knownHosts: string;
  close: () => Promise<void>;
}

/** OpenSSH's sshd on a loopback port, accepting one generated key for the current user. */
export async function startSshGitServer(dir: string): Promise<SshGitServer> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: apt-get install openssh-server`);
  mkdirSync(dir, { recursive: true });
  // sshd's privilege separation directory (the service would create it; this sshd is not the service).
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const keygen = (file: string): void => void execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'slipway-test', '-f', file]);
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  const [port] = (await freePorts(1)) as [number];
  const user = userInfo().username;
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `AllowUsers ${user}`,
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'LogLevel ERROR',
  ].join('\n') + '\n');
  const sshd = startComponent('sshd', SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], dir, false);
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  await eventually('sshd listening', async () => {
    const { createConnection } = await import('node:net');
    return new Promise<boolean>((resolve) => {
      const s = createConnection(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
  }, { abort: sshd.exited, timeoutMs: 15_000, intervalMs: 100 });
  return {
    url: (repoPath) => `ssh://${user}@127.0.0.1:${port}${repoPath}`,
    identity: readFileSync(join(dir, 'client_key'), 'utf8'),
    knownHosts: `[127.0.0.1]:${port} ${hostKey}\n`,
    close: () => stopProcess(sshd),
  };
}
