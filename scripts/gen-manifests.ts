// Writes manifests/slipway.yaml, the kustomize base's rendering of the Helm chart with its defaults, so that
// `kubectl apply -k manifests/` installs what `helm install` installs. A test fails when they drift.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries } from '../local/toolchain.ts';

export const MANIFEST_HEADER = '# Generated from charts/slipway by `npm run gen:manifests` (helm template, default values). Do not edit.\n';

export function renderChart(helm: string, root: string): string {
  const out = execFileSync(helm, ['template', 'slipway', join(root, 'charts', 'slipway'), '--namespace', 'slipway-system', '--skip-tests'], { encoding: 'utf8' });
  return MANIFEST_HEADER + out;
}

if (import.meta.main) {
  const root = join(import.meta.dirname, '..');
  const { binDir } = await ensureBinaries((l) => console.error(l));
  writeFileSync(join(root, 'manifests', 'slipway.yaml'), renderChart(join(binDir, 'helm'), root));
  console.log('wrote manifests/slipway.yaml');
}
