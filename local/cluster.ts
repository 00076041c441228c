// The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK started on
// free loopback ports, with fake nodes that KWOK keeps Ready and whose pods it marks Running (and Job pods
// Succeeded). Used by `npm run cluster:up`, by the integration tests' global setup, and by the demo.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { eventually } from './eventually.ts';
import { kubeconfigYaml, makePki, type Pki } from './pki.ts';
import { freePorts, startComponent, stopProcess, type ComponentRecord, type Started } from './processes.ts';
import { startImageRegistry, type ImageRegistryInfo } from './image-registry.ts';
import { cacheRoot, ensureBinaries, KUBE_VERSION, moduleDir } from './toolchain.ts';
import { runnerPodSelectorKey } from './images.ts';
import { KWOK_POD_CIDR, podImagesDir } from './pod-runner.ts';
import { ensureBridge } from './podnet.ts';
import { startGateway, type GatewayInfo } from './gateway.ts';
import { startPrometheus, type PrometheusInfo } from './prometheus.ts';
import { startRegistry, type RegistryInfo } from './registry.ts';
import { ImageStore } from './image-store.ts';
import { ensureMlserverImage } from './mlserver-image.ts';
import { ensurePythonEnv } from './python.ts';

const execFileAsync = promisify(execFile);

export const GATEWAY_API = { module: 'sigs.k8s.io/gateway-api', version: 'v1.6.3' } as const;
export const ISTIO_API = { module: 'istio.io/api', version: 'v1.31.4' } as const;
const KWOK = { module: 'sigs.k8s.io/kwok', version: 'v0.8.0' } as const;
const ISTIO_CRDS = ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io'];
/** Upstream KWOK stages (kwokctl's "fast" defaults): nodes Ready with lease heartbeats, pods Ready, Job pods done. */
const KWOK_STAGES = [
  'kustomize/stage/node/fast/node-initialize.yaml',
  'kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
  'kustomize/stage/pod/fast/pod-ready.yaml',
  'kustomize/stage/pod/fast/pod-complete.yaml',
  'kustomize/stage/pod/fast/pod-delete.yaml',
];
/**
 * Pods whose first container runs this image never become ready (KWOK leaves them Pending), so tests can show
 * what happens to an image that never starts.
 */
export const NEVER_READY_IMAGE = 'registry.invalid/never-ready:1';

function kwokStage(text: string): string {
  const stage = yaml.load(text) as { metadata: { name: string }; spec: { selector: { matchExpressions: object[] } } };
  if (stage.metadata.name === 'pod-ready') {
    stage.spec.selector.matchExpressions.push({ key: '.spec.containers.[0].image', operator: 'NotIn', values: [NEVER_READY_IMAGE] });
  }
  if (stage.metadata.name.startsWith('pod-')) {
    // Pods of runtime images are the pod runner's: KWOK neither fakes them Ready nor deletes them under it.
    stage.spec.selector.matchExpressions.push({ key: runnerPodSelectorKey(), operator: 'NotIn', values: ['true'] });
  }
  return yaml.dump(stage, { lineWidth: -1 });
}

// Cluster addresses are API data only: nothing on this machine routes to them and nothing may connect to them.
const SERVICE_CIDR = '10.96.0.0/16';
const POD_CIDR = '10.244.0.0/16';

export interface ClusterOptions {
  /** Working directory: certificates, kubeconfig, etcd data, logs, state. Put it on tmpfs for speed. */
  dir: string;
  /** Components outlive this process (cluster:up) instead of dying with it (tests). */
  persistent?: boolean;
  nodes?: number;
  /** Install the Gateway API and Istio CRDs. */
  upstreamCrds?: boolean;
  /** Keep the API server's audit log of writes (default true; benchmarks turn it off to measure Slipway alone). */
  audit?: boolean;
  /**
   * The data plane: the pod bridge and the pod runner, which runs pods of runtime images (MLServer) as real
   * processes. Needs root (network namespaces). Without it, such pods stay Pending: nothing runs them.
   */
  serve?: boolean;
  log?: (line: string) => void;
}

