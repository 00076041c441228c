// The controller process: loads the kube context, runs the ModelDeployment controller under leader election,
// serves health and metrics, and shuts down cleanly on SIGTERM.
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { addModelDeploymentController } from './controllers/modeldeployment/controller.ts';
import { DEFAULT_STORAGE_INITIALIZER_IMAGE } from './controllers/modeldeployment/runtimes.ts';
import { addProjectEnvironmentController } from './controllers/projectenvironment/controller.ts';
import type { BuildConfig } from './environments/build-job.ts';
import { KubeClient } from './kube/client.ts';
import { EventRecorder } from './kube/events.ts';
import { classify } from './kube/errors.ts';
import { VERSION } from './version.ts';
import { SecretReader } from './kube/secrets.ts';
import { Resources } from './kube/resources.ts';
import { AuditRepository, remoteCredentialsOf } from './audit/repository.ts';
import { AuditTrail } from './audit/trail.ts';
import { GitOpsWriteBack } from './gitops/writeback.ts';
import { Notifier } from './notify/notifier.ts';
import { createLogger, errorMessage } from './runtime/log.ts';
import { ControllerMetrics } from './runtime/metrics.ts';
import { Manager } from './runtime/manager.ts';

const { values: args } = parseArgs({
  allowNegative: true, // --no-leader-elect
  options: {
    version: { type: 'boolean', default: false },
    kubeconfig: { type: 'string' },
    context: { type: 'string' },
    // Watch these namespaces only (comma-separated; a Role in each is enough); all namespaces when unset.
    namespace: { type: 'string' },
    'metrics-port': { type: 'string', default: process.env.SLIPWAY_METRICS_PORT ?? '8080' },
    'metrics-host': { type: 'string', default: '0.0.0.0' },
    'leader-elect': { type: 'boolean', default: true },
    'leader-election-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'default' },
    'leader-election-id': { type: 'string', default: 'slipway-controller' },
    'lease-duration-seconds': { type: 'string', default: '15' },
    identity: { type: 'string', default: process.env.POD_NAME ?? `${hostname()}-${process.pid}` },
    workers: { type: 'string', default: '4' },
    // The client-side rate limit on requests to the API server (client-go's QPS and Burst); --kube-api-qps=0: none.
    'kube-api-qps': { type: 'string', default: process.env.SLIPWAY_KUBE_API_QPS ?? '50' },
    'kube-api-burst': { type: 'string', default: process.env.SLIPWAY_KUBE_API_BURST ?? '300' },
    'resync-seconds': { type: 'string', default: '600' },
    'storage-initializer-image': { type: 'string', default: process.env.SLIPWAY_STORAGE_INITIALIZER_IMAGE ?? DEFAULT_STORAGE_INITIALIZER_IMAGE },
    'prometheus-url': { type: 'string', ...(process.env.SLIPWAY_PROMETHEUS_URL ? { default: process.env.SLIPWAY_PROMETHEUS_URL } : {}) },
    // namespace/name of a Secret with webhook-url and/or slack-url: where decisions are announced when a
    // ModelDeployment's spec.notifications names no Secret of its own.
    // The audit trail: a git repository of every spec change and decision (off without a directory).
    'audit-dir': { type: 'string', ...(process.env.SLIPWAY_AUDIT_DIR ? { default: process.env.SLIPWAY_AUDIT_DIR } : {}) },
    'audit-remote': { type: 'string', ...(process.env.SLIPWAY_AUDIT_REMOTE ? { default: process.env.SLIPWAY_AUDIT_REMOTE } : {}) },
    'audit-branch': { type: 'string', default: process.env.SLIPWAY_AUDIT_BRANCH ?? 'main' },
    // namespace/name of a Secret with the remote's credentials: identity + known_hosts (SSH), username +
    // password or bearerToken (HTTPS), ca.crt.
    'audit-secret': { type: 'string', ...(process.env.SLIPWAY_AUDIT_SECRET ? { default: process.env.SLIPWAY_AUDIT_SECRET } : {}) },
    // Working repositories of the GitOps write-back (spec.gitOps); a temporary directory when unset.
    'gitops-dir': { type: 'string', default: process.env.SLIPWAY_GITOPS_DIR ?? join(tmpdir(), 'slipway-gitops') },
    // ProjectEnvironment builds: the builder image (by digest), variables every build gets (NAME=VALUE, repeatable:
    // a proxy to the package index, SLIPWAY_INSECURE_REGISTRIES…), a ConfigMap with a CA bundle to trust (NAME/KEY,
    // looked up in the environment's namespace), and a limit on one build's time.
    'environment-builder-image': { type: 'string', ...(process.env.SLIPWAY_ENVIRONMENT_BUILDER_IMAGE ? { default: process.env.SLIPWAY_ENVIRONMENT_BUILDER_IMAGE } : {}) },
    'environment-build-env': { type: 'string', multiple: true, default: [] },
    'environment-build-ca': { type: 'string' },
    'environment-build-timeout-seconds': { type: 'string', default: '3600' },
    'notifications-secret': { type: 'string', ...(process.env.SLIPWAY_NOTIFICATIONS_SECRET ? { default: process.env.SLIPWAY_NOTIFICATIONS_SECRET } : {}) },
  },
});

