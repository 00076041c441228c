// The local image registry: the CNCF distribution registry (built from its Go module, toolset `registry`) with
// its storage on local disk, in a network namespace of its own on the pod bridge. Images are pushed to it
// (`npm run image:push`) and the pod runner pulls from it, as a kubelet pulls from a cluster's registry; pods could
// reach it at the same address (builds that push, later). The namespace has no route off this machine, and the
// registry's telemetry exporters are off besides.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.ts';
import { addServicePod } from './podnet.ts';
import type { Started } from './processes.ts';

/** Below the model registry's address at the top of the pod range, which the pod runner never hands out either. */
export const IMAGE_REGISTRY_IP = '10.244.255.253';
const PORT = 5000;
/** The host part of image references in the local registry: `10.244.255.253:5000/slipway/controller@sha256:…`. */
export const IMAGE_REGISTRY = `${IMAGE_REGISTRY_IP}:${PORT}`;
const ID = 'slipway-image-registry';

export interface ImageRegistryContext {
  start: (name: string, args: string[], program: string, env?: Record<string, string>) => Started;
  dir: string;
  binDir: string;
}

/** Starts the registry and waits until its API answers; returns its host (for image references) and URL. */
export async function startImageRegistry(ctx: ImageRegistryContext): Promise<{ host: string; url: string }> {
  const dir = join(ctx.dir, 'image-registry');
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: warn, formatter: text}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'storage'))}}, delete: {enabled: true}, redirect: {disable: true}}`,
    `http: {addr: "0.0.0.0:${PORT}", secret: "local"}`,
    '',
  ].join('\n'));
  const net = await addServicePod(ID, IMAGE_REGISTRY_IP);
  const [cmd, args] = net.exec(join(ctx.binDir, 'registry'), ['serve', config]);
  const registry = ctx.start('image-registry', args, cmd, { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' });
  const url = `http://${IMAGE_REGISTRY}`;
  await eventually('the image registry', async () => (await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status === 200, { abort: registry.exited, timeoutMs: 30_000, intervalMs: 100 });
  return { host: IMAGE_REGISTRY, url };
}