export interface ClusterState {
  dir: string;
  server: string;
  kubeconfig: string;
  binDir: string;
  components: ComponentRecord[];
  startedAt: string;
  readySeconds: number;
  /** With `serve`: the Gateway that routes to serving pods, and the Prometheus that scrapes them. */
  gateway?: GatewayInfo;
  prometheus?: PrometheusInfo;
  /** With `serve`: the local registry's mirror of the MLServer image, by digest (local/mlserver-image.ts). */
  mlserverImage?: string;
  /** With `serve`: the MLflow tracking server (model registry), reachable from the host and from pods. */
  registry?: RegistryInfo;
  /** The local image registry (data plane): the host to name images by, and its URL. */
  imageRegistry?: ImageRegistryInfo;
  /** A second one that wants credentials (its one user and password). */
  authImageRegistry?: ImageRegistryInfo;
}

export interface Cluster extends ClusterState {
  kubectl: (args: string[], input?: string) => Promise<string>;
  stop: () => Promise<void>;
}

/** Where `cluster:up` keeps the cluster that outlives it. */
export function defaultClusterDir(): string {
  return process.env.SLIPWAY_CLUSTER_DIR ?? join(cacheRoot(), 'cluster', 'local');
}

export function stateFile(dir: string): string {
  return join(dir, 'state.json');
}

export function readState(dir: string): ClusterState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

function get(url: string, tls?: { ca?: Buffer; insecure?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const opts = { timeout: 5000, ...(tls?.ca ? { ca: tls.ca } : {}), ...(tls?.insecure ? { rejectUnauthorized: false } : {}) };
    const req = (url.startsWith('https:') ? request : httpRequest)(url, opts, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function kubectlRunner(binDir: string, kubeconfig: string) {
  return async (args: string[], input?: string): Promise<string> => {
    const child = execFileAsync(join(binDir, 'kubectl'), args, {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      maxBuffer: 64 * 1024 * 1024,
    });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
    }
  };
}

function nodeManifest(name: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
    },
    spec: { providerID: `kwok://${name}` },
    status: {
      allocatable: { cpu: '1000', memory: '4Ti', pods: '1000' },
      capacity: { cpu: '1000', memory: '4Ti', pods: '1000' },
    },
  };
}

/** The upstream CRDs that traffic routing uses, read from the Go module cache (never committed). */
export function upstreamCrdDocuments(): string {
  const gw = moduleDir(GATEWAY_API.module, GATEWAY_API.version);
  const docs: string[] = [];
  // BackendTLSPolicy too: Traefik's Gateway provider lists it and does not start without it.
  for (const kind of ['gatewayclasses', 'gateways', 'httproutes', 'grpcroutes', 'referencegrants', 'backendtlspolicies']) {
    docs.push(readFileSync(join(gw, 'config/crd/standard', `gateway.networking.k8s.io_${kind}.yaml`), 'utf8'));
  }
  const istio = moduleDir(ISTIO_API.module, ISTIO_API.version);
  const all = yaml.loadAll(readFileSync(join(istio, 'kubernetes/customresourcedefinitions.gen.yaml'), 'utf8'));
  for (const doc of all) {
    const name = (doc as { metadata?: { name?: string } } | null)?.metadata?.name;
    if (name && ISTIO_CRDS.includes(name)) docs.push(yaml.dump(doc, { lineWidth: -1, noRefs: true }));
  }
  if (docs.length !== 8) throw new Error(`expected 8 upstream CRDs, found ${docs.length}`);
  return docs.map((d) => d.replace(/^---\s*\n/, '')).join('\n---\n');
}