if (args.version) {
  console.log(VERSION);
  process.exit(0);
}
const log = createLogger();

process.on('unhandledRejection', (err) => {
  log.fatal({ err: errorMessage(err) }, 'unhandled rejection');
  process.exit(1);
});

/** `namespace/name`; a bad value stops the process at once rather than send nothing later. */
function secretName(v: string | undefined, flag = '--notifications-secret'): { namespace: string; name: string } | undefined {
  if (!v) return undefined;
  const [namespace, name, extra] = v.split('/');
  if (!namespace || !name || extra !== undefined) {
    log.fatal({ value: v }, `${flag} must be namespace/name`);
    process.exit(2);
  }
  return { namespace, name };
}

/**
 * client-go's proportions: renew deadline 2/3 of the lease, retry period 2/15 of it; but the leader renews every
 * quarter of the lease (one write each, no read), not every retry period: 16 requests a minute at rest for a 15 s
 * lease instead of 60, with two renewals' worth of slack before the deadline.
 */
function leaderElection(namespace: string, name: string, identity: string, leaseSeconds: number) {
  const leaseDurationMs = leaseSeconds * 1000;
  return { namespace, name, identity, leaseDurationMs, renewDeadlineMs: (leaseDurationMs * 2) / 3, retryPeriodMs: (leaseDurationMs * 2) / 15, renewIntervalMs: leaseDurationMs / 4 };
}

/**
 * Crash-consistency testing: SLIPWAY_FAULT_KILL_AFTER_WRITES=N makes the process SIGKILL itself the moment its
 * N-th write has been answered, i.e. at an exact point between two writes of a reconcile. Never set in production.
 */
function faultInjection(client: KubeClient): void {
  const after = Number(process.env.SLIPWAY_FAULT_KILL_AFTER_WRITES ?? 0);
  if (!(after > 0)) return;
  log.warn({ after }, 'fault injection: this process kills itself after that many writes');
  let writes = 0;
  client.observe((method) => {
    if (method !== 'GET' && method !== 'WATCH' && ++writes >= after) process.kill(process.pid, 'SIGKILL');
  });
}

