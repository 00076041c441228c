// The pod runner: the kubelet for serving pods on the local cluster. KWOK fakes every other pod; a pod whose
// images come from a runtime repository (images.ts) is left to this runner, which runs it for real:
// - a network namespace holding the pod's IP on the local bridge (podnet.ts), so nothing it sends leaves the machine;
// - the init containers in order, each to completion (a failure is retried with the kubelet's back-off), then
//   the containers, as processes in that namespace with the container's env, args and mounts;
// - an image of the local image registry is pulled and unpacked (image-store.ts) and run as it is: its entrypoint
//   under chroot in a mount namespace of its own (the root filesystem read-only with readOnlyRootFilesystem, the
//   pod's volumes bound in, /proc and a minimal /dev with /dev/shm), as the user its securityContext or the image names
//   (runAsNonRoot refuses root), with no capabilities and no new privileges, with the in-cluster variables of a
//   pod: the API server is reached through a proxy on the pod bridge's address (API_PROXY_PORT), the package
//   index through an egress proxy there that goes nowhere else (egress-proxy.ts), and a projected
//   service-account token is mounted where client libraries look for it;
// - readiness and liveness probes (httpGet, tcpSocket) run against the pod's IP with the probe's own timing;
//   the pod is Ready only when every container's readiness probe passes;
// - a process that exits counts a restart (its last state and, with FallbackToLogsOnError, its last lines) and is
//   started again after the back-off; a liveness failure kills it first;
// - deletion sends SIGTERM, waits for the grace period, then SIGKILL, removes the namespace and frees the IP, and
//   only then deletes the pod for good (grace 0), as the kubelet does.
// Status goes to the pod's status subresource; what happens goes to Events (`kubectl describe pod`). Each
// container's output goes to <dir>/<namespace>_<pod>_<uid>/<container>.log.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { KubeClient } from '../src/kube/client.ts';
import { classify } from '../src/kube/errors.ts';
import { EventRecorder, type EventSpec } from '../src/kube/events.ts';
import { Informer } from '../src/kube/informer.ts';
import { Resources, type KubeObject } from '../src/kube/resources.ts';
import { rfc3339 } from '../src/kube/time.ts';
import { isRegistryImage, isRunnerImage, KNOWN_IMAGES, localImage, mirrorOf, repositoryOf, type LocalPrograms } from './images.ts';
import { ImageStore } from './image-store.ts';
import { startEgressProxy } from './egress-proxy.ts';
import { cacheRoot } from './toolchain.ts';
import { addPod, assertPodRangeIsLocal, GATEWAY, hostProgram, killNamespace, namespaceOf, podNamespaces, type PodNetwork } from './podnet.ts';

const execFileAsync = promisify(execFile);
const isNotFound = (err: unknown): boolean => classify(err) === 'NotFound';

/** The runner's addresses: the upper half of the pod range (KWOK's fake pods take the lower half). */
/** The pod runner's pods take 10.244.128.2 to 10.244.255.239; the top of the range is for the local services (the model registry). */
export const RUNNER_RANGE = { first: [128, 2] as const, last: [255, 239] as const };
export const KWOK_POD_CIDR = '10.244.0.0/17';

/** Pods reach the API server at the bridge's address on this port (the runner forwards to the real one). */
export const API_PROXY_PORT = 6443;

const BACKOFF_INITIAL_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;
/** A container that ran this long without exiting starts its back-off over. */
const BACKOFF_RESET_MS = 600_000;

type Obj = Record<string, unknown>;

interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  exec?: unknown;
  grpc?: unknown;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string; optional?: boolean } } }[];
  envFrom?: { prefix?: string; secretRef?: { name: string; optional?: boolean }; configMapRef?: { name: string; optional?: boolean } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  terminationMessagePolicy?: string;
  terminationMessagePath?: string;
  securityContext?: SecurityContext;
}

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
}

export interface Pod extends KubeObject {
  spec: {
    nodeName?: string;
    initContainers?: ContainerSpec[];
    containers: ContainerSpec[];
    volumes?: ({ name: string } & Obj)[];
    terminationGracePeriodSeconds?: number;
    securityContext?: SecurityContext;
    serviceAccountName?: string;
    restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  };
  status?: { phase?: string; podIP?: string; initContainerStatuses?: { name: string; restartCount?: number }[]; containerStatuses?: { name: string; restartCount?: number }[] } & Obj;
}

export const isRunnerPod = (pod: Pod): boolean =>
  [...(pod.spec.initContainers ?? []), ...pod.spec.containers].some((c) => isRunnerImage(c.image));

type State = { waiting: { reason: string; message?: string } } | { running: { startedAt: string } } | { terminated: { exitCode: number; signal?: number; reason: string; message?: string; startedAt: string; finishedAt: string } };

class ContainerRun {
  readonly spec: ContainerSpec;
  state: State = { waiting: { reason: 'PodInitializing' } };
  lastState: State | undefined;
  restartCount: number;
  ready = false;
  started = false;
  /** The image pulled for it, `repository@digest`, as a kubelet reports it. */
  imageID = '';
  proc: ChildProcess | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  startedAt = 0;
  backoffMs = 0;

  constructor(spec: ContainerSpec, restartCount: number) {
    this.spec = spec;
    this.restartCount = restartCount;
  }

  status(): Obj {
    return {
      name: this.spec.name,
      image: this.spec.image,
      imageID: this.imageID,
      ...(this.proc?.pid ? { containerID: `local://${this.proc.pid}` } : {}),
      ready: this.ready,
      started: this.started,
      restartCount: this.restartCount,
      state: this.state,
      lastState: this.lastState ?? {},
    };
  }
}

const now = (): string => rfc3339(new Date());
const ipOf = (n: number): string => `10.244.${n >> 8}.${n & 255}`;
const ipIndex = (ip: string): number | undefined => {
  const m = /^10\.244\.(\d+)\.(\d+)$/.exec(ip);
  return m ? Number(m[1]) * 256 + Number(m[2]) : undefined;
};
const FIRST = RUNNER_RANGE.first[0] * 256 + RUNNER_RANGE.first[1];
const LAST = RUNNER_RANGE.last[0] * 256 + RUNNER_RANGE.last[1];

