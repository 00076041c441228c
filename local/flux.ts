// Flux on the local control plane: source-controller and kustomize-controller (built from their Go modules,
// local/tools/flux-*), run as processes against the local API server with their CRDs installed. The GitOps
// loop the write-back is tested against: a GitRepository fetched from a real git server, a Kustomization
// applying it. Artifacts are served on loopback by the source-controller and fetched from there.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.ts';
import { freePorts, startComponent, stopProcess, type Started } from './processes.ts';
import { ensureBinaries, FLUX_KUSTOMIZE_VERSION, FLUX_SOURCE_VERSION, moduleDir } from './toolchain.ts';

export interface Flux {
  stop: () => Promise<void>;
  logs: string;
}

type Kubectl = (args: string[], input?: string) => Promise<string>;

/** The CRDs of both controllers, from their modules' config/crd/bases. */
export function fluxCrds(): string {
  const dirs = [
    join(moduleDir('github.com/fluxcd/source-controller', FLUX_SOURCE_VERSION), 'config', 'crd', 'bases'),
    join(moduleDir('github.com/fluxcd/kustomize-controller', FLUX_KUSTOMIZE_VERSION), 'config', 'crd', 'bases'),
  ];
  return dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(join(d, f), 'utf8'))).join('\n---\n');
}

export async function startFlux(opts: { kubeconfig: string; kubectl: Kubectl; dir: string; log?: (line: string) => void }): Promise<Flux> {
  const { binDir } = await ensureBinaries(opts.log, 'gitops');
  await opts.kubectl(['apply', '--server-side', '-f', '-'], fluxCrds());
  await opts.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gitrepositories.source.toolkit.fluxcd.io', 'crd/kustomizations.kustomize.toolkit.fluxcd.io']);
  await opts.kubectl(['create', 'namespace', 'flux-system']).catch(() => '');
  const logs = join(opts.dir, 'flux-logs');
  mkdirSync(logs, { recursive: true });
  mkdirSync(join(opts.dir, 'flux-artifacts'), { recursive: true });
  const [storage, m1, h1, m2, h2] = (await freePorts(5)) as [number, number, number, number, number];
  const env = { KUBECONFIG: opts.kubeconfig, RUNTIME_NAMESPACE: 'flux-system' };
  const started: Started[] = [];
  const common = (metrics: number, health: number): string[] => [`--metrics-addr=127.0.0.1:${metrics}`, `--health-addr=127.0.0.1:${health}`, '--enable-leader-election=false', '--watch-all-namespaces=true', '--log-level=info', '--log-encoding=json'];
  try {
    started.push(startComponent('source-controller', join(binDir, 'source-controller'), [
      ...common(m1, h1), `--storage-path=${join(opts.dir, 'flux-artifacts')}`, `--storage-addr=127.0.0.1:${storage}`, `--storage-adv-addr=127.0.0.1:${storage}`,
    ], logs, false, env));
    started.push(startComponent('kustomize-controller', join(binDir, 'kustomize-controller'), [...common(m2, h2), '--no-remote-bases=true'], logs, false, env));
    const health = [h1, h2];
    for (const [i, s] of started.entries()) {
      await eventually(`${s.name} ready`, async () => (await fetch(`http://127.0.0.1:${health[i] ?? 0}/readyz`).catch(() => undefined))?.ok === true, { abort: s.exited, timeoutMs: 60_000, intervalMs: 250 });
    }
  } catch (err) {
    await Promise.all(started.map((s) => stopProcess(s)));
    throw err;
  }
  return { logs, stop: async () => void (await Promise.all(started.map((s) => stopProcess(s)))) };
}
