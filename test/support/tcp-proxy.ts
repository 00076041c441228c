// A loopback TCP proxy a test can break in the two ways networks break:
// - cut(): every connection drops at once and new ones are refused until restore() (an API server restart, or a
//   partition that resets connections);
// - blackHole(): nothing is answered and nothing is reset. Bytes sent meanwhile are held, as TCP keeps
//   retransmitting them, and when the network heals (restore()) they are delivered, but only on connections
//   whose sender has not given up on them (closed its socket) in the meantime, exactly as a real TCP sender
//   would have stopped retransmitting. New connections are accepted and held the same way.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  cut(): Promise<void>;
  blackHole(): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket | undefined;
  toUpstream: Buffer[];
  toClient: Buffer[];
  clientGone: boolean;
}

export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  const links = new Set<Link>();
  let server: Server | undefined;
  let port = 0;
  let holding = false;

  const openUpstream = (link: Link): void => {
    const upstream = connect(targetPort, '127.0.0.1');
    link.upstream = upstream;
    upstream.on('error', () => upstream.destroy());
    upstream.on('data', (chunk: Buffer) => {
      if (holding) link.toClient.push(chunk);
      else link.client.write(chunk);
    });
    upstream.on('close', () => {
      if (!holding) link.client.destroy();
    });
    for (const chunk of link.toUpstream.splice(0)) upstream.write(chunk);
  };

  const listen = async (): Promise<void> => {
    server = createServer((client) => {
      const link: Link = { client, upstream: undefined, toUpstream: [], toClient: [], clientGone: false };
      links.add(link);
      client.on('error', () => client.destroy());
      client.on('data', (chunk: Buffer) => {
        if (holding || !link.upstream) link.toUpstream.push(chunk);
        else link.upstream.write(chunk);
      });
      client.on('close', () => {
        link.clientGone = true;
        if (!holding) {
          link.upstream?.destroy();
          links.delete(link);
        }
      });
      if (!holding) openUpstream(link);
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as { port: number }).port;
  };
  const stop = async (): Promise<void> => {
    holding = false;
    const s = server;
    server = undefined;
    for (const link of links) {
      link.client.destroy();
      link.upstream?.destroy();
    }
    links.clear();
    if (s) await new Promise((r) => s.close(r));
  };
  const heal = (): void => {
    holding = false;
    for (const link of [...links]) {
      if (link.clientGone) {
        // The sender gave up while the network was down: what it sent is never delivered.
        link.upstream?.destroy();
        links.delete(link);
        continue;
      }
      if (!link.upstream) openUpstream(link);
      else for (const chunk of link.toUpstream.splice(0)) link.upstream.write(chunk);
      for (const chunk of link.toClient.splice(0)) link.client.write(chunk);
      if (link.upstream?.destroyed) link.client.destroy();
    }
  };
  await listen();
  return {
    port,
    cut: stop,
    blackHole: () => (holding = true),
    restore: async () => {
      if (holding) heal();
      else if (!server) await listen();
    },
    close: stop,
  };
}
