// The controller's Prometheus metrics, in one registry of its own: reconciles, errors and durations, queue
// depth and age, watch restarts and staleness, API requests, and leadership.
import { ERROR_CLASSES } from '../kube/errors.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller' | 'class'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'name'>;
  readonly queueOldestAge: Gauge<'name'>;
  readonly queueInFlight: Gauge<'name'>;
  readonly queueAdds: Counter<'name'>;
  readonly queueRetries: Counter<'name'>;
  readonly queueWait: Histogram<'name'>;
  readonly watchRestarts: Counter<'resource' | 'reason'>;
  readonly watchLastActivityAge: Gauge<'resource'>;
  readonly apiRequests: Counter<'method' | 'code'>;
  readonly apiThrottle: Histogram;
  readonly eventWriteFailures: Counter<'class'>;
  readonly leader: Gauge;
  readonly cacheObjects: Gauge<'resource'>;
  readonly rollbacks: Counter<'namespace' | 'name'>;
  readonly analysisMeasurements: Counter<'verdict'>;
  readonly notifications: Counter<'kind' | 'target' | 'result'>;
  readonly phase: Gauge<'namespace' | 'name' | 'phase'>;
  readonly canaryWeight: Gauge<'namespace' | 'name'>;
  readonly auditCommits: Counter;
  readonly environmentBuilds: Counter<'namespace' | 'name' | 'result'>;
  readonly environmentBuildDuration: Histogram<'result'>;
  readonly auditRecording: Gauge;
  readonly auditQueued: Gauge;
  readonly auditUnpushed: Gauge;
  readonly auditPushFailures: Counter;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'slipway_' });
    this.reconcileTotal = new Counter({ name: 'slipway_reconcile_total', help: 'Reconciles by controller and result (success, requeue, error).', labelNames: ['controller', 'result'], registers });
    this.reconcileErrors = new Counter({ name: 'slipway_reconcile_errors_total', help: 'Failed reconciles by error class.', labelNames: ['controller', 'class'], registers });
    this.reconcileDuration = new Histogram({
      name: 'slipway_reconcile_duration_seconds',
      help: 'Time one reconcile takes.',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.queueDepth = new Gauge({ name: 'slipway_workqueue_depth', help: 'Keys waiting for a worker.', labelNames: ['name'], registers });
    this.queueOldestAge = new Gauge({ name: 'slipway_workqueue_oldest_item_age_seconds', help: 'How long the oldest waiting key has waited.', labelNames: ['name'], registers });
    this.queueInFlight = new Gauge({ name: 'slipway_workqueue_in_flight', help: 'Keys being reconciled.', labelNames: ['name'], registers });
    this.queueAdds = new Counter({ name: 'slipway_workqueue_adds_total', help: 'Keys added to the queue.', labelNames: ['name'], registers });
    this.queueRetries = new Counter({ name: 'slipway_workqueue_retries_total', help: 'Keys requeued after a failure.', labelNames: ['name'], registers });
    this.queueWait = new Histogram({
      name: 'slipway_workqueue_queue_duration_seconds',
      help: 'Time a key waits in the queue before a worker takes it.',
      labelNames: ['name'],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers,
    });
    this.watchRestarts = new Counter({ name: 'slipway_watch_restarts_total', help: 'Watch restarts by reason (expired, inactive, closed, error, throttled).', labelNames: ['resource', 'reason'], registers });
    this.watchLastActivityAge = new Gauge({ name: 'slipway_watch_last_activity_age_seconds', help: 'Seconds since a watch last received anything (events or bookmarks).', labelNames: ['resource'], registers });
    this.apiRequests = new Counter({ name: 'slipway_api_requests_total', help: 'Requests to the Kubernetes API by method and status code.', labelNames: ['method', 'code'], registers });
    this.apiThrottle = new Histogram({
      name: 'slipway_api_rate_limiter_wait_seconds',
      help: 'How long requests waited for the client-side rate limit (--kube-api-qps, --kube-api-burst).',
      buckets: [0, 0.005, 0.025, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.eventWriteFailures = new Counter({
      name: 'slipway_event_write_failures_total',
      help: 'Kubernetes Events that could not be written, by error class (Terminal: the API server refused the Event as it is; Transient, TooManyRequests, NotFound, Conflict). Events are best effort: a failure is logged and counted, never a reconcile failure.',
      labelNames: ['class'],
      registers,
    });
    // Every class from the start, at 0: an alert on an increase needs the series before the first failure.
    for (const c of ERROR_CLASSES) this.eventWriteFailures.inc({ class: c }, 0);
    this.leader = new Gauge({ name: 'slipway_leader', help: '1 while this replica holds the leader lease.', registers });
    this.rollbacks = new Counter({ name: 'slipway_rollbacks_total', help: 'Automatic rollbacks (a failed analysis) by ModelDeployment.', labelNames: ['namespace', 'name'], registers });
    this.analysisMeasurements = new Counter({ name: 'slipway_analysis_measurements_total', help: 'Analysis measurements taken, by verdict.', labelNames: ['verdict'], registers });
    this.notifications = new Counter({ name: 'slipway_notifications_total', help: 'Notifications by kind, target (webhook, slack) and result (sent, failed after its retries, dropped).', labelNames: ['kind', 'target', 'result'], registers });
    this.phase = new Gauge({ name: 'slipway_modeldeployment_phase', help: '1 for the phase each ModelDeployment is in (Healthy, Progressing, Paused, RolledBack, Degraded, Failed, Pending).', labelNames: ['namespace', 'name', 'phase'], registers });
    this.canaryWeight = new Gauge({ name: 'slipway_canary_weight_percent', help: 'The share of traffic the canary of each ModelDeployment has now (0 without a rollout).', labelNames: ['namespace', 'name'], registers });
    this.auditCommits = new Counter({ name: 'slipway_audit_commits_total', help: 'Commits written to the audit repository.', registers });
    this.auditRecording = new Gauge({ name: 'slipway_audit_recording', help: '1 while this process records the audit trail (the leader, once the repository is loaded).', registers });
    this.auditQueued = new Gauge({ name: 'slipway_audit_queued', help: 'Changes waiting to be committed to the audit repository.', registers });
    this.auditUnpushed = new Gauge({ name: 'slipway_audit_unpushed_commits', help: 'Audit commits the remote does not have yet.', registers });
    this.auditPushFailures = new Counter({ name: 'slipway_audit_push_failures_total', help: 'Failed pushes of the audit repository (retried with backoff).', registers });
    this.environmentBuilds = new Counter({ name: 'slipway_environment_builds_total', help: 'Finished builds of ProjectEnvironment images by result (built, reused: the registry had the image already, failed).', labelNames: ['namespace', 'name', 'result'], registers });
    this.environmentBuildDuration = new Histogram({
      name: 'slipway_environment_build_duration_seconds',
      help: 'How long a build Job ran, from its start to its completion or failure.',
      labelNames: ['result'],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    });
    this.cacheObjects = new Gauge({ name: 'slipway_cache_objects', help: 'Objects in the informer cache.', labelNames: ['resource'], registers });
  }
}
