// Certificates for the local control plane, made with openssl: one CA and one admin certificate
// (O=system:masters) that serves the API, authenticates every component, and signs service-account tokens,
// the way kwokctl does it. Nothing here is meant to protect anything: it only makes TLS and RBAC real.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { GATEWAY } from './podnet.ts';

export interface Pki {
  caCert: string;
  adminCert: string;
  adminKey: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('openssl is not on PATH: the local control plane needs it to make its certificates (apt-get install openssl)', { cause: err });
    }
    throw new Error(`openssl ${args[0]} failed: ${stderr}`, { cause: err });
  }
}

export function makePki(dir: string): Pki {
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,' +
      // The pod bridge's address: pods the runner runs reach the API server there (pod-runner.ts, API_PROXY_PORT).
      `DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:::1,IP:${GATEWAY}`,
  ].join('\n');
  writeFileSync(join(dir, 'admin.ext'), ext);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '3650', '-subj', '/CN=slipway-local-ca'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'admin.key', '-out', 'admin.csr',
    '-subj', '/O=system:masters/CN=slipway-admin'], dir);
  openssl(['x509', '-req', '-in', 'admin.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'admin.crt', '-days', '3650', '-extfile', 'admin.ext'], dir);
  return { caCert: join(dir, 'ca.crt'), adminCert: join(dir, 'admin.crt'), adminKey: join(dir, 'admin.key') };
}

/** An admin kubeconfig with the certificates inlined, so it stays valid wherever it is copied. */
export function kubeconfigYaml(server: string, pki: Pki, readFile: (p: string) => Buffer): string {
  const b64 = (p: string): string => readFile(p).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: slipway-local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(pki.caCert)}
users:
- name: slipway-admin
  user:
    client-certificate-data: ${b64(pki.adminCert)}
    client-key-data: ${b64(pki.adminKey)}
contexts:
- name: slipway-local
  context: {cluster: slipway-local, user: slipway-admin}
current-context: slipway-local
`;
}

/**
 * A kubeconfig for a bearer token (a ServiceAccount's) on the cluster an admin kubeconfig points at, written to
 * `file` (mode 600): to act as that identity, so that RBAC and API Priority and Fairness see it.
 */
export function writeTokenKubeconfig(adminKubeconfig: string, token: string, file: string): string {
  const admin = yaml.load(readFileSync(adminKubeconfig, 'utf8')) as { clusters: { cluster: Record<string, string> }[] };
  writeFileSync(file, yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: admin.clusters[0]?.cluster }],
    users: [{ name: 'token', user: { token } }],
    contexts: [{ name: 'token', context: { cluster: 'c', user: 'token' } }],
    'current-context': 'token',
  }), { mode: 0o600 });
  return file;
}