/** One pod being run: its network, its containers, its probes, and the status that says so. */
class PodWorker {
  pod: Pod;
  private readonly runner: PodRunner;
  readonly ip: string;
  private net: PodNetwork | undefined;
  private readonly init: ContainerRun[];
  private readonly main: ContainerRun[];
  private initialized = false;
  /** Set once every container of a pod that does not restart them (a Job's) has ended: Succeeded or Failed. */
  private finished: 'Succeeded' | 'Failed' | undefined;
  private stopping = false;
  private readonly stopped = new AbortController();
  private readonly dir: string;
  private readonly transitions = new Map<string, { status: string; at: string }>();
  private readonly startTime = now();
  private publishing: Promise<void> | undefined;
  private publishAgain = false;
  private volumes = new Map<string, string>();
  /** Image volumes: mounted read-only whatever the mount says (the tree is the image store's). */
  private readonly imageVolumes = new Set<string>();

  constructor(runner: PodRunner, pod: Pod, ip: string) {
    this.runner = runner;
    this.pod = pod;
    this.ip = ip;
    const counts = (list: { name: string; restartCount?: number }[] | undefined): Map<string, number> => new Map((list ?? []).map((s) => [s.name, s.restartCount ?? 0]));
    const initCounts = counts(pod.status?.initContainerStatuses);
    const mainCounts = counts(pod.status?.containerStatuses);
    this.init = (pod.spec.initContainers ?? []).map((c) => new ContainerRun(c, initCounts.get(c.name) ?? 0));
    this.main = pod.spec.containers.map((c) => new ContainerRun(c, mainCounts.get(c.name) ?? 0));
    this.dir = join(runner.dir, `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`);
  }

  private event(type: EventSpec['type'], reason: string, message: string): void {
    void this.runner.events.record({ ...this.pod, apiVersion: 'v1', kind: 'Pod' }, { type, reason, message });
  }

