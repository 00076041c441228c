// Reads the Secrets that hold credentials and URLs for the endpoints Slipway calls (Prometheus, web metrics,
// notifications), by GET and not by watch: the controller needs a handful of them, so it asks for exactly those
// (RBAC `get` on secrets, no list or watch of every Secret in the cluster) and keeps each for a short while.
import type { KubeClient } from './client.ts';
import { isNotFound } from './errors.ts';
import { Resources, type KubeObject } from './resources.ts';
import type { Credentials } from '../runtime/http.ts';

export class SecretNotFoundError extends Error {}

/** How long a Secret read is reused: a rotated token is picked up within this. */
export const SECRET_TTL_MS = 30_000;

export class SecretReader {
  private readonly client: KubeClient;
  private readonly now: () => number;
  private readonly cache = new Map<string, { at: number; data: Promise<Record<string, string>> }>();

  constructor(client: KubeClient, now: () => number = Date.now) {
    this.client = client;
    this.now = now;
  }

  /** The Secret's data, decoded; a SecretNotFoundError naming it when it does not exist. */
  async read(namespace: string, name: string): Promise<Record<string, string>> {
    const key = `${namespace}/${name}`;
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < SECRET_TTL_MS) return hit.data;
    const data = this.fetch(namespace, name);
    this.cache.set(key, { at: this.now(), data });
    data.catch(() => this.cache.delete(key));
    return data;
  }

  async credentials(namespace: string, name: string | undefined): Promise<Credentials | undefined> {
    if (!name) return undefined;
    const d = await this.read(namespace, name);
    return { token: d.token, username: d.username, password: d.password, ca: d['ca.crt'] };
  }

  private async fetch(namespace: string, name: string): Promise<Record<string, string>> {
    let secret: KubeObject;
    try {
      secret = await this.client.get(Resources.Secret, namespace, name);
    } catch (err) {
      if (isNotFound(err)) throw new SecretNotFoundError(`Secret ${namespace}/${name} does not exist`);
      throw err;
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries((secret.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8').trim();
    return out;
  }
}
