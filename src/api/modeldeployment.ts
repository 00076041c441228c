// ModelDeployment: one model served as a scoring Deployment + Service (and optional batch CronJob), rolled out
// revision by revision. The zod schema here is the source of the TypeScript types and of crds/.
import { z } from 'zod';
import { cel, conditions, DNS1035_LABEL, duration, name253, name63, resourceRequirements, resourceSchema, readyColumn, ageColumn, type KindDefinition } from './common.ts';

export const MODEL_FORMATS = ['sklearn', 'xgboost', 'lightgbm', 'onnx', 'pmml', 'mlflow', 'custom'] as const;
export const PROTOCOLS = ['v2', 'v1', 'custom'] as const;
export const RUNTIME_PRESETS = ['custom', 'mlserver'] as const;
/** The formats the mlserver preset serves; `custom` serves any. */
export const MLSERVER_FORMATS = ['sklearn', 'xgboost', 'lightgbm', 'mlflow'] as const;

/** Object stores, HTTPS, a PVC, or the MLflow model registry by version or alias. Also a CEL pattern (no backslash). */
export const MODEL_URI_PATTERN = '^((s3|gs|https?|pvc)://.+|models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+))$';

const model = z.object({
  name: name63.meta({ description: 'Model name as the runtime serves it.' }),
  version: z.string().min(1).max(128).meta({ description: 'Model version; changing it starts a new revision.' }),
  uri: cel(
    z
      .string()
      .max(2048)
      .refine((v) => new RegExp(MODEL_URI_PATTERN).test(v), 'must be s3://, gs://, http(s)://, pvc://<claim>/<path>, models:/<name>/<version> or models:/<name>@<alias>'),
    {
      rule: `self.matches('${MODEL_URI_PATTERN}')`,
      message: 'model.uri must be s3://<bucket>/<path>, gs://<bucket>/<path>, http(s)://<host>/<path>, pvc://<claim>/<path>, or an MLflow registry URI: models:/<name>/<version> or models:/<name>@<alias>',
    },
  ).meta({ description: 'Where the model is fetched from: s3://, gs://, http(s):// (in-cluster servers), pvc://<claim>/<path>, models:/<name>/<version> or models:/<name>@<alias> (MLflow registry).' }),
  format: z.enum(MODEL_FORMATS).meta({ description: 'Serialisation format of the model.' }),
  secretRef: z.object({ name: name253 }).optional().meta({
    description: 'A Secret whose keys become the storage initializer\'s environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN, …',
  }),
});