/** `--namespace a,b`: the namespaces to watch, each a DNS label; none = all. */
function watchedNamespaces(v: string | undefined): { namespaces?: string[] } {
  if (v === undefined || v.trim() === '') return {};
  const namespaces = v.split(',').map((n) => n.trim());
  const bad = namespaces.filter((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n));
  if (bad.length) {
    log.fatal({ value: v }, `--namespace takes namespace names separated by commas; not a namespace name: ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
    process.exit(2);
  }
  return { namespaces };
}

/** --kube-api-qps (0: no limit) and --kube-api-burst; a bad value stops the process with the flag's name. */
function rateLimit(qps: string, burst: string): { qps: number; burst: number } {
  const q = Number(qps);
  const b = Number(burst);
  if (!Number.isFinite(q) || q < 0) {
    log.fatal({ value: qps }, '--kube-api-qps must be a number of requests per second, 0 for no limit');
    process.exit(2);
  }
  if (!Number.isInteger(b) || b < 1) {
    log.fatal({ value: burst }, '--kube-api-burst must be a whole number of requests, at least 1');
    process.exit(2);
  }
  return { qps: q, burst: b };
}

/** The --environment-build-* flags; undefined without a builder image. A bad value stops the process. */
function environmentBuild(): BuildConfig | undefined {
  const image = args['environment-builder-image'];
  if (!image) return undefined;
  if (!/^[^@\s]+@sha256:[a-f0-9]{64}$/.test(image)) {
    log.fatal({ value: image }, '--environment-builder-image must be pinned by digest: <repository>@sha256:<64 hex digits>');
    process.exit(2);
  }
  const env = (args['environment-build-env'] ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, i))) {
      log.fatal({ value: kv }, '--environment-build-env takes NAME=VALUE');
      process.exit(2);
    }
    return { name: kv.slice(0, i), value: kv.slice(i + 1) };
  });
  const ca = args['environment-build-ca'];
  const [configMap, key = 'ca.crt', extra] = (ca ?? '').split('/');
  if (ca !== undefined && (!configMap || extra !== undefined)) {
    log.fatal({ value: ca }, '--environment-build-ca takes a ConfigMap name, optionally /KEY (ca.crt when left out)');
    process.exit(2);
  }
  const timeout = Number(args['environment-build-timeout-seconds']);
  if (!Number.isInteger(timeout) || timeout < 60) {
    log.fatal({ value: args['environment-build-timeout-seconds'] }, '--environment-build-timeout-seconds must be a whole number of seconds, at least 60');
    process.exit(2);
  }
  return { builderImage: image, env, ...(configMap ? { caBundle: { configMap, key } } : {}), activeDeadlineSeconds: timeout };
}

async function main(): Promise<void> {
  const identity = args.identity;
  const scope = watchedNamespaces(args.namespace);
  const client = await KubeClient.load({
    ...(args.kubeconfig ? { kubeconfig: args.kubeconfig } : {}),
    ...(args.context ? { context: args.context } : {}),
    userAgent: `slipway/${VERSION} (${identity})`,
    rateLimit: rateLimit(args['kube-api-qps'], args['kube-api-burst']),
  });
  const metrics = new ControllerMetrics();
  faultInjection(client);
  const manager = new Manager({
    client,
    logger: log,
    metrics,
    port: Number(args['metrics-port']),
    host: args['metrics-host'],
    resyncMs: Number(args['resync-seconds']) * 1000,
    ...(args['leader-elect']
      ? { leaderElection: leaderElection(args['leader-election-namespace'], args['leader-election-id'], identity, Number(args['lease-duration-seconds'])) }
      : {}),
  });
  const secrets = new SecretReader(client);
  const notifier = new Notifier({ secrets, log: log.child({ component: 'notifier' }), metrics, defaultSecret: secretName(args['notifications-secret']) });
  const events = new EventRecorder(client, { instance: identity, onError: (err) => {
    metrics.eventWriteFailures.inc({ class: classify(err) });
    log.warn({ err: errorMessage(err) }, 'could not record an Event');
  } });
  addModelDeploymentController(manager, {
    events,
    workers: Number(args.workers),
    storageInitializerImage: args['storage-initializer-image'],
    prometheusUrl: args['prometheus-url'],
    notifier,
    secrets,
    ...(scope.namespaces ? { namespaces: scope.namespaces } : {}),
  });

  addProjectEnvironmentController(manager, {
    events,
    build: environmentBuild(),
    ...(scope.namespaces ? { namespaces: scope.namespaces } : {}),
  });

  if (args['audit-dir']) {
    const remote = args['audit-remote'];
    if (remote && /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(remote)) {
      log.fatal('--audit-remote carries a password: put it in the audit Secret (--audit-secret) instead');
      process.exit(2);
    }
    const repo = new AuditRepository({ dir: args['audit-dir'], branch: args['audit-branch'], remote });
    const auditSecret = secretName(args['audit-secret'], '--audit-secret');
    const trail = new AuditTrail({
      repo,
      sources: (['ModelDeployment', 'Experiment', 'ProjectEnvironment'] as const).map((kind) => ({ kind, informer: manager.informer(Resources[kind], scope) })),
      client,
      log: log.child({ component: 'audit' }),
      metrics,
      ...(auditSecret ? { credentials: async () => remoteCredentialsOf(await secrets.read(auditSecret.namespace, auditSecret.name)) } : {}),
    });
    manager.addLeaderTask(trail);
  }

  manager.addLeaderTask(new GitOpsWriteBack({
    informer: manager.informer(Resources.ModelDeployment, scope),
    client,
    secrets,
    events,
    log: log.child({ component: 'gitops' }),
    dir: args['gitops-dir'],
  }));

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    Promise.all([manager.stop(), notifier.stop()]).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    log.info('SIGHUP: full resync');
    manager.resync();
  });

  log.info({ server: client.server, credentials: client.source, identity, metrics: manager.address }, 'starting');
  await manager.start();
  log.info({ metrics: manager.address }, 'ready');
}

main().catch((err: unknown) => {
  log.fatal({ err: errorMessage(err) }, 'could not start');
  process.exit(1);
});
