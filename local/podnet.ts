// The local pod network: what the CNI bridge plugin does, for the pods the local data plane runs as processes.
// A Linux bridge owns the whole pod range (10.244.0.0/16) before any pod exists, so nothing addressed to a pod can
// leave this machine; each pod gets a network namespace holding its IP on a veth pair joined to the bridge.
// Namespaces get no default route: a pod reaches other pods and the host's bridge address, nothing else.
// Needs root and iproute2 (`ip`).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const BRIDGE = 'slipway0';
export const POD_CIDR = '10.244.0.0/16';
export const GATEWAY = '10.244.0.1';
const PREFIX = 16;

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('ip (iproute2) is not on PATH: the local pod network needs it (apt-get install iproute2)', { cause: err });
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** The interface the kernel would send a packet for `address` out of. */
export async function routeDevice(address: string): Promise<string | undefined> {
  return / dev (\S+)/.exec(await ip(['route', 'get', address]))?.[1];
}

/**
 * Creates the bridge with the pod range if it is missing, then checks that the kernel routes the whole range to
 * it; throws (and nothing may be sent to a pod) otherwise.
 */
export async function ensureBridge(): Promise<void> {
  const links = await ip(['-o', 'link', 'show']);
  if (!new RegExp(`^\\d+: ${BRIDGE}[:@]`, 'm').test(links)) {
    await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
    await ip(['addr', 'add', `${GATEWAY}/${PREFIX}`, 'dev', BRIDGE]);
  }
  await ip(['link', 'set', BRIDGE, 'up']);
  await assertPodRangeIsLocal();
}

/** Both ends of the range must route to the bridge, or pod traffic could leave the machine. */
export async function assertPodRangeIsLocal(): Promise<void> {
  for (const probe of ['10.244.0.2', '10.244.255.254']) {
    const dev = await routeDevice(probe);
    if (dev !== BRIDGE) throw new Error(`refusing to run pods: ${probe} would be sent out of ${dev ?? 'nowhere'}, not the local bridge ${BRIDGE}`);
  }
}

export interface PodNetwork {
  namespace: string;
  ip: string;
  /** Runs a command inside the pod's network namespace (argv for spawn). */
  exec(cmd: string, args: string[]): [string, string[]];
  remove(): Promise<void>;
}

/**
 * The absolute path of a program of this machine (PATH, then the sbin directories), so that a pod's process
 * chain never looks up a host program in the pod's own PATH.
 */
export function hostProgram(name: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not installed: the local pod runner needs it`);
}

const idOf = (uid: string): string => createHash('sha256').update(uid).digest('hex').slice(0, 8);

/** The network namespace of the pod with this uid (its veth ends are named from the same id). */
export const namespaceOf = (uid: string): string => `slw-${idOf(uid)}`;

/** Gives a pod its namespace, its IP in the pod range, and a veth pair on the bridge. */
export async function addPod(uid: string, address: string): Promise<PodNetwork> {
  if (!/^10\.244\.(\d{1,3})\.(\d{1,3})$/.test(address) || address === GATEWAY) throw new Error(`${address} is not a pod address in ${POD_CIDR}`);
  await assertPodRangeIsLocal();
  const id = idOf(uid);
  const namespace = namespaceOf(uid);
  const host = `slwh${id}`; // interface names have at most 15 characters
  const peer = `slwp${id}`;
  await ip(['netns', 'add', namespace]);
  const remove = async (): Promise<void> => {
    // Deleting the namespace deletes its end of the veth pair, and with it the host's end.
    await ip(['netns', 'del', namespace]).catch(() => undefined);
    await ip(['link', 'del', host]).catch(() => undefined);
  };
  try {
    await ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer, 'netns', namespace]);
    await ip(['link', 'set', host, 'master', BRIDGE, 'up']);
    await ip(['-n', namespace, 'link', 'set', peer, 'name', 'eth0']);
    await ip(['-n', namespace, 'addr', 'add', `${address}/${PREFIX}`, 'dev', 'eth0']);
    await ip(['-n', namespace, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await remove();
    throw err;
  }
  return { namespace, ip: address, exec: (cmd, args) => [hostProgram('ip'), ['netns', 'exec', namespace, cmd, ...args]], remove };
}

/**
 * addPod for a local service at a fixed address: a namespace that a crashed run left holding the address is killed
 * and removed first.
 */
export async function addServicePod(id: string, address: string): Promise<PodNetwork> {
  try {
    return await addPod(id, address);
  } catch (err) {
    for (const ns of await podNamespaces()) {
      if ((await ip(['-n', ns, 'addr', 'show']).catch(() => '')).includes(`${address}/`)) {
        await killNamespace(ns);
        await ip(['netns', 'del', ns]);
        return addPod(id, address);
      }
    }
    throw err;
  }
}

/** The namespaces of pods that exist now (for cleanup after a crash). */
export async function podNamespaces(): Promise<string[]> {
  return (await ip(['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('slw-'));
}

/** Every process left in a namespace gets SIGKILL (a server's workers that outlived it, a crashed runner's pods). */
export async function killNamespace(namespace: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const pids = (await ip(['netns', 'pids', namespace]).catch(() => '')).split('\n').map(Number).filter((p) => p > 0);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Removes every pod namespace (and what runs in it) and the bridge: the machine's network as it was before. */
export async function removePodNetwork(): Promise<void> {
  for (const namespace of await podNamespaces()) {
    await killNamespace(namespace);
    await ip(['netns', 'del', namespace]).catch(() => undefined);
  }
  if (new RegExp(`^\\d+: ${BRIDGE}[:@]`, 'm').test(await ip(['-o', 'link', 'show']))) await ip(['link', 'del', BRIDGE]);
}
