// The pods' one way off the pod network: an HTTP CONNECT proxy on the bridge's address that opens tunnels to the
// package indexes only (PyPI: pypi.org and files.pythonhosted.org; Debian: deb.debian.org; port 443), the
// registries this machine installs packages from. Environment builds (ProjectEnvironment) resolve and download
// wheels and .debs through it, as a cluster's build pods go through an egress proxy; every other destination is
// refused (403) and logged. TLS goes through untouched: the pod verifies the index's certificate itself (with the
// CA bundle it is given).
import { connect, createServer, type Server, type Socket } from 'node:net';

export const EGRESS_PROXY_PORT = 3128;
export const PACKAGE_INDEX_HOSTS = ['pypi.org:443', 'files.pythonhosted.org:443', 'deb.debian.org:443'];

export function startEgressProxy(opts: { host: string; port?: number; allow?: string[]; log?: (line: string) => void }): Promise<Server> {
  const allow = new Set((opts.allow ?? PACKAGE_INDEX_HOSTS).map((h) => h.toLowerCase()));
  const log = opts.log ?? (() => {});
  const server = createServer((down: Socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 8192) down.destroy();
        return;
      }
      down.off('data', onData);
      const [method, target] = head.subarray(0, end).toString('latin1').split('\r\n')[0]?.split(' ') ?? [];
      const rest = head.subarray(end + 4);
      if (method !== 'CONNECT' || !target || !allow.has(target.toLowerCase())) {
        log(`egress refused: ${method ?? '?'} ${target ?? '?'}`);
        down.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nthe local pod network reaches ${[...allow].join(', ')} only\n`);
        return;
      }
      const i = target.lastIndexOf(':');
      const up = connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
      const close = (): void => {
        down.destroy();
        up.destroy();
      };
      up.once('connect', () => {
        down.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (rest.length) up.write(rest);
        down.pipe(up).pipe(down);
      });
      up.on('error', (err) => {
        if (!down.writableEnded && up.connecting) down.end(`HTTP/1.1 502 Bad Gateway\r\n\r\n${err.message}\n`);
        close();
      });
      down.on('error', close);
    };
    down.on('data', onData);
    down.on('error', () => down.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? EGRESS_PROXY_PORT, opts.host, () => resolve(server));
  });
}
