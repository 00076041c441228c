// Real MLServer processes on this machine, configured exactly as the mlserver preset configures a pod
// (runtimeParts), with only what differs outside a pod changed: loopback, free ports, and the model read where
// the storage initializer would have put it. Used by the tests and the benchmarks; the pod runner will reuse it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runtimeParts } from '../src/controllers/modeldeployment/runtimes.ts';
import { seededRandom } from '../src/stats/random.ts';
import { eventually } from './eventually.ts';
import { GATEWAY } from './podnet.ts';
import { registryEnv } from './registry.ts';
import { freePorts, startComponent, stopProcess, tailOf } from './processes.ts';

const TRAIN = join(import.meta.dirname, 'models', 'train.py');
const REGISTER = join(import.meta.dirname, 'models', 'register.py');

export interface Offline {
  kind: string;
  columns: string[];
  rows: (number | string)[][];
  predictions: number[];
  accuracy: number;
}

/** Trains a model of a kind (local/models/train.py) into `dir`; returns where it is and what it predicts offline. */
export async function trainModel(bin: string, dir: string, kind: string, version: number): Promise<{ modelDir: string; offline: Offline }> {
  const modelDir = join(dir, `${kind}-${version}`);
  await promisify(execFile)(join(bin, 'python'), [TRAIN, modelDir, '--kind', kind, '--version', String(version)]);
  return { modelDir, offline: JSON.parse(readFileSync(join(modelDir, 'offline.json'), 'utf8')) as Offline };
}

/** Registers a trained model directory as a new version in the MLflow registry at `trackingUri` (local/models/register.py). */
export async function registerModel(registryBin: string, registry: { url: string; username: string; password: string }, modelDir: string, name: string, alias?: string): Promise<{ name: string; version: string; source: string }> {
  const args = [REGISTER, modelDir, '--name', name, ...(alias ? ['--alias', alias] : [])];
  const env = { ...process.env, ...registryEnv(registry), MLFLOW_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: 'true' };
  const { stdout } = await promisify(execFile)(join(registryBin, 'python'), args, { env });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { name: string; version: string; source: string };
}

export interface RunningServer {
  base: string;
  metricsUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts MLServer for a scikit-learn model with the preset's settings; resolves once it is ready. */
export async function startMlserver(opts: { bin: string; dir: string; modelDir: string; name: string; version: string }): Promise<RunningServer> {
  const [http, grpc, metrics] = (await freePorts(3)) as [number, number, number];
  const parts = runtimeParts({ preset: 'mlserver', model: { name: opts.name, version: opts.version, format: 'sklearn', uri: 's3://models/' }, port: 8080, storageInitializerImage: 'unused' });
  const outsideAPod: Record<string, string> = { MLSERVER_MODEL_URI: opts.modelDir, MLSERVER_HTTP_PORT: String(http), MLSERVER_GRPC_PORT: String(grpc), MLSERVER_METRICS_PORT: String(metrics) };
  const env: Record<string, string> = { ...Object.fromEntries(parts.env.map((e) => [e.name, outsideAPod[e.name] ?? e.value])), MLSERVER_HOST: '127.0.0.1' };
  // An empty model repository: the model comes from the MLSERVER_MODEL_* settings alone, as in the pod.
  const server = startComponent(`mlserver-${opts.name}-${opts.version}`, join(opts.bin, 'mlserver'), ['start', mkdtempSync(join(opts.dir, 'repo-'))], opts.dir, false, env);
  const base = `http://127.0.0.1:${http}`;
  const stop = (): Promise<void> => stopProcess(server, 10_000);
  try {
    await eventually('MLServer ready', async () => (await fetch(`${base}/v2/health/ready`)).ok, {
      timeoutMs: 120_000,
      intervalMs: 250,
      abort: server.exited.catch((err: unknown) => {
        throw new Error(`${String(err)}\n${tailOf(server.log)}`);
      }),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { base, metricsUrl: `http://127.0.0.1:${metrics}/metrics`, pid: server.pid, stop };
}

/** A V2 inference request for rows of a table, decoded by MLServer into a pandas DataFrame. */
export function frameRequest(columns: string[], rows: (number | string)[][]): string {
  return JSON.stringify({
    parameters: { content_type: 'pd' },
    inputs: columns.map((name, c) => {
      const data = rows.map((r) => r[c]);
      return { name, shape: [rows.length], datatype: typeof data[0] === 'string' ? 'BYTES' : 'FP64', data };
    }),
  });
}

/**
 * Serves the files under `root` over HTTP on the pod bridge's host address, where the storage initializer in a pod
 * reaches them (`http://10.244.0.1:<port>/<path>`): a model store for tests and benchmarks. 404 for anything else.
 */
export async function startModelStore(root: string): Promise<{ url: string; close: () => Promise<void> }> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const file = resolve(base, `.${decodeURIComponent(new URL(req.url ?? '/', 'http://store').pathname)}`);
    try {
      if (!file.startsWith(`${base}/`)) throw new Error('outside the store');
      const body = readFileSync(file); // read before the status goes out: a missing file is a 404
      res.writeHead(200).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((done) => server.listen(0, GATEWAY, done));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the model store has no address');
  return { url: `http://${GATEWAY}:${address.port}`, close: () => new Promise((done) => server.close(() => done())) };
}


/**
 * Traffic as it comes to an iris model: a share of requests malformed (a column missing: every version answers
 * 500) and a share with a petal-size band no model was trained on (good, better and slow ignore it; strict fails
 * with a 500). Drawn at random from a seed, not by position: a gateway's weighted round robin is deterministic,
 * and a mix by position would send all of one kind to the same revision.
 */
export function irisTrafficMix(offline: Offline, shares: { malformed: number; unseenBand: number }, seed = 20261126): (i: number) => string {
  const row = offline.rows[0] ?? [];
  const band = offline.columns.indexOf('band');
  const normal = frameRequest(offline.columns, [row]);
  const unseen = frameRequest(offline.columns, [row.map((v, i) => (i === band ? 'xlarge' : v))]);
  const malformed = frameRequest(offline.columns.slice(1), [row.slice(1)]);
  const random = seededRandom(seed);
  return () => {
    const u = random();
    return u < shares.malformed ? malformed : u < shares.malformed + shares.unseenBand ? unseen : normal;
  };
}
