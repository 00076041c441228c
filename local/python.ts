// The local environment's Python: one virtual environment per hash-locked requirements file, in the cache like
// the control plane's binaries. `pip install --require-hashes` from local/python/requirements.lock, so the models
// trained here and the MLServer the tests start on the host are exactly the locked packages, on every machine; a
// changed lock is a new directory. The data plane's pods run MLServer from an image of the same lock
// (mlserver-image.ts).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from './toolchain.ts';
import { canonicalName } from '../src/environments/content.ts';

/** One environment per lock: MLServer and its runtimes (serving), MLflow's tracking server and client (registry). */
const LOCKS = {
  serving: join(import.meta.dirname, 'python', 'requirements.lock'),
  registry: join(import.meta.dirname, 'python', 'mlflow.lock'),
} as const;
export type PythonEnv = keyof typeof LOCKS;
const PYTHON = process.env.SLIPWAY_PYTHON ?? 'python3';

function run(cmd: string, args: string[], log: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let tail = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (tail = (tail + c.toString()).slice(-4000)));
    child.on('error', (err) => reject(new Error(`${cmd} could not start (${err.message}): Python 3.11 with venv is needed (apt-get install python3 python3-venv)`)));
    child.on('exit', (code) => {
      if (code === 0) resolve(out);
      else {
        log(tail);
        reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}):\n${tail}`));
      }
    });
  });
}

/** The directory of the locked environment (not necessarily built yet). */
export async function pythonEnvDir(env: PythonEnv = 'serving'): Promise<string> {
  const version = (await run(PYTHON, ['-c', 'import sys; print(sys.version.split()[0])'], () => {})).trim();
  const hash = createHash('sha256').update(`python ${version}\n`).update(readFileSync(LOCKS[env])).digest('hex').slice(0, 16);
  return join(cacheRoot(), 'python', hash);
}

/** Builds the environment if the cache does not have it; returns its bin directory. */
export async function ensurePythonEnv(log: (line: string) => void = () => {}, env: PythonEnv = 'serving'): Promise<string> {
  const LOCK = LOCKS[env];
  const dir = await pythonEnvDir(env);
  const done = join(dir, '.complete');
  if (existsSync(done)) return join(dir, 'bin');
  const t0 = Date.now();
  log(`building the Python environment (${env}) from ${LOCK}`);
  // A venv is not relocatable, so it is built where it lives; the marker written last tells a complete one from
  // one a crash left half-built (which is built again).
  mkdirSync(join(dir, '..'), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  await run(PYTHON, ['-m', 'venv', dir], log);
  await run(join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '--require-hashes', '--no-deps', '-r', LOCK], log);
  writeFileSync(done, `${new Date().toISOString()}\n`);
  log(`Python environment ready in ${Math.round((Date.now() - t0) / 1000)} s: ${dir}`);
  return join(dir, 'bin');
}

/**
 * The serving lock's packages as pinned requirements (`name==version`, PEP 503 names): what an environment image
 * needs to serve exactly as the local environment does (a pickled model wants its scikit-learn; MLServer 1.7.1
 * wants the uvloop it was released with).
 */
export function servingPins(): string[] {
  const lock = readFileSync(LOCKS.serving, 'utf8');
  return [...lock.matchAll(/^([A-Za-z0-9_.-]+)==(\S+)/gm)].map((m) => `${canonicalName(m[1] ?? '')}==${m[2] ?? ''}`);
}
