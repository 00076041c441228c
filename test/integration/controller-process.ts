// Runs the real controller (src/main.ts) as a child process against the test cluster, as an operator would
// run it: its own process, its own metrics port, killed by pid.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePorts, isOurProcess, startComponent, stopProcess, tailOf } from '../../local/processes.ts';
import { eventually } from '../../local/eventually.ts';
import { scrape, total } from '../support/prometheus-text.ts';
import type { TestCluster } from './harness.ts';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'main.ts');

export interface ControllerProcess {
  pid: number;
  identity: string;
  /** True once the process has ended (killed, crashed or stopped). */
  exited(): boolean;
  metricsUrl: string;
  log: string;
  /** SIGTERM and wait: a graceful shutdown. */
  stop(): Promise<void>;
  /** SIGKILL: a crash at whatever line it was on. */
  kill(): Promise<void>;
  /** The sum of a metric's series (those whose labels contain `labels`, if given). */
  metric(name: string, labels?: string): Promise<number>;
}

export interface ControllerProcessOptions {
  identity?: string;
  args?: string[];
  /** Another identity than the test cluster's admin (e.g. a ServiceAccount token). */
  kubeconfig?: string;
  leaseNamespace?: string;
  /** Extra environment for the process (e.g. a fault-injection knob). */
  env?: Record<string, string>;
  /** Wait for /readyz before returning (default); off for a process expected to die early. */
  waitReady?: boolean;
}

export async function startController(t: TestContext, cluster: TestCluster, namespace: string, opts: ControllerProcessOptions = {}): Promise<ControllerProcess> {
  const [port] = (await freePorts(1)) as [number];
  const logDir = mkdtempSync(join(tmpdir(), 'slipway-ctl-'));
  const identity = opts.identity ?? 'controller';
  const c = startComponent(identity, process.execPath, [
    MAIN,
    `--kubeconfig=${opts.kubeconfig ?? cluster.kubeconfig}`,
    `--namespace=${namespace}`,
    `--leader-election-namespace=${opts.leaseNamespace ?? namespace}`,
    `--identity=${identity}`,
    `--metrics-port=${port}`,
    '--metrics-host=127.0.0.1',
    ...(opts.args ?? []),
  ], logDir, false, opts.env);
  const metricsUrl = `http://127.0.0.1:${port}/metrics`;
  const proc: ControllerProcess = {
    pid: c.pid,
    identity,
    exited: () => !isOurProcess(c),
    metricsUrl,
    log: c.log,
    stop: () => stopProcess(c, 10_000),
    kill: async () => {
      if (isOurProcess(c)) process.kill(c.pid, 'SIGKILL');
      await eventually(`controller ${identity} to die`, () => !isOurProcess(c), { timeoutMs: 10_000 });
    },
    metric: async (name, labels) => total(await scrape(metricsUrl), name, labels),
  };
  t.after(() => proc.stop());
  if (opts.waitReady === false) return proc;
  await eventually(`controller ${identity} /readyz`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, {
    timeoutMs: 30_000,
    abort: c.exited.catch((err: unknown) => {
      throw new Error(`${String(err)}\n${tailOf(c.log)}`);
    }),
  });
  return proc;
}
