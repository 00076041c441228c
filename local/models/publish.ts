// `npm run models:publish`: trains the local models (local/models/train.py) and registers them in the local
// cluster's MLflow registry as `iris` (good as version 1, better as version 2, the alias `champion` on 1), then
// prints the command that creates the Secret the mlserver preset's pods read the registry's address and credentials from. Needs `npm run cluster:up -- --serve`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultClusterDir, readState } from '../cluster.ts';
import { registerModel, trainModel } from '../mlserver.ts';
import { registryEnv } from '../registry.ts';
import { ensurePythonEnv } from '../python.ts';

const state = readState(defaultClusterDir());
if (!state?.registry) {
  console.error('no local model registry: start the local environment with npm run cluster:up -- --serve');
  process.exit(1);
}
const log = (l: string): void => console.error(l);
const bin = await ensurePythonEnv(log);
const registryBin = await ensurePythonEnv(log, 'registry');
const dir = mkdtempSync(join(tmpdir(), 'slipway-models-'));
for (const [kind, alias] of [['good', 'champion'], ['better', undefined]] as const) {
  const { modelDir, offline } = await trainModel(bin, dir, kind, 1);
  const v = await registerModel(registryBin, state.registry, modelDir, 'iris', alias);
  console.error(`registered ${kind} as iris version ${v.version}${alias ? ` (@${alias})` : ''}: ${(offline.accuracy * 100).toFixed(1)}% on held-out rows`);
}
console.log(`kubectl create secret generic mlflow ${Object.entries(registryEnv(state.registry)).map(([k, v]) => `--from-literal=${k}=${v}`).join(' ')}`);
