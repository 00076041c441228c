// Serving runtimes: what a model server needs to be told to load and serve a model, per preset. `custom` is any
// server: it gets the SLIPWAY_* variables and fetches the model itself. `mlserver` is Seldon's MLServer (Open
// Inference Protocol V2): the model is fetched before the server starts by a storage initializer (KServe's
// conventions: an init container given the URI and /mnt/models, a shared emptyDir the server mounts read-only;
// a pvc:// model is mounted directly instead), and the server is configured through its MLSERVER_* variables.
import type { ModelDeploymentSpec } from '../../api/modeldeployment.ts';

export type RuntimePreset = ModelDeploymentSpec['runtime']['preset'];

/** The formats each preset serves, and how MLServer loads each (its runtime class). */
export const MLSERVER_IMPLEMENTATIONS: Record<string, string> = {
  sklearn: 'mlserver_sklearn.SKLearnModel',
  xgboost: 'mlserver_xgboost.XGBoostModel',
  lightgbm: 'mlserver_lightgbm.LightGBMModel',
  mlflow: 'mlserver_mlflow.MLflowRuntime',
};

/** MLServer's own ports: REST (the runtime port), gRPC, and Prometheus metrics. */
export const MLSERVER_GRPC_PORT = 8081;
export const MLSERVER_METRICS_PORT = 8082;

/** Where the model is placed for the server, and where a PVC holding it is mounted. */
export const MODEL_DIR = '/mnt/models';
export const PVC_DIR = '/mnt/pvc';
export const MODEL_VOLUME = 'model-store';

/**
 * The storage initializer's default image (the controller's --storage-initializer-image overrides it, and
 * spec.runtime.storageInitializerImage overrides that). It takes `<uri> <dir>`, understands s3://, gs:// and
 * https://, and reads credentials from its environment (spec.model.secretRef). It does NOT understand MLflow
 * registry URIs (models:/…): those need an MLflow-aware initializer image (spec.runtime.storageInitializerImage)
 * until Slipway resolves registry URIs itself; with the default image such a pod fails in its init container,
 * with the initializer's message in the pod's status.
 */
export const DEFAULT_STORAGE_INITIALIZER_IMAGE = 'docker.io/kserve/storage-initializer:v0.15.2';

export interface ModelSource {
  uri: string;
  secretRef?: { name: string } | undefined;
}

/** pvc://<claim>/<path> → the claim and the path inside it. */
export function pvcOf(uri: string): { claim: string; path: string } | undefined {
  const m = /^pvc:\/\/([^/]+)\/?(.*)$/.exec(uri);
  return m ? { claim: m[1] ?? '', path: m[2] ?? '' } : undefined;
}

type Obj = Record<string, unknown>;

export interface RuntimeParts {
  /** Added to the server container. */
  env: { name: string; value: string }[];
  ports: Obj[];
  volumeMounts: Obj[];
  /** Added to the pod. */
  initContainers: Obj[];
  volumes: Obj[];
  annotations: Record<string, string>;
}

const NONE: RuntimeParts = { env: [], ports: [], volumeMounts: [], initContainers: [], volumes: [], annotations: {} };

/** What the preset adds to a revision's pod: none for `custom`; for `mlserver` the model fetch and the server's settings. */
export function runtimeParts(opts: {
  preset: RuntimePreset;
  model: { name: string; version: string; format: string } & ModelSource;
  port: number;
  storageInitializerImage: string;
}): RuntimeParts {
  if (opts.preset !== 'mlserver') return NONE;
  const { model } = opts;
  const pvc = pvcOf(model.uri);
  const modelDir = pvc ? `${PVC_DIR}/${pvc.path}`.replace(/\/$/, '') : MODEL_DIR;
  const env = [
    { name: 'MLSERVER_MODEL_NAME', value: model.name },
    { name: 'MLSERVER_MODEL_VERSION', value: model.version },
    { name: 'MLSERVER_MODEL_URI', value: modelDir },
    { name: 'MLSERVER_MODEL_IMPLEMENTATION', value: MLSERVER_IMPLEMENTATIONS[model.format] ?? '' },
    { name: 'MLSERVER_HTTP_PORT', value: String(opts.port) },
    { name: 'MLSERVER_GRPC_PORT', value: String(MLSERVER_GRPC_PORT) },
    { name: 'MLSERVER_METRICS_PORT', value: String(MLSERVER_METRICS_PORT) },
    { name: 'MLSERVER_LOAD_MODELS_AT_STARTUP', value: 'true' },
  ];
  const ports = [
    { name: 'grpc', containerPort: MLSERVER_GRPC_PORT, protocol: 'TCP' },
    { name: 'metrics', containerPort: MLSERVER_METRICS_PORT, protocol: 'TCP' },
  ];
  const annotations = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(MLSERVER_METRICS_PORT), 'prometheus.io/path': '/metrics' };
  if (pvc) {
    // The model is on a volume already: mounted read-only, nothing to fetch.
    return {
      env,
      ports,
      annotations,
      volumeMounts: [{ name: MODEL_VOLUME, mountPath: PVC_DIR, readOnly: true }],
      volumes: [{ name: MODEL_VOLUME, persistentVolumeClaim: { claimName: pvc.claim, readOnly: true } }],
      initContainers: [],
    };
  }
  return {
    env,
    ports,
    annotations,
    volumeMounts: [{ name: MODEL_VOLUME, mountPath: MODEL_DIR, readOnly: true }],
    volumes: [{ name: MODEL_VOLUME, emptyDir: {} }],
    initContainers: [
      {
        name: 'storage-initializer',
        image: opts.storageInitializerImage,
        args: [model.uri, MODEL_DIR],
        ...(model.secretRef ? { envFrom: [{ secretRef: { name: model.secretRef.name } }] } : {}),
        volumeMounts: [{ name: MODEL_VOLUME, mountPath: MODEL_DIR }],
        resources: { requests: { cpu: '100m', memory: '100Mi' }, limits: { memory: '1Gi' } },
        // Why a fetch failed (404, wrong credentials, host down) shows in `kubectl describe pod`.
        terminationMessagePolicy: 'FallbackToLogsOnError',
      },
    ],
  };
}
