// A kubeconfig pointing at an in-process HTTP server, for unit tests of the client, list-watch and manager.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient, type KubeClientOptions } from '../../src/kube/client.ts';

/** A client of a plain-HTTP server on loopback, with no credentials (and the client options given, e.g. a rate limit). */
export async function clientFor(port: number, opts: Omit<KubeClientOptions, 'kubeconfig'> = {}): Promise<KubeClient> {
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'slipway-fake-')), 'config');
  writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: fake, user: {}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`);
  return KubeClient.load({ ...opts, kubeconfig });
}