const runtime = cel(
  z.object({
    preset: z.enum(RUNTIME_PRESETS).default('custom').meta({
      description: 'mlserver: Seldon MLServer (V2 protocol) for sklearn, xgboost, lightgbm and mlflow models, fetched by a storage initializer; custom: any server, told about the model through SLIPWAY_* variables.',
    }),
    storageInitializerImage: z.string().min(1).max(1024).optional().meta({
      description: 'The image that fetches the model before the server starts (mlserver preset); the controller\'s default otherwise.',
    }),
    port: z.number().int().min(1).max(65535).default(8080),
    protocol: z.enum(PROTOCOLS).default('v2').meta({
      description: 'Inference protocol: v2 (Open Inference Protocol), v1 (TF-Serving style) or custom (set the paths).',
    }),
    readinessPath: z.string().max(512).regex(/^\//, 'must start with /').optional(),
    livenessPath: z.string().max(512).regex(/^\//, 'must start with /').optional(),
    metricsPath: z.string().max(512).regex(/^\//, 'must start with /').default('/metrics'),
    args: z.array(z.string().max(4096)).max(64).optional(),
    env: cel(
      z
        .array(z.object({ name: z.string().min(1).max(256), value: z.string().max(32768).default('') }))
        .max(128),
      {
        rule: 'self.all(e, self.exists_one(f, f.name == e.name))',
        message: 'runtime.env names must be unique: each variable may be set once',
      },
      {
        rule: "self.all(e, !e.name.startsWith('SLIPWAY_'))",
        message: 'runtime.env names starting with SLIPWAY_ are set by Slipway (model name, version, URI, port, revision): choose another name',
      },
    ).optional(),
  }),
  {
    rule: "!has(self.protocol) || self.protocol != 'custom' || has(self.readinessPath)",
    message: 'runtime.readinessPath is required when runtime.protocol is custom',
    fieldPath: '.readinessPath',
  },
);

const autoscaling = cel(
  z.object({
    minReplicas: z.number().int().min(1).max(1000).default(1),
    maxReplicas: z.number().int().min(1).max(1000),
    targetCPUUtilizationPercentage: z.number().int().min(1).max(100).default(80),
  }),
  {
    rule: 'self.maxReplicas >= self.minReplicas',
    message: 'autoscaling.maxReplicas must be at least autoscaling.minReplicas',
    fieldPath: '.maxReplicas',
  },
);

/**
 * What a CronJob accepts (robfig/cron's standard parser): five fields, or a macro. Each field is `*`, `?`, numbers,
 * ranges, lists and steps; months and weekdays may be three-letter names.
 */
const CRON_ITEM = '([*]|[?]|[0-9]+(-[0-9]+)?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]+)?';
const CRON_FIELD = `${CRON_ITEM}(,${CRON_ITEM})*`;
export const CRON_PATTERN = `^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every ([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+|${CRON_FIELD}( +${CRON_FIELD}){4})$`;

const CRON_REGEX = new RegExp(CRON_PATTERN);

const batch = z.object({
  // Written without backslashes: the same text is a JavaScript and a CEL regular expression.
  // (A refinement, not a pattern: the CRD carries the CEL rule, whose message says what to write instead.)
  schedule: cel(z.string().min(1).max(128).refine((v) => CRON_REGEX.test(v), 'must be a cron schedule or a macro'), {
    rule: `self.matches('${CRON_PATTERN}')`,
    message: 'batch.schedule must be a cron schedule of five fields such as "0 2 * * *", or a macro such as @daily, @hourly or @every 6h',
  }).meta({ description: 'Cron schedule of the batch-scoring job: five fields ("0 2 * * *") or a macro (@daily, @every 6h).' }),
  timeZone: z.string().max(64).optional(),
  args: z.array(z.string().max(4096)).max(64).optional(),
  suspend: z.boolean().default(false),
  resources: resourceRequirements.optional(),
});

const step = cel(
  z.object({
    setWeight: z.number().int().min(0).max(100).optional(),
    pause: z.object({ duration: duration.optional() }).optional(),
    analysis: z.object({}).optional(),
  }),
  {
    rule: '[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1',
    message: 'each rollout step sets exactly one of setWeight, pause or analysis',
  },
);

const trafficRouting = cel(
  z.object({
    gatewayAPI: z.object({ httpRoute: name253 }).optional().meta({
      description: 'Weights on an HTTPRoute you own: each rule that should split traffic names two backendRefs, the Service <name> (stable) and <name>-canary, both managed by Slipway; Slipway changes only their weights.',
    }),
    istio: z
      .object({
        virtualService: name253,
        routes: z.array(z.string().max(253)).max(16).optional(),
        destinationRule: cel(z.object({ name: name253, stableSubsetName: name63, canarySubsetName: name63 }), {
          rule: 'self.stableSubsetName != self.canarySubsetName',
          message: 'destinationRule: the stable and canary subsets must have different names',
        })
          .optional()
          .meta({ description: 'Subsets instead of Services: the VirtualService sends to host <name> with these two subsets, and Slipway points each subset of this DestinationRule at its revision (the label slipway.dev/revision).' }),
      })
      .optional()
      .meta({
        description: 'Weights on a VirtualService you own: in its http routes (all, or those named in routes), destinations with host <name> (stable) and <name>-canary, or with destinationRule host <name> and the two subsets; Slipway changes only their weights.',
      }),
    replicaRatio: z.object({}).optional().meta({
      description: 'No mesh: the Service <name> selects both revisions, and the weight is approximated by their replica counts (the default when steps are set without trafficRouting).',
    }),
  }),
  {
    rule: '[has(self.gatewayAPI), has(self.istio), has(self.replicaRatio)].filter(x, x).size() <= 1',
    message: 'trafficRouting takes one of gatewayAPI, istio or replicaRatio',
  },
);

/**
 * A Secret in the ModelDeployment's namespace holding credentials for an endpoint Slipway calls: `token` (a bearer
 * token), or `username` and `password` (basic), and `ca.crt` (PEM: the CAs to trust instead of the system's).
 */
const secretRef = z.object({ name: name253 }).meta({ description: 'A Secret in the same namespace: token (bearer), or username and password (basic); ca.crt (PEM CAs to trust).' });

export const ANALYSIS_PRESETS = ['mlserver-error-rate', 'mlserver-latency', 'traefik-gateway-error-rate', 'traefik-gateway-latency'] as const;

const percentage = z.string().regex(/^\d+(\.\d+)?%$/, 'must be a percentage such as 20%');

const metric = cel(
  z.object({
    name: name63,
    preset: z.enum(ANALYSIS_PRESETS).optional().meta({
      description: 'A measurement Slipway writes the queries for: mlserver-error-rate (5xx answers per inference request of each revision, from MLServer\'s own metrics), mlserver-latency (each revision\'s inference latency histogram), traefik-gateway-error-rate and traefik-gateway-latency (the same, as the Traefik gateway saw each revision\'s Service).',
    }),
    prometheus: cel(
      z.object({
        address: z.string().max(2048).optional().meta({ description: 'The Prometheus to ask (default: rollout.analysis.prometheus, then the controller\'s --prometheus-url).' }),
        secretRef: secretRef.optional().meta({ description: 'Credentials for this Prometheus (default: those of rollout.analysis.prometheus).' }),
        query: z.string().min(1).max(8192).optional().meta({ description: 'A query giving one number (bounds only).' }),
        events: z.string().min(1).max(8192).optional().meta({ description: 'With trials: the count of bad events (e.g. errors) of one revision in the window.' }),
        trials: z.string().min(1).max(8192).optional().meta({ description: 'With events: the count of trials (e.g. requests) of one revision in the window.' }),
        histogram: z.string().min(1).max(8192).optional().meta({ description: 'Bucket counts of one revision in the window, by le (e.g. sum by (le) (increase(x_bucket{...}[{{window}}]))).' }),
        sum: z.string().min(1).max(8192).optional().meta({ description: 'With histogram: the sum of the observed values of one revision in the window (e.g. sum(increase(x_sum{...}[{{window}}]))). compare then judges the mean, which the sum gives exactly, instead of a median known only to its bucket.' }),
      }),
      {
        rule: '[has(self.query), has(self.events) && has(self.trials), has(self.histogram)].filter(x, x).size() == 1 && has(self.events) == has(self.trials)',
        message: 'a prometheus metric is one of: query (one number), events and trials (counts), or histogram (buckets)',
      },
      { rule: '!has(self.sum) || has(self.histogram)', message: 'sum goes with histogram (the sum of the values the buckets count)', fieldPath: '.sum' },
    ).optional().meta({ description: 'Queries; {{namespace}}, {{name}}, {{revision}}, {{role}} (canary or stable), {{service}} (<name> or <name>-canary) and {{window}} (the analysis so far, e.g. 95s) are filled in for each revision.' }),
    web: z.object({
      url: z.string().min(1).max(2048).regex(/^https?:\/\//, 'must be an http:// or https:// URL').meta({ description: 'Fetched with GET for each revision; {{namespace}}, {{name}}, {{revision}}, {{role}}, {{service}} and {{window}} are filled in.' }),
      jsonPath: z.string().min(1).max(512).meta({ description: 'Where the number is in the JSON answer, e.g. $.data.errorRate or $.results[0].value.' }),
      secretRef: secretRef.optional().meta({ description: 'Credentials for the endpoint: a bearer token, or a username and password, and a CA bundle.' }),
      timeoutSeconds: z.number().int().min(1).max(60).default(10),
    }).optional().meta({ description: 'An HTTP endpoint that answers JSON: one number per revision (bounds, and a plain comparison with stable).' }),
    job: z.object({
      spec: z.looseObject({}).meta({ description: 'A batch/v1 JobSpec, as written (e.g. an offline backtest of the canary). Slipway adds SLIPWAY_NAMESPACE, SLIPWAY_NAME, SLIPWAY_REVISION, SLIPWAY_STABLE_REVISION and SLIPWAY_CANARY_URL to its containers.' }),
    }).optional().meta({ description: 'A Kubernetes Job run once per analysis step: it succeeding is a pass, it failing a failure. Measurements wait while it runs.' }),
    min: z.number().optional().meta({ description: 'The canary\'s value (rate, median or number) must be at least this.' }),
    max: z.number().optional().meta({ description: 'The canary\'s value (rate, median or number) must be at most this.' }),
    compare: z
      .object({
        baseline: z.enum(['stable']).default('stable'),
        maxIncrease: percentage.optional().meta({ description: 'How much worse than stable the canary may be, relative (0% for any significant increase).' }),
        maxDecrease: percentage.optional(),
      })
      .optional()
      .meta({ description: 'Compare the canary with the stable revision over the same window: an anytime-valid test for counts, a rank test for histograms.' }),
    minSamples: z.number().int().min(1).max(1_000_000).default(100).meta({ description: 'Trials (or observations) each revision needs before a comparison counts; fewer is inconclusive.' }),
  }),
  {
    rule: '[has(self.preset), has(self.prometheus), has(self.web), has(self.job)].filter(x, x).size() == 1',
    message: 'each analysis metric takes exactly one of preset, prometheus, web or job',
  },
  {
    rule: 'has(self.job) || has(self.min) || has(self.max) || has(self.compare)',
    message: 'each analysis metric needs a threshold: min, max or compare (a job metric is judged by the Job\'s success)',
  },
  {
    rule: '!has(self.job) || !(has(self.min) || has(self.max) || has(self.compare))',
    message: 'a job metric is judged by the Job\'s success: it takes no min, max or compare',
  },
  {
    rule: '!has(self.min) || !has(self.max) || self.min <= self.max',
    message: 'an analysis metric\'s min must not exceed its max',
    fieldPath: '.min',
  },
);

const analysis = z.object({
  prometheus: z.object({
    address: z.string().max(2048).optional().meta({ description: 'The Prometheus this analysis asks (default: the controller\'s --prometheus-url).' }),
    secretRef: secretRef.optional().meta({ description: 'Credentials for it.' }),
  }).optional().meta({ description: 'The Prometheus every metric of this analysis asks, presets included, unless a metric names its own.' }),
  interval: duration.default('1m').meta({ description: 'Time between measurements (at least 10s is sensible: Prometheus needs two scrapes in a window).' }),
  count: z.number().int().min(1).max(1000).default(5).meta({ description: 'Measurements an analysis step takes; it passes when the last one passes and none failed beyond failureLimit.' }),
  failureLimit: z.number().int().min(0).max(100).default(0).meta({ description: 'Failed measurements tolerated before the action (the comparison is anytime-valid: one failure is significant).' }),
  inconclusiveLimit: z.number().int().min(0).max(100).default(3).meta({ description: 'Inconclusive measurements (no data, too few samples) tolerated before the rollout pauses for a person.' }),
  consecutiveErrorLimit: z.number().int().min(0).max(100).default(4).meta({ description: 'Provider errors in a row tolerated before the rollout pauses for a person.' }),
  alpha: z.number().gt(0).lt(0.5).default(0.01).meta({ description: 'The chance of a false alarm the comparison allows, however often it looks.' }),
  onFailure: z.enum(['rollback', 'pause', 'notify']).default('rollback').meta({ description: 'rollback: all traffic back on stable at once; pause: hold for a person; notify: record and go on (dry run).' }),
  metrics: z.array(metric).min(1).max(20).meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
});

const rollout = cel(
  z.object({
    steps: z.array(step).max(50).optional(),
    trafficRouting: trafficRouting.optional(),
    analysis: analysis.optional(),
    autoRollback: z.boolean().default(true),
    scaleDownStable: z.boolean().default(false).meta({
      description: 'Shrink the stable revision as the canary grows, so that a rollout needs no more pods than spec.replicas plus one (default: the stable revision keeps all its replicas until the canary is promoted).',
    }),
    scaleDownDelaySeconds: z.number().int().min(0).max(3600).default(30).meta({
      description: 'How long a replaced revision keeps running after traffic left it, so in-flight requests finish (default 30).',
    }),
  }),
  {
    rule: '!has(self.steps) || !self.steps.exists(s, has(s.analysis)) || has(self.analysis)',
    message: 'a rollout step runs analysis, so rollout.analysis must define the metrics',
    fieldPath: '.analysis',
  },
  // Steps that make no sense are refused here rather than reordered or guessed at.
  {
    rule: '!has(self.steps) || self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()',
    message: 'rollout.steps: each setWeight must be at least the one before it (traffic moves to the canary step by step; going back is an abort)',
    fieldPath: '.steps',
  },
  {
    rule: '!has(self.steps) || self.steps.filter(s, has(s.setWeight) && s.setWeight == 100).size() == 0 || (has(self.steps[size(self.steps) - 1].setWeight) && self.steps[size(self.steps) - 1].setWeight == 100 && self.steps.filter(s, has(s.setWeight) && s.setWeight == 100).size() == 1)',
    message: 'rollout.steps: setWeight 100 completes the rollout, so it can only be the last step (it may be left out: after the last step the canary takes all traffic)',
    fieldPath: '.steps',
  },
  {
    rule: '!has(self.steps) || size(self.steps) == 0 || !has(self.steps[size(self.steps) - 1].pause) || has(self.steps[size(self.steps) - 1].pause.duration)',
    message: 'rollout.steps: a pause without a duration as the last step waits for a promote that could only finish the rollout; give it a duration, or end with setWeight 100 after it',
    fieldPath: '.steps',
  },
);

const gitOps = z.object({
  repository: z.string().min(1).max(2048).regex(/^(https?|ssh|file):\/\/[^\s]+$/, 'must be an https://, ssh:// or file:// URL').meta({ description: 'The Git repository Argo CD or Flux applies this ModelDeployment from (no credentials in the URL: secretRef).' }),
  secretRef: z.object({ name: name253 }).optional().meta({ description: 'A Secret in the same namespace with the credentials: identity and known_hosts (SSH), username and password or bearerToken (HTTPS), ca.crt.' }),
  branch: z.string().min(1).max(255).default('main'),
  path: z.string().min(1).max(1024).regex(/^[^/].*\.ya?ml$/, 'must be a relative path to a .yaml file').meta({ description: 'The file, in the repository, that holds this ModelDeployment\'s manifest.' }),
  mode: z.enum(['commit', 'branch']).default('commit').meta({ description: 'commit: push the fix to the branch; branch: push it to slipway/rollback/<name>-<revision> for review.' }),
  field: z.string().min(1).max(256).regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a dotted path such as spec.model.version').optional().meta({
    description: 'Set only this field of the document to the model version that runs (e.g. a kustomize patch that holds only spec.model.version); default: spec.model and spec.image.',
  }),
}).meta({ description: 'GitOps write-back: after an automatic rollback, Slipway edits the manifest in Git (spec.model, and spec.image if set) to what runs, so the next sync does not bring the bad version back.' });

/** What a notification announces (see docs/notifications.md). */
export const NOTIFICATION_KINDS = ['RolledBack', 'Paused', 'Failed', 'Promoted'] as const;

const notifications = z.object({
  secretRef: z.object({ name: name253 }).meta({
    description: 'A Secret in the same namespace with the URLs to post to: webhook-url (a JSON document), slack-url (a Slack incoming webhook); either or both.',
  }),
  on: z.array(z.enum(NOTIFICATION_KINDS)).min(1).max(NOTIFICATION_KINDS.length).default([...NOTIFICATION_KINDS]).meta({
    'x-kubernetes-list-type': 'set',
    description: 'What to announce: RolledBack (an automatic rollback), Paused (held for a person by its analysis), Failed (stalled, aborted, or an analysis failing in notify mode), Promoted (a new revision serves). Default: all.',
  }),
}).meta({ description: 'Where to announce this ModelDeployment\'s rollbacks, pauses, failures and promotions (default: the controller\'s --notifications-secret).' });

export const modelDeploymentSpec = cel(
  z.object({
    model,
    image: z.string().min(1).max(1024).optional().meta({ description: 'Model-server image; or environmentRef.' }),
    environmentRef: z.object({ name: name253 }).optional().meta({
      description: 'A ProjectEnvironment in the same namespace whose resolved image serves the model; or image.',
    }),
    runtime: runtime.prefault({}),
    replicas: z.number().int().min(0).max(1000).default(1).meta({
      description: 'Replicas of each revision. With autoscaling, the HPA writes this field through the scale subresource (within minReplicas..maxReplicas): leave it out of what you apply.',
    }),
    autoscaling: autoscaling.optional(),
    resources: resourceRequirements.optional(),
    batch: batch.optional(),
    rollout: rollout.optional(),
    progressDeadlineSeconds: z.number().int().min(30).max(86400).default(600),
    revisionHistoryLimit: z.number().int().min(0).max(100).default(10),
    paused: z.boolean().default(false),
    notifications: notifications.optional(),
    gitOps: gitOps.optional(),
  }),
  {
    rule: 'has(self.image) != has(self.environmentRef)',
    message: 'set exactly one of spec.image or spec.environmentRef',
  },
  {
    rule: `!has(self.runtime) || self.runtime.preset != 'mlserver' || self.model.format in [${MLSERVER_FORMATS.map((f) => `'${f}'`).join(', ')}]`,
    message: `runtime mlserver serves the formats ${MLSERVER_FORMATS.join(', ')}; use runtime.preset custom for any other format`,
    messageExpression: `'runtime mlserver cannot serve format ' + self.model.format + '. Valid pairs: mlserver with ${MLSERVER_FORMATS.join(', ')}; custom with any format'`,
    fieldPath: '.model.format',
  },
  {
    rule: "!has(self.runtime) || self.runtime.preset != 'mlserver' || self.runtime.protocol == 'v2'",
    message: 'runtime mlserver speaks the V2 (Open Inference) protocol: leave runtime.protocol at v2',
    fieldPath: '.runtime.protocol',
  },
);

const revisionRef = z.object({
  revision: z.string(),
  modelVersion: z.string(),
  image: z.string(),
});

/** Who asked for something, as the API server authenticated them, and when. */
const actor = z.object({ by: z.string(), at: z.string() });

export const REQUEST_VERBS = ['promote', 'promote-full', 'abort', 'retry', 'pause', 'resume', 'undo'] as const;

export const modelDeploymentStatus = z.object({
  observedGeneration: z.number().int().optional(),
  phase: z.enum(['Pending', 'Progressing', 'Paused', 'Healthy', 'Degraded', 'RolledBack', 'Failed']).optional(),
  message: z.string().optional(),
  stable: revisionRef.optional(),
  /** The revision being rolled out, while one is, and where its rollout stands. */
  canary: revisionRef
    .extend({
      /** The share of traffic the canary is meant to have, 0–100. */
      weight: z.number().int().optional(),
      /** The share it has: what the router wrote, or, by replica ratio, its share of the available pods. */
      achievedWeight: z.number().int().optional(),
      /** The step being run (0-based); steps once every step is done. */
      step: z.number().int().optional(),
      steps: z.number().int().optional(),
      /** When the current step began: what a timed pause counts from. */
      stepStartedAt: z.string().optional(),
      /** When a timed pause ends. */
      pauseUntil: z.string().optional(),
      /** A promote asked for at this step (spent once the rollout moves past it). */
      promotedAtStep: z.number().int().optional(),
      /** Every remaining step skipped (promote-full). */
      promotedFull: z.boolean().optional(),
      replicas: z.number().int().optional(),
      availableReplicas: z.number().int().optional(),
    })
    .optional(),
  /** A rollout stopped (abort, or a canary that missed its deadline): this revision is not started again until the spec changes or it is retried. */
  aborted: revisionRef.extend({ reason: z.string(), message: z.string(), at: z.string() }).optional(),
  /** A pause asked for through a request (spec.paused is the other way); a resume ends it. */
  pause: actor.optional(),
  /** An undo: this earlier revision serves instead of the spec's until the spec changes (generation moves on). */
  override: actor.extend({ revision: z.string(), generation: z.number().int() }).optional(),
  /** The last request (slipway.dev/request annotation) acted on: each id is acted on once. */
  lastRequest: actor
    .extend({ id: z.string(), verb: z.string(), result: z.enum(['Accepted', 'Refused']), message: z.string() })
    .optional(),
  /** The analysis of the current step: every measurement (the last 10) and the verdict, so that why a rollout went on or back is in status. */
  analysis: z
    .object({
      revision: z.string(),
      step: z.number().int(),
      /** When the step began: with revision and step, which analysis this is. */
      stepStartedAt: z.string(),
      /** The start of the window every measurement covers. */
      startedAt: z.string(),
      nextAt: z.string().optional(),
      taken: z.number().int(),
      failures: z.number().int(),
      inconclusives: z.number().int(),
      consecutiveErrors: z.number().int(),
      verdict: z.enum(['Running', 'Passed', 'Failed', 'Inconclusive']),
      message: z.string().optional(),
      measurements: z.array(z.object({
        at: z.string(),
        verdict: z.enum(['Pass', 'Fail', 'Inconclusive', 'Error']),
        metrics: z.array(z.object({
          name: z.string(),
          verdict: z.enum(['Pass', 'Fail', 'Inconclusive', 'Error']),
          canary: z.string().optional(),
          stable: z.string().optional(),
          message: z.string(),
        })),
      })),
    })
    .optional(),
  /** The GitOps write-back of the last automatic rollback: the commit that made the manifest match what runs. */
  writeBack: z.object({
    revision: z.string(),
    state: z.enum(['Pushed', 'UpToDate', 'Failed']),
    commit: z.string().optional(),
    branch: z.string().optional(),
    message: z.string(),
    at: z.string(),
  }).optional(),
  /** Where this ModelDeployment stands in the audit repository: the commit holding its latest recorded change. */
  audit: z.object({ commit: z.string(), at: z.string() }).optional(),
  /** The revisions kept (spec.revisionHistoryLimit and those running), newest first: what undo can go back to. */
  history: z.array(revisionRef.extend({ number: z.number().int() })).optional(),
  replicas: z.number().int().optional(),
  readyReplicas: z.number().int().optional(),
  availableReplicas: z.number().int().optional(),
  serviceName: z.string().optional(),
  /** Label selector of the serving pods, for the scale subresource. */
  selector: z.string().optional(),
  /** Revisions traffic has left, draining until `since` + spec.rollout.scaleDownDelaySeconds. */
  retiring: z.array(z.object({ revision: z.string(), since: z.string() })).optional(),
  conditions: conditions.optional(),
});

export const modelDeployment = resourceSchema('ModelDeployment', modelDeploymentSpec, modelDeploymentStatus);

export type ModelDeploymentSpec = z.infer<typeof modelDeploymentSpec>;
export type ModelDeploymentStatus = z.infer<typeof modelDeploymentStatus>;
export type ModelDeployment = z.infer<typeof modelDeployment>;
export type RevisionRef = z.infer<typeof revisionRef>;

export const modelDeploymentKind: KindDefinition = {
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
  kind: 'ModelDeployment',
  plural: 'modeldeployments',
  singular: 'modeldeployment',
  shortNames: ['mdep'],
  categories: ['slipway', 'all'],
  description: 'A model version served as a scoring Deployment and Service, rolled out revision by revision.',
  spec: modelDeploymentSpec,
  status: modelDeploymentStatus,
  rootRules: [
    {
      // The ModelDeployment's name is its Service's name, and a Service name is an RFC 1035 label.
      rule: `self.metadata.name.matches('${DNS1035_LABEL}')`,
      message: "a ModelDeployment name names its Service, so it must start with a letter and hold only lowercase letters, digits and '-' (e.g. churn-v2, not churn.v2 or 9churn)",
    },
    {
      // Children are named <name>-<10-character revision>, and Deployment names become pod-name prefixes.
      rule: 'self.metadata.name.size() <= 42',
      message: 'a ModelDeployment name may be at most 42 characters (its children add a revision suffix)',
    },
  ],
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.model.name' },
    { name: 'Version', type: 'string', jsonPath: '.status.stable.modelVersion' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    readyColumn,
    { name: 'Available', type: 'integer', jsonPath: '.status.availableReplicas' },
    { name: 'Canary', type: 'string', jsonPath: '.status.canary.modelVersion' },
    { name: 'Weight', type: 'integer', jsonPath: '.status.canary.weight' },
    ageColumn,
    { name: 'Revision', type: 'string', jsonPath: '.status.stable.revision', priority: 1 },
    { name: 'Message', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].message', priority: 1 },
  ],
};
