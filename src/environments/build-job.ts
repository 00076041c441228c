// The Job that builds one environment image: the environment's own base image runs the builder (mounted from the
// builder image as an image volume, read-only), as a non-root user with no privilege and a read-only root, with
// scratch space in emptyDirs. No Docker daemon, no privileged pod. A build whose packages cannot be resolved exits
// 2 and fails the Job at once (podFailurePolicy); anything else (an index or registry that cannot be reached)
// is retried by the Job with its back-off.
import type { ProjectEnvironment } from '../api/projectenvironment.ts';
import type { KubeObject } from '../kube/resources.ts';
import type { BuildInputs } from './content.ts';

export const ENVIRONMENT_LABEL = 'slipway.dev/environment';
export const HASH_LABEL = 'slipway.dev/environment-hash';
/** A label value holds 63 characters: the label carries the hash's first 40 hex digits, the annotation all of it. */
export const hashLabel = (hash: string): string => hash.slice(0, 40);
const HASH_ANNOTATION = 'slipway.dev/environment-content-hash';
export const BUILD_CONTAINER = 'build';
/** Builds retried after a failure that retrying can help (the Job's back-off: 10 s, 20 s, 40 s …). */
export const BUILD_BACKOFF_LIMIT = 3;
/** Exit code of a build that retrying cannot help (build.py). */
export const PERMANENT_FAILURE_EXIT_CODE = 2;

export interface BuildConfig {
  /** The builder image (image/environment-images.ts), by digest. */
  builderImage: string;
  /** Variables every build gets: a proxy to the package index, SLIPWAY_INSECURE_REGISTRIES, PIP_INDEX_URL… */
  env: { name: string; value: string }[];
  /** A ConfigMap, in the environment's namespace, with the CA bundle to trust (a TLS-intercepting proxy's). */
  caBundle?: { configMap: string; key: string };
  /** Hard limit on one build's run time. */
  activeDeadlineSeconds?: number;
}

/** `<environment>-build-<hash prefix>`, at most 63 characters (the pods' job-name label). */
export function buildJobName(environment: string, hash: string): string {
  return `${environment.slice(0, 40).replace(/[-.]+$/, '')}-build-${hash.slice(0, 12)}`;
}

export function buildJob(pe: ProjectEnvironment, inputs: BuildInputs, hash: string, config: BuildConfig): KubeObject {
  const name = pe.metadata.name;
  const labels = {
    'app.kubernetes.io/managed-by': 'slipway',
    'app.kubernetes.io/component': 'environment-build',
    [ENVIRONMENT_LABEL]: name,
    [HASH_LABEL]: hashLabel(hash),
  };
  const pushSecret = pe.spec.build?.pushSecret;
  const ca = config.caBundle;
  const build = { hash, baseImage: inputs.baseImage, repository: inputs.repository, pip: inputs.pip, ...(inputs.apt.length ? { apt: inputs.apt } : {}), ...(inputs.r.length ? { r: inputs.r } : {}) };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: buildJobName(name, hash),
      namespace: pe.metadata.namespace ?? 'default',
      labels,
      annotations: { [HASH_ANNOTATION]: hash },
      ownerReferences: [{ apiVersion: 'slipway.dev/v1alpha1', kind: 'ProjectEnvironment', name, uid: pe.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      backoffLimit: BUILD_BACKOFF_LIMIT,
      activeDeadlineSeconds: config.activeDeadlineSeconds ?? 3600,
      podFailurePolicy: {
        rules: [{ action: 'FailJob', onExitCodes: { containerName: BUILD_CONTAINER, operator: 'In', values: [PERMANENT_FAILURE_EXIT_CODE] } }],
      },
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: BUILD_CONTAINER,
              image: inputs.baseImage,
              command: ['python3', '/opt/slipway/builder/build.py'],
              env: [
                { name: 'SLIPWAY_BUILD', value: JSON.stringify(build) },
                { name: 'HOME', value: '/work' },
                { name: 'SLIPWAY_WORK', value: '/work' },
                ...(ca ? [{ name: 'PIP_CERT', value: `/etc/slipway/ca/${ca.key}` }, { name: 'SSL_CERT_FILE', value: `/etc/slipway/ca/${ca.key}` }] : []),
                ...config.env,
              ],
              volumeMounts: [
                { name: 'builder', mountPath: '/opt/slipway/builder', readOnly: true },
                { name: 'work', mountPath: '/work' },
                { name: 'tmp', mountPath: '/tmp' },
                ...(pushSecret ? [{ name: 'push-secret', mountPath: '/var/run/slipway/push', readOnly: true }] : []),
                ...(ca ? [{ name: 'ca-bundle', mountPath: '/etc/slipway/ca', readOnly: true }] : []),
              ],
              terminationMessagePolicy: 'FallbackToLogsOnError',
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '4Gi' } },
            },
          ],
          volumes: [
            { name: 'builder', image: { reference: config.builderImage, pullPolicy: 'IfNotPresent' } },
            { name: 'work', emptyDir: { sizeLimit: '10Gi' } },
            { name: 'tmp', emptyDir: { sizeLimit: '1Gi' } },
            ...(pushSecret ? [{ name: 'push-secret', secret: { secretName: pushSecret, items: [{ key: '.dockerconfigjson', path: '.dockerconfigjson' }] } }] : []),
            ...(ca ? [{ name: 'ca-bundle', configMap: { name: ca.configMap, items: [{ key: ca.key, path: ca.key }] } }] : []),
          ],
        },
      },
    },
  };
}
