// The local model registry: an MLflow tracking server (from the locked `registry` Python environment) with its
// metadata in SQLite and its artifact store on local disk, served through MLflow's artifact proxy
// (mlflow-artifacts:/). It runs in a network namespace of its own on the pod bridge, at an address pods reach
// (the storage initializer fetches models:/ URIs from it) and with no route off this machine; telemetry is
// switched off besides.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addServicePod } from './podnet.ts';
import { eventually } from './eventually.ts';
import type { Started } from './processes.ts';

/** The registry's address: the top of the pod range, which the pod runner never hands out. */
export const REGISTRY_IP = '10.244.255.254';
const REGISTRY_PORT = 5000;
const REGISTRY_ID = 'slipway-model-registry';
/** MLflow's own switches for usage telemetry, off. */
export const NO_TELEMETRY = { MLFLOW_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: 'true' };

export interface RegistryInfo {
  /** MLFLOW_TRACKING_URI for the host and for pods alike. */
  url: string;
  /** The admin's credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD): MLflow's basic-auth app is on. */
  username: string;
  password: string;
}

export interface RegistryContext {
  start: (name: string, args: string[], program: string, env?: Record<string, string>) => Started;
  dir: string;
  pythonBin: string;
}

export async function startRegistry(ctx: RegistryContext): Promise<RegistryInfo> {
  const dir = join(ctx.dir, 'registry');
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  // Credentials as a real registry has them, so that a model's Secret is needed and a wrong one is refused.
  const username = 'admin';
  const password = randomBytes(12).toString('hex');
  const authConfig = join(dir, 'basic_auth.ini');
  writeFileSync(authConfig, [
    '[mlflow]',
    'default_permission = READ',
    `database_uri = sqlite:///${join(dir, 'basic_auth.db')}`,
    `admin_username = ${username}`,
    `admin_password = ${password}`,
    'authorization_function = mlflow.server.auth:authenticate_request_basic_auth',
    '',
  ].join('\n'), { mode: 0o600 });
  // A namespace a previous run left behind (cluster:up after a crash) goes first.
  const net = await addServicePod(REGISTRY_ID, REGISTRY_IP);
  const url = `http://${REGISTRY_IP}:${REGISTRY_PORT}`;
  const [cmd, args] = net.exec(join(ctx.pythonBin, 'mlflow'), [
    'server',
    '--host', '0.0.0.0',
    '--port', String(REGISTRY_PORT),
    '--workers', '1',
    '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`,
    '--artifacts-destination', join(dir, 'artifacts'),
    '--serve-artifacts',
    '--allowed-hosts', `${REGISTRY_IP}:${REGISTRY_PORT},${REGISTRY_IP}`,
    '--app-name', 'basic-auth',
  ]);
  const env = { ...NO_TELEMETRY, MLFLOW_AUTH_CONFIG_PATH: authConfig, MLFLOW_FLASK_SERVER_SECRET_KEY: randomBytes(24).toString('hex'), PATH: `${ctx.pythonBin}:${process.env.PATH ?? ''}` };
  const server = ctx.start('mlflow', args, cmd, env);
  // The first start of MLflow (database migrations) takes tens of seconds.
  await eventually('the MLflow tracking server', async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.ok === true, { abort: server.exited, timeoutMs: 120_000, intervalMs: 250 });
  return { url, username, password };
}

/** What an MLflow client (and the storage initializer) is given to reach the registry. */
export function registryEnv(registry: { url: string; username: string; password: string }): Record<string, string> {
  return { MLFLOW_TRACKING_URI: registry.url, MLFLOW_TRACKING_USERNAME: registry.username, MLFLOW_TRACKING_PASSWORD: registry.password };
}
