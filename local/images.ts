// The images the local pod runner can run, and what each one runs on this machine instead of a container: the
// image's entrypoint, default arguments and environment, resolved to local programs (the locked Python
// environment's MLServer; the local storage initializer). An image of a known repository but an unknown tag is
// refused as a kubelet refuses an image it cannot pull. Images in the local image registry are pulled and run as
// they are, under chroot (image-store.ts, pod-runner.ts). Other images stay plain KWOK pods.
import { join } from 'node:path';
import { IMAGE_REGISTRY } from './image-registry.ts';

/** The MLServer image the mlserver preset's examples use; the local pod runs the same version from PyPI. */
export const MLSERVER_IMAGE = 'docker.io/seldonio/mlserver:1.7.1';
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
  pythonBin: string;
  node: string;
}

/** The local stand-in for an image, or undefined when the runner cannot run it. */
export function localImage(image: string, programs: LocalPrograms): LocalImage | undefined {
  switch (normalizeImage(image)) {
    case MLSERVER_IMAGE:
      // The image's CMD is `mlserver start $MLSERVER_MODELS_DIR`, with MLSERVER_MODELS_DIR=/mnt/models/.
      return { entrypoint: [], cmd: ['mlserver', 'start', '/mnt/models/'], env: { MLSERVER_MODELS_DIR: '/mnt/models/' }, path: [programs.pythonBin] };
    case STORAGE_INITIALIZER_IMAGE:
      // ENTRYPOINT initializer-entrypoint, given `<uri> <dir>` as args.
      return { entrypoint: [programs.node, join(import.meta.dirname, 'storage-initializer.ts')], cmd: [], env: {}, path: [] };
    default:
      return undefined;
  }
}

/** The known tags, for the message when a pod asks for another. */
export const KNOWN_IMAGES = [MLSERVER_IMAGE, STORAGE_INITIALIZER_IMAGE];
