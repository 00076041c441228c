// A kubeconfig pointing at an in-process HTTP server, for unit tests of the client, list-watch and manager.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../src/kube/client.ts';

export async function clientFor(port: number): Promise<KubeClient> {
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'slipway-fake-')), 'config');
  writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: fake, user: {}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`);
  return KubeClient.load({ kubeconfig });
}