  async run(): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true });
      // A volume that cannot be set up yet (a Secret not created yet) is tried again, as a kubelet does.
      for (let delay = BACKOFF_INITIAL_MS; ; delay = Math.min(delay * 2, 120_000)) {
        try {
          for (const v of this.pod.spec.volumes ?? []) {
            const hostDir = join(this.dir, 'volumes', v.name);
            mkdirSync(hostDir, { recursive: true });
            this.volumes.set(v.name, (await this.fillVolume(v, hostDir)) ?? hostDir);
          }
          break;
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          for (const c of [...this.init, ...this.main]) c.state = { waiting: { reason: 'ContainerCreating', message: err.message } };
          this.event('Warning', 'FailedMount', err.message);
          this.publish();
          await sleep(delay, this.stopped.signal);
          if (this.stopping) return;
        }
      }
      this.net = await addPod(this.pod.metadata.uid ?? this.pod.metadata.name, this.ip);
      await this.runner.serveLogs(this.pod, [...this.init, ...this.main].map((c) => c.spec.name), this.dir);
      this.publish();
      for (const c of this.init) {
        while (!this.stopping) {
          const code = await this.runOnce(c, true);
          if (code === 0 || this.stopping) break;
          await this.backoff(c);
        }
      }
      if (this.stopping) return;
      this.initialized = true;
      this.publish();
      const codes = await Promise.all(this.main.map((c) => this.supervise(c)));
      if (this.stopping) return;
      // A pod whose containers do not restart is over: its phase says how, and its sandbox goes, as a kubelet's.
      this.finished = codes.every((code) => code === 0) ? 'Succeeded' : 'Failed';
      await this.releaseNetwork();
      this.publish();
    } catch (err) {
      if (this.stopping) return;
      const reason = err instanceof ConfigError ? err.reason : 'RunnerError';
      const message = err instanceof Error ? err.message : String(err);
      for (const c of [...this.init, ...this.main]) c.state = { waiting: { reason: reason === 'FailedMount' ? 'ContainerCreating' : reason, message } };
      this.event('Warning', reason, message);
      this.publish();
    }
  }

  /**
   * emptyDir: an empty directory; configMap, secret, projected: their files, written once at start; image: the
   * image's unpacked tree (returned: it is mounted from there).
   */
  private async fillVolume(v: { name: string } & Obj, hostDir: string): Promise<string | void> {
    const ns = this.pod.metadata.namespace ?? 'default';
    type Items = { key: string; path: string }[] | undefined;
    const write = (data: Record<string, string>, items: Items): void => {
      for (const [key, path] of items ? items.map((i) => [i.key, i.path] as const) : Object.keys(data).map((k) => [k, k] as const)) {
        const value = data[key];
        if (value === undefined) continue;
        mkdirSync(dirname(join(hostDir, path)), { recursive: true });
        writeFileSync(join(hostDir, path), value);
      }
    };
    if ('image' in v) {
      // An image volume (KEP-4639): the image's tree, read-only, as the kubelet mounts one.
      const ref = (v.image as { reference?: string }).reference ?? '';
      if (!isRegistryImage(ref)) throw new ConfigError('FailedMount', `volume ${v.name}: image ${ref} is not in the local image registry`);
      try {
        this.imageVolumes.add(v.name);
        return (await this.runner.images.pull(ref)).rootfs;
      } catch (err) {
        throw new ConfigError('FailedMount', `volume ${v.name}: failed to pull image "${ref}": ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if ('emptyDir' in v) {
      // As the kubelet makes it: writable by whatever user the containers run as.
      chmodSync(hostDir, 0o777);
      return;
    }
    if ('configMap' in v || 'secret' in v) {
      const isSecret = 'secret' in v;
      const src = (isSecret ? v.secret : v.configMap) as { name?: string; secretName?: string; items?: Items; optional?: boolean };
      write(await this.runner.readData(isSecret ? 'Secret' : 'ConfigMap', ns, src.secretName ?? src.name ?? '', src.optional ?? false), src.items);
      return;
    }
    if ('projected' in v) {
      const sources = ((v.projected as { sources?: Obj[] }).sources ?? []);
      for (const source of sources) {
        if (source.serviceAccountToken) {
          const t = source.serviceAccountToken as { path: string; expirationSeconds?: number; audience?: string };
          write({ token: await this.runner.token(ns, this.pod.spec.serviceAccountName ?? 'default', t.expirationSeconds ?? 3607, t.audience) }, [{ key: 'token', path: t.path }]);
        } else if (source.configMap || source.secret) {
          const src = (source.configMap ?? source.secret) as { name: string; items?: Items; optional?: boolean };
          write(await this.runner.readData(source.secret ? 'Secret' : 'ConfigMap', ns, src.name, src.optional ?? false), src.items);
        } else if (source.downwardAPI) {
          const items = ((source.downwardAPI as { items?: { path: string; fieldRef?: { fieldPath: string } }[] }).items ?? []).filter((i) => i.fieldRef);
          write(Object.fromEntries(items.map((i) => [i.path, this.field(i.fieldRef?.fieldPath ?? '')])), undefined);
        }
      }
      return;
    }
    throw new ConfigError('FailedMount', `volume ${v.name}: the local pod runner mounts emptyDir, configMap, secret and projected volumes only`);
  }

  /**
   * Keeps a container running as the pod's restartPolicy says: Always starts it again whatever its exit code,
   * OnFailure until it exits 0, Never not at all. Resolves with its last exit code once it is not restarted.
   */
  private async supervise(c: ContainerRun): Promise<number | null> {
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    while (!this.stopping) {
      const code = await this.runOnce(c, false);
      if (this.stopping) return code;
      if (policy === 'Never' && code !== -1) return code;
      if (policy === 'OnFailure' && code === 0) return code;
      await this.backoff(c);
    }
    return null;
  }

  private async releaseNetwork(): Promise<void> {
    if (!this.net) return;
    const net = this.net;
    this.net = undefined;
    await killNamespace(net.namespace);
    await net.remove();
  }


  private async backoff(c: ContainerRun): Promise<void> {
    const ranFor = Date.now() - c.startedAt;
    c.backoffMs = ranFor > BACKOFF_RESET_MS || c.backoffMs === 0 ? BACKOFF_INITIAL_MS : Math.min(c.backoffMs * 2, BACKOFF_MAX_MS);
    const waiting = 'waiting' in c.state ? c.state.waiting : undefined;
    if (waiting?.reason === 'ErrImagePull' || waiting?.reason === 'ImagePullBackOff') {
      // As the kubelet: an image that cannot be had is retried with a back-off of its own, and says so.
      c.state = { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${c.spec.image}": ${waiting.message?.replace(/^.*?": /, '') ?? ''}` } };
      this.event('Normal', 'BackOff', `Back-off pulling image "${c.spec.image}"`);
    } else if (waiting) {
      // A configuration error (a missing secret, a volume it cannot mount) stays as the reason while it waits.
    } else {
      const message = `back-off ${Math.round(c.backoffMs / 1000)}s restarting failed container=${c.spec.name} pod=${this.pod.metadata.name}`;
      c.state = { waiting: { reason: 'CrashLoopBackOff', message } };
      this.event('Warning', 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${this.pod.metadata.name}`);
    }
    this.publish();
    await sleep(c.backoffMs, this.stopped.signal);
  }

  /** Whether the pod's restartPolicy starts a container again after it exited with this code. */
  private restarts(exitCode: number): boolean {
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
  }

  /** The host file behind a container's termination-message path (image containers only). */
  private terminationFile(c: ContainerRun): string {
    return join(this.dir, 'termination', c.spec.name);
  }

  /** Starts the container's process and resolves with its exit code once it exits. */
  private async runOnce(c: ContainerRun, isInit: boolean): Promise<number | null> {
    let argv: [string, string[]];
    let env: Record<string, string>;
    try {
      ({ argv, env } = await this.commandFor(c));
    } catch (err) {
      const e = err instanceof ConfigError ? err : new ConfigError('CreateContainerConfigError', String(err));
      c.state = { waiting: { reason: e.reason, message: e.message } };
      this.event('Warning', 'Failed', e.message);
      this.publish();
      return -1;
    }
    // The previous run's output stays readable (`kubectl logs --previous`), as a container runtime keeps it.
    const log = join(this.dir, `${c.spec.name}.log`);
    if (existsSync(log)) renameSync(log, join(this.dir, `${c.spec.name}.previous.log`));
    const fd = openSync(log, 'a');
    const [cmd, args] = this.net!.exec(argv[0], argv[1]);
    const proc = spawn(this.runner.tools.setpriv, ['--pdeathsig', 'KILL', '--', cmd, ...args], { cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = criLog(fd, 'stdout');
    const err = criLog(fd, 'stderr');
    proc.stdout.on('data', out.write);
    proc.stderr.on('data', err.write);
    let open = 2;
    const closeOne = (): void => {
      if (--open === 0) closeSync(fd);
    };
    proc.stdout.on('close', () => {
      out.end();
      closeOne();
    });
    proc.stderr.on('close', () => {
      err.end();
      closeOne();
    });
    c.proc = proc;
    c.startedAt = Date.now();
    const startedAt = now();
    c.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => resolve({ code, signal }));
      proc.on('error', () => resolve({ code: 128, signal: null }));
    });
    c.state = { running: { startedAt } };
    c.started = !c.spec.startupProbe;
    c.ready = isInit ? false : !c.spec.readinessProbe && !c.spec.startupProbe;
    this.event('Normal', 'Started', `Started container ${c.spec.name}`);
    this.publish();
    const probing = isInit ? undefined : this.probeLoop(c);
    const { code, signal } = await c.exited;
    // A container ends with its main process: whatever it started goes with it, as when a container's PID 1 exits.
    if (proc.pid) signalGroup(proc.pid, 'SIGKILL');
    probing?.abort();
    const exitCode = code ?? 128 + (signal ? signalNumber(signal) : 0);
    // What the container wrote to its termination-message file (4096 bytes at most, as the kubelet reads it),
    // else, with FallbackToLogsOnError and a failure, its last lines.
    const written = existsSync(this.terminationFile(c)) ? readFileSync(this.terminationFile(c)).subarray(0, 4096).toString('utf8') : '';
    const terminationLog = written || (exitCode !== 0 && c.spec.terminationMessagePolicy === 'FallbackToLogsOnError' ? lastLines(log) : undefined);
    const terminated = {
      exitCode,
      ...(signal ? { signal: signalNumber(signal) } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      ...(terminationLog ? { message: terminationLog } : {}),
      startedAt,
      finishedAt: now(),
    };
    c.ready = false;
    c.proc = undefined;
    if (isInit && exitCode === 0) {
      c.state = { terminated };
    } else if (!this.stopping && !isInit && !this.restarts(exitCode)) {
      c.state = { terminated };
    } else if (!this.stopping) {
      c.lastState = { terminated };
      c.restartCount++;
      c.state = { terminated };
      if (!isInit) this.event('Warning', 'ContainerDied', `Container ${c.spec.name} exited with code ${exitCode}${terminationLog ? `: ${terminationLog.split('\n').pop()}` : ''}`);
    } else {
      c.state = { terminated };
    }
    this.publish();
    return exitCode;
  }

  /** Runs the readiness, liveness and startup probes until aborted; returns the handle that aborts them. */
  private probeLoop(c: ContainerRun): AbortController {
    const ctl = new AbortController();
    const signal = AbortSignal.any([ctl.signal, this.stopped.signal]);
    const loop = async (p: Probe, kind: 'Readiness' | 'Liveness' | 'Startup', onResult: (ok: boolean, message: string) => boolean): Promise<void> => {
      if (kind !== 'Startup') while (!c.started && !signal.aborted) await sleep(200, signal);
      await sleep((p.initialDelaySeconds ?? 0) * 1000, signal);
      let successes = 0;
      let failures = 0;
      while (!signal.aborted) {
        const { ok, message } = await this.probe(c.spec, p);
        if (signal.aborted) return;
        if (ok) {
          successes++;
          failures = 0;
        } else {
          failures++;
          successes = 0;
          this.event('Warning', 'Unhealthy', `${kind} probe failed: ${message}`);
        }
        const threshold = ok ? (p.successThreshold ?? 1) : (p.failureThreshold ?? 3);
        if ((ok ? successes : failures) >= threshold && onResult(ok, message)) return;
        await sleep((p.periodSeconds ?? 10) * 1000, signal);
      }
    };
    if (c.spec.startupProbe) {
      void loop(c.spec.startupProbe, 'Startup', (ok) => {
        if (ok) {
          c.started = true;
          if (!c.spec.readinessProbe) c.ready = true;
          this.publish();
        } else this.kill(c, `Container ${c.spec.name} failed startup probe, will be restarted`);
        return true;
      });
    }
    if (c.spec.readinessProbe) {
      void loop(c.spec.readinessProbe, 'Readiness', (ok) => {
        if (c.ready !== ok) {
          c.ready = ok;
          this.publish();
        }
        return false;
      });
    }
    if (c.spec.livenessProbe) {
      void loop(c.spec.livenessProbe, 'Liveness', (ok) => {
        if (ok) return false;
        this.kill(c, `Container ${c.spec.name} failed liveness probe, will be restarted`);
        return true;
      });
    }
    return ctl;
  }

  private kill(c: ContainerRun, why: string): void {
    this.event('Normal', 'Killing', why);
    void this.terminate(c, (this.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
  }

  private async probe(spec: ContainerSpec, p: Probe): Promise<{ ok: boolean; message: string }> {
    const port = (value: number | string): number => {
      if (typeof value === 'number') return value;
      const named = spec.ports?.find((x) => x.name === value)?.containerPort;
      return named ?? Number(value);
    };
    const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
    const host = p.httpGet?.host ?? p.tcpSocket?.host ?? this.ip;
    if (host !== this.ip) return { ok: false, message: `probe host ${host}: the local pod runner probes the pod's own IP only` };
    if (p.httpGet) {
      if ((p.httpGet.scheme ?? 'HTTP') !== 'HTTP') return { ok: false, message: 'HTTPS probes are not supported by the local pod runner' };
      const url = `http://${host}:${port(p.httpGet.port)}${p.httpGet.path ?? '/'}`;
      try {
        const headers = Object.fromEntries((p.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
        const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        await res.arrayBuffer().catch(() => undefined);
        return res.status >= 200 && res.status < 400 ? { ok: true, message: '' } : { ok: false, message: `HTTP probe failed with statuscode: ${res.status}` };
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        return { ok: false, message: `Get "${url}": ${cause?.code ?? (err as Error).name}` };
      }
    }
    if (p.tcpSocket) {
      const target = { host, port: port(p.tcpSocket.port) };
      return new Promise((resolve) => {
        const s = connect(target);
        const done = (ok: boolean, message: string): void => {
          s.destroy();
          resolve({ ok, message });
        };
        s.setTimeout(timeoutMs, () => done(false, `dial tcp ${host}:${target.port}: i/o timeout`));
        s.once('connect', () => done(true, ''));
        s.once('error', (err: NodeJS.ErrnoException) => done(false, `dial tcp ${host}:${target.port}: ${err.code ?? err.message}`));
      });
    }
    return { ok: false, message: 'only httpGet and tcpSocket probes are supported by the local pod runner' };
  }

  /** The process to start for a container, and its environment, with mount paths turned into host directories. */
  private async commandFor(run: ContainerRun): Promise<{ argv: [string, string[]]; env: Record<string, string> }> {
    const spec = run.spec;
    if (isRegistryImage(spec.image)) return this.imageCommand(run, spec.image);
    const mirror = mirrorOf(spec.image);
    if (mirror) return this.imageCommand(run, mirror);
    const image = localImage(spec.image, this.runner.programs);
    if (!image) throw new ConfigError('ErrImagePull', `Failed to pull image "${spec.image}": not an image the local pod runner can run (it runs ${KNOWN_IMAGES.join(', ')})`);
    const mounts: [string, string][] = (spec.volumeMounts ?? []).map((m) => {
      const hostDir = this.volumes.get(m.name);
      if (!hostDir) throw new ConfigError('CreateContainerConfigError', `volume mount ${m.name}: no such volume`);
      return [m.mountPath.replace(/\/$/, ''), hostDir];
    });
    const translate = (value: string): string => {
      for (const [path, hostDir] of mounts) if (value === path || value.startsWith(`${path}/`)) return hostDir + value.slice(path.length);
      return value;
    };
    const env = await this.containerEnv(spec, image.env);
    for (const [k, v] of Object.entries(env)) env[k] = translate(expandVars(v, env));
    const expand = (s: string): string => translate(expandVars(s, env));
    const command = spec.command ? spec.command.map(expand) : image.entrypoint;
    const args = spec.args ? spec.args.map(expand) : spec.command ? [] : image.cmd.map(translate);
    const [exe, ...rest] = [...command, ...args];
    if (!exe) throw new ConfigError('CreateContainerConfigError', `container ${spec.name} has no command`);
    const resolved = exe.includes('/') ? exe : image.path.map((p) => join(p, exe))[0];
    if (!resolved) throw new ConfigError('CreateContainerConfigError', `executable "${exe}" is not in image ${spec.image} as the local pod runner has it`);
    const base = { PATH: [...image.path, '/usr/local/bin', '/usr/bin', '/bin'].join(':'), HOME: this.dir, HOSTNAME: this.pod.metadata.name, LANG: 'C.UTF-8' };
    return { argv: [resolved, rest], env: { ...base, ...env } };
  }

  /** The env a container sees: the image's, the in-cluster variables, then the container's own (envFrom, env). */
  private async containerEnv(spec: ContainerSpec, base: Record<string, string>): Promise<Record<string, string>> {
    const env: Record<string, string> = { ...base };
    for (const from of spec.envFrom ?? []) {
      const ref = from.secretRef ?? from.configMapRef;
      if (!ref) continue;
      const data = await this.runner.readData(from.secretRef ? 'Secret' : 'ConfigMap', this.pod.metadata.namespace ?? 'default', ref.name, ref.optional ?? false);
      for (const [k, v] of Object.entries(data)) env[(from.prefix ?? '') + k] = v;
    }
    for (const e of spec.env ?? []) {
      if (e.value !== undefined || !e.valueFrom) env[e.name] = e.value ?? '';
      else if (e.valueFrom.fieldRef) env[e.name] = this.field(e.valueFrom.fieldRef.fieldPath);
      else {
        const ref = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
        if (!ref) continue;
        const data = await this.runner.readData(e.valueFrom.secretKeyRef ? 'Secret' : 'ConfigMap', this.pod.metadata.namespace ?? 'default', ref.name, ref.optional ?? false);
        const value = data[ref.key];
        if (value !== undefined) env[e.name] = value;
        else if (!ref.optional) throw new ConfigError('CreateContainerConfigError', `couldn't find key ${ref.key} in ${e.valueFrom.secretKeyRef ? 'Secret' : 'ConfigMap'} ${this.pod.metadata.namespace}/${ref.name}`);
      }
    }
    return env;
  }

  /**
   * A container of a local-registry image: pulled, then its entrypoint run under chroot as a container runtime
   * would (see the file's header), through a small shell script of this machine's that sets up the mounts in a
   * mount namespace of the container's own and then hands over to unshare (chroot, working directory, user).
   */
  private async imageCommand(run: ContainerRun, ref: string): Promise<{ argv: [string, string[]]; env: Record<string, string> }> {
    const spec = run.spec;
    let image;
    try {
      const had = this.runner.images.cachedRef(ref);
      if (!had) this.event('Normal', 'Pulling', `Pulling image "${spec.image}"`);
      image = await this.runner.images.pull(ref);
      if (!had) this.event('Normal', 'Pulled', `Successfully pulled image "${spec.image}" (${image.digest})`);
      run.imageID = `${repositoryOf(spec.image)}@${image.digest}`;
    } catch (err) {
      const mirrored = ref === spec.image ? '' : ` from the local registry's mirror ${ref} (\`npm run cluster:up -- --serve\` builds it)`;
      throw new ConfigError('ErrImagePull', `Failed to pull image "${spec.image}"${mirrored}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const c = image.config;
    const sc: SecurityContext = { ...this.pod.spec.securityContext, ...spec.securityContext };
    const [imageUser = '0', imageGroup] = (c.User ?? '').split(':');
    const numeric = (v: string | undefined): number | undefined => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
    const uid = sc.runAsUser ?? numeric(imageUser || '0');
    if (uid === undefined) throw new ConfigError('CreateContainerConfigError', `image ${spec.image} names its user "${imageUser}"; the local pod runner needs a numeric user (or runAsUser)`);
    if (sc.runAsNonRoot && uid === 0) throw new ConfigError('CreateContainerConfigError', 'container has runAsNonRoot and image will run as root');
    const gid = sc.runAsGroup ?? numeric(imageGroup) ?? 0;
    const imageEnv = Object.fromEntries((c.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const inCluster = { KUBERNETES_SERVICE_HOST: GATEWAY, KUBERNETES_SERVICE_PORT: String(API_PROXY_PORT), KUBERNETES_SERVICE_PORT_HTTPS: String(API_PROXY_PORT) };
    const env = await this.containerEnv(spec, { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...imageEnv, HOSTNAME: this.pod.metadata.name, ...inCluster });
    const expand = (s: string): string => expandVars(s, env);
    for (const [k, v] of Object.entries(env)) env[k] = expand(v);
    const command = spec.command ? spec.command.map(expand) : (c.Entrypoint ?? []);
    const args = spec.args ? spec.args.map(expand) : spec.command ? [] : (c.Cmd ?? []);
    if (command.length + args.length === 0) throw new ConfigError('CreateContainerConfigError', `container ${spec.name}: no command, and image ${spec.image} has no entrypoint`);
    // The mounts: the pod's volumes (and the service-account token's), each onto a directory made in the image's tree.
    const mounts: [string, string, boolean][] = (spec.volumeMounts ?? []).map((m) => {
      const hostDir = this.volumes.get(m.name);
      if (!hostDir) throw new ConfigError('CreateContainerConfigError', `volume mount ${m.name}: no such volume`);
      return [hostDir, m.mountPath.replace(/\/$/, ''), (m.readOnly ?? false) || this.imageVolumes.has(m.name)];
    });
    // The termination-message file, empty at each start, writable by the container's user.
    const termination = this.terminationFile(run);
    mkdirSync(dirname(termination), { recursive: true });
    writeFileSync(termination, '');
    chmodSync(termination, 0o666);
    const terminationPath = spec.terminationMessagePath ?? '/dev/termination-log';
    const dirs = mounts.map(([, p]) => p.slice(1)).filter((p) => p !== 'dev' && !p.startsWith('dev/'));
    for (const path of ['proc', 'dev', ...dirs]) mkdirSync(join(image.rootfs, path), { recursive: true });
    if (!terminationPath.startsWith('/dev/')) mkdirSync(join(image.rootfs, dirname(terminationPath)), { recursive: true });
    mounts.push([termination, terminationPath, false]);
    const target = join(this.dir, 'rootfs', spec.name);
    mkdirSync(target, { recursive: true });
    // A writable root is the container's own layer over the shared tree (overlayfs), new at each start, as a
    // container runtime gives it: what one container writes, no other container of the image sees.
    const writable = join(this.dir, 'rootfs-rw', spec.name);
    rmSync(writable, { recursive: true, force: true });
    for (const d of ['upper', 'work']) mkdirSync(join(writable, d), { recursive: true });
    const script = mountScript(this.runner.tools);
    const params = [image.rootfs, target, sc.readOnlyRootFilesystem ? 'ro' : 'rw', join(writable, 'upper'), join(writable, 'work'), String(uid), String(gid), c.WorkingDir || '/', String(mounts.length), ...mounts.flatMap(([h, p, ro]) => [h, p, ro ? 'ro' : 'rw'])];
    return { argv: [this.runner.tools.unshare, ['--mount', '--propagation', 'private', '--', this.runner.tools.sh, '-c', script, 'container', ...params, ...command, ...args]], env };
  }

  private field(path: string): string {
    const m = this.pod.metadata;
    const fields: Record<string, string> = {
      'metadata.name': m.name,
      'metadata.namespace': m.namespace ?? '',
      'metadata.uid': m.uid ?? '',
      'spec.nodeName': this.pod.spec.nodeName ?? '',
      'status.podIP': this.ip,
      'status.hostIP': GATEWAY,
    };
    const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
    if (label) return (label[1] === 'labels' ? m.labels : m.annotations)?.[label[2] ?? ''] ?? '';
    return fields[path] ?? '';
  }

  /** SIGTERM to the container's process group; SIGKILL after the grace period. */
  private async terminate(c: ContainerRun, graceMs: number): Promise<void> {
    const proc = c.proc;
    if (!proc?.pid || !c.exited) return;
    signalGroup(proc.pid, 'SIGTERM');
    const exited = await Promise.race([c.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!exited) {
      signalGroup(proc.pid, 'SIGKILL');
      await c.exited;
    }
  }

  /** Stops everything the pod runs and gives back its network; the pod object is the caller's to delete. */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopped.abort();
    const running = [...this.init, ...this.main].filter((c) => c.proc);
    for (const c of running) this.event('Normal', 'Killing', `Stopping container ${c.spec.name}`);
    await Promise.all(running.map((c) => this.terminate(c, graceMs)));
    await this.releaseNetwork();
    await this.publishing?.catch(() => undefined);
    rmSync(join(this.dir, 'volumes'), { recursive: true, force: true });
  }

  /** Writes the pod's status; calls while a write is in flight coalesce into one more write after it. */
  publish(): void {
    if (this.publishing) {
      this.publishAgain = true;
      return;
    }
    this.publishing = (async () => {
      do {
        this.publishAgain = false;
        try {
          await this.runner.client.mergePatch(Resources.Pod, this.pod.metadata.namespace, this.pod.metadata.name, { status: this.status() }, 'status');
        } catch (err) {
          if (!isNotFound(err)) this.runner.log(`status of ${this.pod.metadata.namespace}/${this.pod.metadata.name}: ${String(err)}`);
        }
      } while (this.publishAgain && !this.stopping);
    })().finally(() => (this.publishing = undefined));
  }

  private condition(type: string, ok: boolean): Obj {
    const status = ok ? 'True' : 'False';
    const prev = this.transitions.get(type);
    const at = prev && prev.status === status ? prev.at : now();
    this.transitions.set(type, { status, at });
    return { type, status, lastProbeTime: null, lastTransitionTime: at };
  }

  private status(): Obj {
    const containersReady = this.main.every((c) => c.ready);
    const running = this.initialized && this.main.some((c) => 'running' in c.state);
    const phase = this.finished ?? (running || (this.initialized && this.main.some((c) => c.restartCount > 0)) ? 'Running' : 'Pending');
    return {
      phase,
      hostIP: GATEWAY,
      hostIPs: [{ ip: GATEWAY }],
      podIP: this.ip,
      podIPs: [{ ip: this.ip }],
      startTime: this.startTime,
      conditions: [
        this.condition('PodReadyToStartContainers', this.net !== undefined),
        this.condition('Initialized', this.initialized),
        this.condition('ContainersReady', containersReady),
        this.condition('Ready', containersReady),
        this.condition('PodScheduled', true),
      ],
      ...(this.init.length ? { initContainerStatuses: this.init.map((c) => c.status()) } : {}),
      containerStatuses: this.main.map((c) => c.status()),
    };
  }
}

class ConfigError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** `$(VAR)` references to the container's environment, as the kubelet expands them in env, command and args. */
function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
}

interface HostTools {
  unshare: string;
  sh: string;
  mount: string;
  setpriv: string;
}

/**
 * Run by the host's sh inside a new mount namespace, with positional parameters: the image's tree, the mount point,
 * ro|rw (readOnlyRootFilesystem), the writable layer's upper and work directories, uid, gid, working directory, the
 * number of volume mounts, that many triples of host directory, path and ro|rw, then the container's command. The
 * image's tree is bound onto the mount point (read-only after the rest is mounted, so the volumes' mount points
 * exist) or, for a writable root, mounted as the lower layer of an overlay whose upper layer is the container's;
 * then /proc, a /dev of a few devices, the volumes; unshare changes root and directory and drops to the user,
 * after setpriv forbids new privileges.
 */
function mountScript(t: HostTools): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const m = q(t.mount);
  return [
    'set -eu',
    'img=$1 r=$2 ro=$3 up=$4 wk=$5 uid=$6 gid=$7 wd=$8 n=$9; shift 9',
    `if [ "$ro" = ro ]; then ${m} --bind "$img" "$r"; else ${m} -t overlay overlay -o "lowerdir=$img,upperdir=$up,workdir=$wk" "$r"; fi`,
    `${m} -t proc -o nosuid,nodev,noexec proc "$r/proc"`,
    `${m} -t tmpfs -o mode=755,size=64k,nosuid,noexec tmpfs "$r/dev"`,
    `for d in null zero full random urandom; do : > "$r/dev/$d"; ${m} --bind "/dev/$d" "$r/dev/$d"; done`,
    // As a container runtime makes /dev: the standard links, and /dev/shm (POSIX semaphores and shared memory:
    // Python's multiprocessing locks need it).
    'ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"',
    `mkdir "$r/dev/shm"; ${m} -t tmpfs -o mode=1777,size=64m,nosuid,nodev shm "$r/dev/shm"`,
    'while [ "$n" -gt 0 ]; do',
    '  if [ -d "$1" ]; then mkdir -p "$r$2"; elif [ ! -e "$r$2" ]; then : > "$r$2"; fi',
    `  ${m} --bind "$1" "$r$2"`,
    `  if [ "$3" = ro ]; then ${m} -o remount,bind,ro "$r$2"; fi`,
    '  shift 3; n=$((n - 1))',
    'done',
    `if [ "$ro" = ro ]; then ${m} -o remount,bind,ro "$r"; fi`,
    `exec ${q(t.setpriv)} --no-new-privs --clear-groups ${q(t.unshare)} --root="$r" --wd="$wd" --setgid "$gid" --setuid "$uid" -- "$@"`,
  ].join('\n');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };
const signalNumber = (s: NodeJS.Signals): number => SIGNALS[s] ?? 0;

/**
 * A process's output as a container runtime writes it (the CRI log format that `kubectl logs` reads through the
 * node): `<RFC 3339 time> <stream> <F|P> <text>` per line, P for a line that goes on in the next record.
 */
function criLog(fd: number, stream: 'stdout' | 'stderr'): { write: (chunk: Buffer) => void; end: () => void } {
  let pending = '';
  const record = (text: string, tag: 'F' | 'P'): void => {
    writeSync(fd, `${new Date().toISOString()} ${stream} ${tag} ${text}\n`);
  };
  return {
    write: (chunk) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) record(line, 'F');
      if (pending.length > 16 * 1024) {
        record(pending, 'P');
        pending = '';
      }
    },
    end: () => {
      if (pending) record(pending, 'F');
      pending = '';
    },
  };
}

/** The last lines a container wrote (its termination message with FallbackToLogsOnError), without the log's framing. */
function lastLines(file: string, lines = 20, bytes = 2048): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => l.split(' ').slice(3).join(' '));
    return text.slice(-lines).join('\n').slice(-bytes);
  } catch {
    return '';
  }
}

/** The machine-wide lock of the pod runner: one data plane at a time (network namespaces, the pod bridge). */
export const POD_RUNNER_LOCK = '/run/slipway/pod-runner.pid';

/** The pid of a live process holding the pod runner's lock, if any. */
export function podRunnerHolder(file = POD_RUNNER_LOCK): number | undefined {
  let holder: number;
  try {
    holder = Number(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!(holder > 0) || holder === process.pid) return undefined;
  try {
    process.kill(holder, 0);
    return holder;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw err;
  }
}

function takeMachineLock(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const holder = podRunnerHolder(file);
  if (holder !== undefined) throw new Error(`another local pod runner (pid ${holder}) is running on this machine: one data plane at a time (npm run cluster:down stops the other)`);
  writeFileSync(file, String(process.pid));
}

/** Where the runner unpacks images by default: under Slipway's cache, kept across runs. */
export const podImagesDir = (): string => join(cacheRoot(), 'pod-runner', 'images');

export interface PodRunnerOptions {
  client: KubeClient;
  dir: string;
  /** Where pulled images are unpacked, by digest (default: under Slipway's cache; a disk, not tmpfs: trees are hundreds of MiB). */
  imageDir?: string;
  programs: LocalPrograms;
  log?: (line: string) => void;
}

export class PodRunner {
  readonly client: KubeClient;
  readonly dir: string;
  readonly programs: LocalPrograms;
  readonly events: EventRecorder;
  readonly log: (line: string) => void;
  readonly images: ImageStore;
  /** This machine's programs that run a container of an image (absolute paths: the pod's PATH is the image's). */
  readonly tools: HostTools;
  private readonly workers = new Map<string, PodWorker>();
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly pods: Informer<Pod>;
  private proxy: Server | undefined;
  private egress: Server | undefined;
  /** One pod runner per machine (whatever its cache directory): two would hand out the same addresses on the one bridge. */
  private readonly lock = POD_RUNNER_LOCK;

  constructor(opts: PodRunnerOptions) {
    this.client = opts.client;
    this.dir = opts.dir;
    this.programs = opts.programs;
    this.log = opts.log ?? (() => {});
    this.images = new ImageStore(opts.imageDir ?? podImagesDir());
    this.tools = { unshare: hostProgram('unshare'), sh: hostProgram('sh'), mount: hostProgram('mount'), setpriv: hostProgram('setpriv') };
    this.events = new EventRecorder(opts.client, { component: 'slipway-pod-runner', instance: 'local', onError: (err) => this.log(`event: ${String(err)}`) });
    this.pods = new Informer<Pod>(opts.client, Resources.Pod);
    this.pods.on((e) => {
      if (e.type === 'DELETED') {
        const uid = e.obj.metadata.uid ?? '';
        void this.forget(e.obj, 0).then(() => this.stopping.delete(uid));
      }
      else this.sync(e.obj);
    });
  }

  async start(): Promise<void> {
    await assertPodRangeIsLocal();
    takeMachineLock(this.lock);
    mkdirSync(this.dir, { recursive: true });
    // Processes do not outlive a runner (parent-death signal): the namespaces an earlier runner of this cluster
    // left behind go (their pods are started again below).
    const existing = new Set(await podNamespaces());
    for (const entry of readdirSync(this.dir)) {
      const ns = namespaceOf(entry.split('_').pop() ?? '');
      if (!existing.has(ns)) continue;
      await killNamespace(ns);
      await execFileAsync('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
    await this.startApiProxy();
    this.egress = await startEgressProxy({ host: GATEWAY, log: (l) => this.log(l) });
    this.pods.start();
    await this.pods.synced;
  }

  /**
   * The way in for pods to the API server, which listens on the host's loopback where no pod can reach: a TCP
   * forwarder on the bridge's address (pods' KUBERNETES_SERVICE_HOST). TLS goes through untouched: the serving
   * certificate names this address, and each pod authenticates with its own service-account token.
   */
  private async startApiProxy(): Promise<void> {
    const upstream = new URL(this.client.server);
    const port = Number(upstream.port || 443);
    const server = createServer((down) => {
      const up = connect({ host: upstream.hostname.replace(/^\[|\]$/g, ''), port });
      const close = (): void => {
        down.destroy();
        up.destroy();
      };
      down.on('error', close);
      up.on('error', close);
      down.pipe(up).pipe(down);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(API_PROXY_PORT, GATEWAY, () => resolve());
    });
    this.proxy = server;
  }

  async stop(graceMs = 5000): Promise<void> {
    await this.pods.stop();
    this.proxy?.close();
    this.egress?.close();
    await Promise.all([...this.workers.values()].map((w) => w.stop(graceMs)));
    await Promise.all(this.stopping.values());
    this.workers.clear();
    rmSync(this.lock, { force: true });
  }

  /**
   * Tells KWOK, which answers the API server's log requests for the nodes, where each container's output is: a
   * `Logs` object per pod (owned by the pod, so it goes with it). Best effort: without it only `kubectl logs` is lost.
   */
  async serveLogs(pod: Pod, containers: string[], dir: string): Promise<void> {
    const namespace = pod.metadata.namespace ?? 'default';
    const body = {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'Logs',
      metadata: { name: pod.metadata.name, namespace, ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid ?? '' }] },
      spec: { logs: containers.map((c) => ({ containers: [c], logsFile: join(dir, `${c}.log`), previousLogsFile: join(dir, `${c}.previous.log`), follow: true })) },
    };
    await this.client
      .request({ method: 'POST', path: `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${encodeURIComponent(namespace)}/logs`, body })
      .catch((err: unknown) => {
        if (classify(err) !== 'Conflict') this.log(`logs of ${namespace}/${pod.metadata.name}: ${String(err)}`);
      });
  }

  /** A bound service-account token, as the kubelet requests one for a projected volume. */
  async token(namespace: string, serviceAccount: string, expirationSeconds: number, audience: string | undefined): Promise<string> {
    const res = await this.client.request<{ status: { token: string } }>({
      method: 'POST',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: Math.max(600, expirationSeconds), ...(audience ? { audiences: [audience] } : {}) } },
    });
    return res.status.token;
  }

  async readData(kind: 'Secret' | 'ConfigMap', namespace: string, name: string, optional: boolean): Promise<Record<string, string>> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/${kind === 'Secret' ? 'secrets' : 'configmaps'}/${encodeURIComponent(name)}`;
    try {
      const obj = await this.client.request<{ data?: Record<string, string> } & KubeObject>({ method: 'GET', path });
      const data = obj.data ?? {};
      return kind === 'Secret' ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : data;
    } catch (err) {
      if (isNotFound(err)) {
        if (optional) return {};
        throw new ConfigError('CreateContainerConfigError', `${kind.toLowerCase()} "${name}" not found`);
      }
      throw err;
    }
  }

  private sync(pod: Pod): void {
    const uid = pod.metadata.uid ?? '';
    if (!pod.spec.nodeName || !isRunnerPod(pod)) return;
    // A pod that ran to its end (a Job's) is not run again, by this runner or the next.
    if ((pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') && !this.workers.has(uid) && !pod.metadata.deletionTimestamp) return;
    const worker = this.workers.get(uid);
    if (pod.metadata.deletionTimestamp) {
      const grace = (pod.metadata as { deletionGracePeriodSeconds?: number }).deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
      void this.forget(pod, grace * 1000, true);
      return;
    }
    if (worker) {
      worker.pod = pod;
      return;
    }
    if (this.stopping.has(uid)) return;
    const ip = this.allocate(pod);
    if (!ip) {
      this.log(`no free address for ${pod.metadata.namespace}/${pod.metadata.name}`);
      return;
    }
    const w = new PodWorker(this, pod, ip);
    this.workers.set(uid, w);
    this.log(`running ${pod.metadata.namespace}/${pod.metadata.name} at ${ip}`);
    void w.run();
  }

  /** Stops a pod's processes; for a pod being deleted, then removes it for good (grace 0), as a kubelet does. */
  private forget(pod: Pod, graceMs: number, deleteAfter = false): Promise<void> {
    const uid = pod.metadata.uid ?? '';
    const pending = this.stopping.get(uid);
    if (pending) return pending;
    const w = this.workers.get(uid);
    const done = (async () => {
      if (w) await w.stop(graceMs);
      this.workers.delete(uid);
      if (deleteAfter) {
        await this.client
          .request({
            method: 'DELETE',
            path: `/api/v1/namespaces/${encodeURIComponent(pod.metadata.namespace ?? 'default')}/pods/${encodeURIComponent(pod.metadata.name)}`,
            body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid } },
          })
          .catch((err: unknown) => {
            if (!isNotFound(err)) this.log(`delete ${pod.metadata.namespace}/${pod.metadata.name}: ${String(err)}`);
          });
      }
      if (w) this.log(`stopped ${pod.metadata.namespace}/${pod.metadata.name}, freed ${w.ip}`);
    })().finally(() => {
      // A uid is never reused, so remembering it until the pod is gone from the cache is enough.
      if (!this.pods.store.list().some((p) => p.metadata.uid === uid)) this.stopping.delete(uid);
    });
    this.stopping.set(uid, done);
    return done;
  }

  /** The pod's address: the one it had (a restarted runner), or the lowest free one in the runner's range. */
  private allocate(pod: Pod): string | undefined {
    const used = new Set([...this.workers.values()].map((w) => w.ip));
    const had = pod.status?.podIP;
    const idx = had ? ipIndex(had) : undefined;
    if (had && idx !== undefined && idx >= FIRST && idx <= LAST && !used.has(had)) return had;
    for (let n = FIRST; n <= LAST; n++) {
      if ((n & 255) === 0 || (n & 255) === 255) continue;
      const ip = ipOf(n);
      if (!used.has(ip)) return ip;
    }
    return undefined;
  }

  /** For tests: the addresses in use. */
  addresses(): string[] {
    return [...this.workers.values()].map((w) => w.ip);
  }
}
