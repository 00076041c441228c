// The ModelDeployment controller: for each key, observe (caches) → plan (pure) → act (API writes).
import { modelDeployment, type ModelDeployment } from '../../api/modeldeployment.ts';
import type { EventRecorder } from '../../kube/events.ts';
import { Controller, type ReconcileResult, type Reconciler } from '../../runtime/controller.ts';
import { classify, isAlreadyExists, isNotFound } from '../../kube/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Manager } from '../../runtime/manager.ts';
import { ModelDeploymentActuator } from './act.ts';
import { ModelDeploymentCaches } from './observe.ts';
import { plan, routingOf, type Observed } from './plan.ts';
import { DESTINATION_RULE } from './routers/istio.ts';
import { measurementDue } from '../../analysis/analysis.ts';
import { takeMeasurement } from '../../analysis/measure.ts';
import type { ControllerMetrics } from '../../runtime/metrics.ts';
import type { KubeClient } from '../../kube/client.ts';
import { SecretReader } from '../../kube/secrets.ts';
import type { Notifier } from '../../notify/notifier.ts';
import { Resources, type KubeObject, type ResourceType } from '../../kube/resources.ts';
import { apiServerFailure, STALL_AFTER_FAILURES } from '../conditions.ts';

export interface ModelDeploymentControllerOptions {
  events: EventRecorder;
  workers?: number;
  /** Restrict the controller to these namespaces; all namespaces when unset or empty. */
  namespaces?: string[];
  now?: () => Date;
  /** The default image of the storage initializer (the mlserver preset's model fetch). */
  storageInitializerImage?: string;
  /** The Prometheus analysis asks when a metric names no address. */
  prometheusUrl?: string | undefined;
  /** Announces decisions (rollback, pause, failure, promotion); none sent without it. */
  notifier?: Notifier | undefined;
  /** Reads the Secrets that metrics name for their credentials. */
  secrets?: SecretReader | undefined;
}

export class ModelDeploymentReconciler implements Reconciler {
  readonly name = 'modeldeployment';
  readonly caches: ModelDeploymentCaches;
  private readonly actuator: ModelDeploymentActuator;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly config: { storageInitializerImage?: string | undefined };
  private readonly client: KubeClient;
  private readonly metrics: ControllerMetrics;
  private readonly prometheusUrl: string | undefined;
  private readonly secrets: SecretReader;
  /** The phase each ModelDeployment's gauge series has now. */
  private readonly phases = new Map<string, string>();
  /**
   * The resourceVersion each ModelDeployment had when this controller last wrote its status over it. Until the
   * cache shows a newer one, a plan would start from a status older than the one just written and its write would
   * be a certain conflict (and a backoff): the key is parked instead, and woken when the cache catches up.
   */
  private readonly ownStatusOver = new Map<string, string>();
  private readonly parked = new Set<string>();