/**
 * The API server's audit policy: every write to what Slipway reads or writes (its resources, the children, Events,
 * leader leases), at Metadata level (who, what, when, with which User-Agent; no bodies). Reads and the nodes'
 * own heartbeats are left out. Tests use it to tell which controller replica wrote what, and when the API server
 * took it.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: None
    namespaces: [kube-node-lease, kube-system]
  - level: Metadata
    resources:
      - group: slipway.dev
      - group: apps
        resources: [deployments]
      - group: ""
        resources: [services, events]
      - group: batch
        resources: [cronjobs]
      - group: autoscaling
        resources: [horizontalpodautoscalers]
      - group: coordination.k8s.io
        resources: [leases]
  - level: None
`;

/** Where a cluster's API server writes its audit log (JSON lines). */
export const auditLogOf = (dir: string): string => join(dir, 'logs', 'audit.log');

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const persistent = opts.persistent ?? false;
  const { binDir } = await ensureBinaries(log);
  const bin = (name: string): string => join(binDir, name);

  rmSync(opts.dir, { recursive: true, force: true });
  const logs = join(opts.dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const auditPolicy = join(opts.dir, 'audit-policy.yaml');
  writeFileSync(auditPolicy, AUDIT_POLICY);
  const pki: Pki = makePki(opts.dir);
  const ca = readFileSync(pki.caCert);
  const [etcdPort, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = join(opts.dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, pki, readFileSync), { mode: 0o600 });

  const started: Started[] = [];
  const state: ClusterState = { dir: opts.dir, server, kubeconfig, binDir, components: [], startedAt: new Date().toISOString(), readySeconds: 0 };
  const saveState = (): void => {
    state.components = started.map(({ name, pid, bin, log, startTime }) => ({ name, pid, bin, log, startTime }));
    writeFileSync(stateFile(opts.dir), JSON.stringify(state, null, 2));
  };
  const start = (name: string, args: string[], program = bin(name), env?: Record<string, string>): Started => {
    const c = startComponent(name, program, args, logs, persistent, env);
    started.push(c);
    saveState();
    return c;
  };
  const stop = (): Promise<void> => stopComponents(opts.dir, started);
  const kubectl = kubectlRunner(binDir, kubeconfig);
  // Ctrl-C while starting: persistent components are detached from us, so stop them before leaving.
  const onSignal = (signal: NodeJS.Signals): void => {
    void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const startDataPlane = async (): Promise<void> => {
    if (process.getuid?.() !== 0) throw new Error('the local data plane (serve) needs root: pods get network namespaces and a bridge');
    await ensureBridge();
    const runner = start('pod-runner', [join(import.meta.dirname, 'pod-runner-main.ts'), `--kubeconfig=${kubeconfig}`, `--dir=${join(opts.dir, 'pods')}`], process.execPath);
    await eventually('the pod runner', () => readFileSync(runner.log, 'utf8').includes('pod runner ready'), { abort: runner.exited, timeoutMs: 60_000, intervalMs: 100 });
    state.registry = await startRegistry({
      start,
      dir: opts.dir,
      pythonBin: await ensurePythonEnv(log, 'registry'),
    });
    const registryBin = (await ensureBinaries(log, 'registry')).binDir;
    state.imageRegistry = await startImageRegistry({ start, dir: opts.dir, binDir: registryBin });
    state.authImageRegistry = await startImageRegistry({ start, dir: opts.dir, binDir: registryBin }, { auth: true });
    // MLServer's image, mirrored in the registry (built by an environment build Job the first time), beside the rest.
    const imageRegistry = state.imageRegistry;
    const mlserver = ensureMlserverImage(kubectl, imageRegistry.host, log).then(async (ref) => {
      state.mlserverImage = ref;
      // Unpacked now into the runner's image store, so the first MLServer pod starts as fast as the next.
      await new ImageStore(podImagesDir()).pull(ref);
    });
    mlserver.catch(() => {});
    const tools = await ensureBinaries(log, 'dataplane');
    state.gateway = await startGateway({
      kubectl,
      start,
      server,
      caCert: pki.caCert,
      binDir: tools.binDir,
      ports: (await freePorts(2)) as [number, number],
    });
    state.prometheus = await startPrometheus({
      start,
      binDir: tools.binDir,
      dir: opts.dir,
      port: ((await freePorts(1)) as [number])[0],
      config: { server, caCert: pki.caCert, clientCert: pki.adminCert, clientKey: pki.adminKey, gatewayMetrics: state.gateway.metricsUrl },
    });
    await mlserver;
    saveState();
  };

  try {
    const etcd = start('etcd', [
      '--name=default',
      `--data-dir=${join(opts.dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync=true',
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=5m',
      '--quota-backend-bytes=8589934592',
      '--log-level=warn',
    ]);
    await eventually('etcd /health', async () => {
      const r = await get(`http://127.0.0.1:${etcdPort}/health`);
      return r.status === 200 && (JSON.parse(r.body) as { health?: string }).health === 'true';
    }, { abort: etcd.exited, timeoutMs: 30_000, intervalMs: 100 });

    const apiserver = start('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--etcd-prefix=/registry',
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.adminCert}`,
      `--tls-private-key-file=${pki.adminKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.adminKey}`,
      `--service-account-signing-key-file=${pki.adminKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      // The endpoint reconciler would try to publish 127.0.0.1 as the `kubernetes` Service's endpoint.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--authorization-mode=Node,RBAC',
      // `kubectl logs` goes through the node's server, which KWOK runs on loopback.
      `--kubelet-client-certificate=${pki.adminCert}`,
      `--kubelet-client-key=${pki.adminKey}`,
      '--profiling=false',
      ...(opts.audit === false
        ? []
        : [
            `--audit-policy-file=${auditPolicy}`,
            `--audit-log-path=${auditLogOf(opts.dir)}`,
            '--audit-log-format=json',
            '--audit-log-mode=batch',
            '--audit-log-batch-max-wait=200ms',
            '--audit-log-maxsize=200',
            '--audit-log-maxbackup=1',
          ]),
    ]);
    await eventually('kube-apiserver /readyz', async () => {
      const r = await get(`${server}/readyz`, { ca });
      return r.status === 200;
    }, { abort: apiserver.exited, timeoutMs: 60_000, intervalMs: 100 });

    const kcm = start('kube-controller-manager', [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
      `--root-ca-file=${pki.caCert}`,
      `--service-account-private-key-file=${pki.adminKey}`,
      `--cluster-cidr=${POD_CIDR}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
      '--concurrent-gc-syncs=40',
      // HPAs act within seconds instead of the default 15 s, so tests can watch one act.
      '--horizontal-pod-autoscaler-sync-period=2s',
    ]);
    const schedConfig = join(opts.dir, 'scheduler.yaml');
    writeFileSync(schedConfig, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: ${JSON.stringify(kubeconfig)}, qps: 200, burst: 400}
leaderElection: {leaderElect: false}
`);
    const scheduler = start('kube-scheduler', [
      `--config=${schedConfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
    ]);

    const kwokDir = moduleDir(KWOK.module, KWOK.version);
    const kwokConfig = join(opts.dir, 'kwok.yaml');
    writeFileSync(kwokConfig, KWOK_STAGES.map((p) => kwokStage(readFileSync(join(kwokDir, p), 'utf8'))).join('\n---\n'));
    if (opts.serve) {
      // The pod runner tells KWOK where its containers' output is (Logs objects), so `kubectl logs` works.
      await kubectl(['apply', '--server-side', '--field-manager=slipway-test-cluster', '-f', join(kwokDir, 'kustomize/crd/bases/kwok.x-k8s.io_logs.yaml')]);
      await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/logs.kwok.x-k8s.io']);
    }
    const kwok = start('kwok', [
      ...(opts.serve ? ['--enable-crds=Logs'] : []),
      `--kubeconfig=${kubeconfig}`,
      `--config=${kwokConfig}`,
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--node-ip=127.0.0.1',
      '--node-name=localhost',
      `--node-port=${kwokPort}`,
      `--server-address=127.0.0.1:${kwokPort}`,
      `--tls-cert-file=${pki.adminCert}`,
      `--tls-private-key-file=${pki.adminKey}`,
      // The lower half of the pod range; the pod runner gives its pods addresses from the upper half.
      `--cidr=${KWOK_POD_CIDR}`,
      '--node-lease-duration-seconds=40',
    ]);
    const anyExit = Promise.race([kcm.exited, scheduler.exited, kwok.exited, apiserver.exited, etcd.exited]);
    anyExit.catch(() => {});

    for (const [name, port] of [['kube-controller-manager', kcmPort], ['kube-scheduler', schedPort]] as const) {
      await eventually(`${name} /healthz`, async () => {
        const r = await get(`https://127.0.0.1:${port}/healthz`, { insecure: true });
        return r.status === 200;
      }, { abort: anyExit, timeoutMs: 60_000, intervalMs: 100 });
    }

    const nodes = Array.from({ length: opts.nodes ?? 3 }, (_, i) => nodeManifest(`kwok-node-${i}`));
    await kubectl(['apply', '--server-side', '--field-manager=slipway-test-cluster', '-f', '-'], nodes.map((n) => JSON.stringify(n)).join('\n'));
    const tasks: Promise<unknown>[] = [
      eventually('every node Ready', async () => {
        const out = await kubectl(['get', 'nodes', '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}']);
        const lines = out.trim().split('\n').filter(Boolean);
        return lines.length === nodes.length && lines.every((s) => s === 'True');
      }, { abort: anyExit, timeoutMs: 60_000 }),
      // The ServiceAccount controller runs: pods can be admitted in the default namespace.
      eventually('the default ServiceAccount', () => kubectl(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name']), { abort: anyExit, timeoutMs: 60_000 }),
    ];
    const crds = opts.upstreamCrds ?? true
      ? (async () => {
          await kubectl(['apply', '--server-side', '--field-manager=slipway-test-cluster', '-f', '-'], upstreamCrdDocuments());
          await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/httproutes.gateway.networking.k8s.io', 'crd/gateways.gateway.networking.k8s.io', 'crd/backendtlspolicies.gateway.networking.k8s.io', ...ISTIO_CRDS.map((n) => `crd/${n}`)]);
        })()
      : Promise.resolve();
    tasks.push(crds);
    // The data plane's gateway needs the Gateway API CRDs.
    if (opts.serve) tasks.push(crds.then(startDataPlane));
    await Promise.all(tasks);
    state.readySeconds = (Date.now() - t0) / 1000;
    saveState();
    log(`local control plane ${KUBE_VERSION} ready at ${server} in ${state.readySeconds.toFixed(1)} s`);
    return { ...state, kubectl, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Stops a cluster started by another process, from its state file. */
export async function stopClusterAt(dir: string): Promise<boolean> {
  const state = readState(dir);
  if (!state) return false;
  await stopComponents(dir, state.components);
  return true;
}

/** Reverse start order (clients before the API server, the API server before etcd); then etcd's data goes. */
async function stopComponents(dir: string, components: ComponentRecord[]): Promise<void> {
  for (const c of [...components].reverse()) await stopProcess(c);
  rmSync(join(dir, 'etcd'), { recursive: true, force: true });
  rmSync(stateFile(dir), { force: true });
}

const CRDS_DIR = join(import.meta.dirname, '..', 'crds');

/** Slipway's own CRDs, from crds/, as a platform team installs them; returns once they are Established. */
export async function installSlipwayCrds(kubectl: Cluster['kubectl']): Promise<void> {
  await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=slipway-install', '-k', CRDS_DIR]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=slipway']);
}
