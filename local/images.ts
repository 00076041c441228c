// The images the local pod runner can run. Images in the local image registry are pulled and run as they are,
// under chroot (image-store.ts, pod-runner.ts). A few public images are mirrored there: the runner pulls
// `docker.io/seldonio/mlserver:1.7.1` from the local registry's `seldonio/mlserver:1.7.1`, an image built on this
// machine from the same MLServer release (local/mlserver-image.ts), as a node with a registry mirror would. The
// storage initializer still runs as a local program (its entrypoint resolved to storage-initializer.ts). An image
// of a known repository but an unknown tag is refused as a kubelet refuses an image it cannot pull. Other images
// stay plain KWOK pods.
import { join } from 'node:path';
import { IMAGE_REGISTRY } from './image-registry.ts';

/** The MLServer image the mlserver preset's examples use; pods pull it from the local registry's mirror. */
export const MLSERVER_IMAGE = 'docker.io/seldonio/mlserver:1.7.1';
/** Where the local registry holds it (its path there, then the reference): built by local/mlserver-image.ts. */
export const MLSERVER_MIRROR_PATH = MLSERVER_IMAGE.slice('docker.io/'.length);
export const MLSERVER_MIRROR = `${IMAGE_REGISTRY}/${MLSERVER_MIRROR_PATH}`;

/** Public images the local registry mirrors: the reference pulled instead, or undefined. */
export function mirrorOf(image: string): string | undefined {
  return normalizeImage(image) === MLSERVER_IMAGE ? MLSERVER_MIRROR : undefined;
}
/** The controller's default storage initializer (DEFAULT_STORAGE_INITIALIZER_IMAGE). */
export const STORAGE_INITIALIZER_IMAGE = 'docker.io/kserve/storage-initializer:v0.15.2';

/** Repositories whose pods the runner takes from KWOK (any tag: an unknown one fails as an image pull would). */
export const RUNNER_REPOSITORIES = ['docker.io/seldonio/mlserver', 'docker.io/kserve/storage-initializer'];

/**
 * The jq expression KWOK's stages use to leave the runner's pods alone: true when any container or init
 * container comes from a runner repository (with or without the implicit docker.io/).
 */
export function runnerPodSelectorKey(): string {
  const repos = RUNNER_REPOSITORIES.map((r) => r.replace(/^docker\.io\//, '').replace(/[.]/g, '\\\\.')).join('|');
  const local = IMAGE_REGISTRY.replace(/[.]/g, '\\\\.');
  return `[(.spec.initContainers // [])[].image, .spec.containers[].image] | any(test("^((docker\\\\.io/)?(${repos})[:@]|${local}/)"))`;
}

/** `seldonio/mlserver:1.7.1` → `docker.io/seldonio/mlserver:1.7.1`; `nginx` → `docker.io/library/nginx`. */
export function normalizeImage(image: string): string {
  const first = image.split('/')[0] ?? '';
  const hasRegistry = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return image;
  return `docker.io/${image.includes('/') ? '' : 'library/'}${image}`;
}

export function repositoryOf(image: string): string {
  const n = normalizeImage(image).split('@')[0] ?? '';
  const slash = n.lastIndexOf('/');
  const colon = n.lastIndexOf(':');
  return colon > slash ? n.slice(0, colon) : n;
}

export function isRunnerImage(image: string): boolean {
  return RUNNER_REPOSITORIES.includes(repositoryOf(image)) || isRegistryImage(image);
}

/** An image of the local image registry: pulled and run as it is. */
export function isRegistryImage(image: string): boolean {
  return image.startsWith(`${IMAGE_REGISTRY}/`);
}

export interface LocalImage {
  /** ENTRYPOINT and CMD, as Kubernetes combines them with a container's command and args. */
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  /** Where the image's programs are: an executable name in command[0] is looked up here. */
  path: string[];
}

export interface LocalPrograms {
  node: string;
}

/** The local program that stands in for an image, or undefined when the runner cannot run it so. */
export function localImage(image: string, programs: LocalPrograms): LocalImage | undefined {
  switch (normalizeImage(image)) {
    case STORAGE_INITIALIZER_IMAGE:
      // ENTRYPOINT initializer-entrypoint, given `<uri> <dir>` as args.
      return { entrypoint: [programs.node, join(import.meta.dirname, 'storage-initializer.ts')], cmd: [], env: {}, path: [] };
    default:
      return undefined;
  }
}

/** The known tags, for the message when a pod asks for another. */
export const KNOWN_IMAGES = [MLSERVER_IMAGE, STORAGE_INITIALIZER_IMAGE];
