// `npm run cluster:up|down|build|status`: a local control plane that keeps running between commands.
// `eval "$(npm run -s cluster:up)"` sets KUBECONFIG and puts the built kubectl and helm first on PATH;
// `cluster:up -- --serve` adds the data plane (the pod runner that runs MLServer pods for real).
import { join } from 'node:path';
import { ensureBinaries, TOOLSET_NAMES } from './toolchain.ts';
import { defaultClusterDir, readState, startCluster, stopClusterAt } from './cluster.ts';
import { removePodNetwork } from './podnet.ts';
import { isOurProcess } from './processes.ts';
import { registryEnv } from './registry.ts';

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function exports(state: { kubeconfig: string; binDir: string; gateway?: { url: string }; prometheus?: { url: string }; registry?: { url: string; username: string; password: string }; imageRegistry?: { host: string } }): string {
  const gateway =
    (state.gateway ? `export SLIPWAY_GATEWAY_URL=${state.gateway.url}\n` : '') +
    (state.prometheus ? `export SLIPWAY_PROMETHEUS_URL=${state.prometheus.url}\n` : '') +
    (state.imageRegistry ? `export SLIPWAY_IMAGE_REGISTRY=${state.imageRegistry.host}\n` : '') +
    (state.registry ? Object.entries(registryEnv(state.registry)).map(([k, v]) => `export ${k}=${v}\n`).join('') : '');
  return `export KUBECONFIG=${state.kubeconfig}\nexport PATH=${state.binDir}:$PATH\n${gateway}`;
}

async function main(cmd: string | undefined): Promise<void> {
  const dir = defaultClusterDir();
  switch (cmd) {
    case 'build': {
      // The control plane, the data plane's tools (gateway, Prometheus), Flux (the GitOps loop the tests run) and
      // the image registry, each set cached under its own hash.
      for (const set of TOOLSET_NAMES) {
        const r = await ensureBinaries(say, set);
        say(r.built.length ? `built ${r.built.join(', ')} in ${r.seconds.toFixed(0)} s into ${r.binDir}` : `${set} binaries are up to date in ${r.binDir}`);
      }
      return;
    }
    case 'up': {
      const running = readState(dir);
      if (running && running.components.every(isOurProcess)) {
        say(`the local control plane is already running at ${running.server} (npm run cluster:down stops it)`);
        process.stdout.write(exports(running));
        return;
      }
      if (running) await stopClusterAt(dir);
      const t0 = Date.now();
      const cluster = await startCluster({ dir, persistent: true, serve: process.argv.includes('--serve'), log: say });
      say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; logs in ${join(dir, 'logs')}; npm run cluster:down stops it`);
      process.stdout.write(exports(cluster));
      return;
    }
    case 'down': {
      const served = readState(dir)?.components.some((c) => c.name === 'pod-runner') ?? false;
      say((await stopClusterAt(dir)) ? 'the local control plane is stopped' : 'no local control plane was running');
      // The pod network (bridge and pod namespaces) goes with the data plane that made it, where this user may
      // remove it; stopping a cluster without one leaves another cluster's data plane alone.
      if (served && process.getuid?.() === 0) await removePodNetwork().catch((err: unknown) => say(`could not remove the pod network: ${String(err)}`));
      return;
    }
    case 'status': {
      const state = readState(dir);
      if (!state) {
        say('no local control plane is running');
        process.exitCode = 1;
        return;
      }
      for (const c of state.components) say(`${c.name.padEnd(24)} pid ${c.pid} ${isOurProcess(c) ? 'running' : 'gone'}`);
      process.stdout.write(exports(state));
      return;
    }
    default:
      say('usage: cli.ts build|up|down|status');
      process.exitCode = 2;
  }
}

main(process.argv[2]).catch((err: unknown) => {
  say(`error: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