  constructor(manager: Manager, opts: ModelDeploymentControllerOptions) {
    this.config = { storageInitializerImage: opts.storageInitializerImage };
    this.client = manager.client;
    this.metrics = manager.metrics;
    this.prometheusUrl = opts.prometheusUrl;
    this.secrets = opts.secrets ?? new SecretReader(manager.client);
    this.now = opts.now ?? (() => new Date());
    this.log = manager.log.child({ controller: this.name });
    this.caches = new ModelDeploymentCaches(manager, opts.namespaces);
    this.actuator = new ModelDeploymentActuator(manager.client, opts.events, this.now, opts.notifier);
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const raw = this.caches.get(key);
    if (!raw) {
      // Deleted: the garbage collector removes the children; its series go.
      const [namespace = '', name = ''] = key.split('/');
      this.metrics.phase.remove({ namespace, name, phase: this.phases.get(key) ?? '' });
      this.metrics.canaryWeight.remove({ namespace, name });
      this.phases.delete(key);
      this.ownStatusOver.delete(key);
      this.parked.delete(key);
      return undefined;
    }
    const over = this.ownStatusOver.get(key);
    if (over !== undefined) {
      if (raw.metadata.resourceVersion === over) {
        this.parked.add(key);
        return { requeueAfterMs: 5000, reason: 'the cache does not show this controller\'s last status write yet' };
      }
      this.ownStatusOver.delete(key);
    }
    const parsed = modelDeployment.safeParse(raw);
    if (!parsed.success) {
      // The CRD schema makes this impossible, unless an older CRD is installed.
      const message = `the spec does not match the ModelDeployment schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
      this.log.warn({ key, message }, 'invalid spec');
      await this.actuator.recordFailure(raw as ModelDeployment, 'InvalidSpec', message);
      return undefined;
    }
    const observed: Observed = { ...this.caches.observe(parsed.data), config: this.config };
    const routing = routingOf(parsed.data);
    if (routing.kind === 'router') {
      // The user's route is read, not watched: Slipway writes only its weights, and reads it when it acts.
      const claimant = this.caches.routeClaimant(raw);
      if (claimant) observed.routeClaimedBy = claimant;
      else {
        const ns = parsed.data.metadata.namespace ?? 'default';
        const dr = parsed.data.spec.rollout?.trafficRouting?.istio?.destinationRule;
        const [route, destinationRule] = await Promise.all([
          this.readObject(routing.router.resource, ns, routing.router.name),
          dr ? this.readObject(DESTINATION_RULE, ns, dr.name) : Promise.resolve(undefined),
        ]);
        observed.route = route;
        if (destinationRule !== undefined) observed.destinationRule = destinationRule;
      }
    }
    const now = this.now();
    // A measurement of the current analysis step, when one is due: the planner judges it.
    const due = measurementDue(parsed.data, now);
    const analysisSpec = parsed.data.spec.rollout?.analysis;
    if (due && analysisSpec) {
      const ns = parsed.data.metadata.namespace ?? 'default';
      observed.measurement = await takeMeasurement(parsed.data, analysisSpec, due.windowSeconds, {
        defaultPrometheus: this.prometheusUrl,
        credentials: (name) => this.secrets.credentials(ns, name),
        jobs: {
          get: (namespace, name) => this.readObject(Resources.Job, namespace, name),
          create: async (job) => {
            await this.client.create(Resources.Job, job).catch((err: unknown) => {
              if (!isAlreadyExists(err)) throw err; // created by an earlier reconcile that did not get to write status
            });
          },
        },
        now,
      });
    }
    const p = plan(observed, now);
    await this.actuator.act(parsed.data, p);
    if (p.statusChanged && parsed.data.metadata.resourceVersion) this.ownStatusOver.set(key, parsed.data.metadata.resourceVersion);
    const taken = p.status.analysis?.measurements.at(-1);
    if (observed.measurement && taken) this.metrics.analysisMeasurements.inc({ verdict: taken.verdict });
    this.recordRollout(key, parsed.data.metadata.namespace ?? 'default', parsed.data.metadata.name, p.status.phase, p.status.canary?.achievedWeight ?? p.status.canary?.weight ?? 0);
    if (p.events.some((e) => e.reason === 'RolledBack')) this.metrics.rollbacks.inc({ namespace: parsed.data.metadata.namespace ?? 'default', name: parsed.data.metadata.name });
    return p.requeue ? { requeueAfterMs: p.requeue.afterMs, reason: p.requeue.reason } : undefined;
  }

  /** A status-only change reached the cache: true when a reconcile of that key was waiting for it. */
  unpark(key: string): boolean {
    return this.parked.delete(key);
  }

  /** The rollout gauges: one phase series per ModelDeployment (the previous one removed), and the canary's weight. */
  private recordRollout(key: string, namespace: string, name: string, phase: string | undefined, weight: number): void {
    const was = this.phases.get(key);
    if (phase && was !== phase) {
      if (was) this.metrics.phase.remove({ namespace, name, phase: was });
      this.metrics.phase.set({ namespace, name, phase }, 1);
      this.phases.set(key, phase);
    }
    this.metrics.canaryWeight.set({ namespace, name }, weight);
  }

  /** An object read by name: null when it does not exist (or its kind is not installed). */
  private async readObject(resource: ResourceType, namespace: string, name: string): Promise<KubeObject | null> {
    try {
      return await this.client.get(resource, namespace, name);
    } catch (err) {
      // Not there, or its kind is not installed: the planner says what to create.
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /**
   * Retries back off on their own; after a few in a row the user is told, with the API server's own words,
   * instead of the ModelDeployment looking healthy while nothing converges. Refusals (4xx) are recorded at once
   * by the actuator; this covers what it cannot classify (500s, timeouts, an API server that is unreachable).
   */
  async failed(key: string, err: unknown, failures: number): Promise<void> {
    if (failures < STALL_AFTER_FAILURES || classify(err) === 'Terminal') return;
    const raw = this.caches.get(key);
    const parsed = raw && modelDeployment.safeParse(raw);
    if (!parsed?.success) return;
    await this.actuator.recordFailure(parsed.data, 'ApiServerError', apiServerFailure(err));
  }
}

export function addModelDeploymentController(manager: Manager, opts: ModelDeploymentControllerOptions): Controller {
  const reconciler = new ModelDeploymentReconciler(manager, opts);
  const controller = new Controller(reconciler, { workers: opts.workers ?? 4, metrics: manager.metrics, logger: manager.log });
  reconciler.caches.watch((key, priority) => controller.enqueue(key, priority), (key) => {
    if (reconciler.unpark(key)) controller.enqueue(key, 'high');
  });
  manager.addController(controller, reconciler.caches.modelDeployments);
  return controller;
}
