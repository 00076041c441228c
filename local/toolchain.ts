// Builds the control plane's binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
// kwok, helm) from the pinned Go modules under tools/, into a cache directory keyed by a hash of those modules.
// A warm cache is a directory lookup; nothing is rebuilt unless a go.mod, go.sum or build flag changes.
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KUBE_VERSION = 'v1.37.2';
export const HELM_VERSION = 'v4.3.1';
export const TRAEFIK_VERSION = 'v3.6.12';
export const PROMETHEUS_VERSION = '3.16.0';
/** Raise when the recipe below changes in a way the go.mod/go.sum hash cannot see. */
const RECIPE_REVISION = 1;
const MIN_GO = [1, 26] as const;

const toolsDir = join(dirname(fileURLToPath(import.meta.url)), 'tools');

interface Tool {
  /** Folder under tools/ holding the wrapper go.mod. */
  module: string;
  /** Go package → file name in the bin directory. */
  packages: Record<string, string>;
  ldflags: string[];
  /** Go build tags. */
  tags?: string[];
  /**
   * A Go toolchain the go command fetches from the module proxy for this module alone (its go.mod needs a newer Go
   * than this machine's); every other module builds with the machine's Go (GOTOOLCHAIN=local).
   */
  toolchain?: string;
}

function versionFlags(pkg: string): string[] {
  const [major, minor] = KUBE_VERSION.slice(1).split('.');
  return [
    `-X ${pkg}.gitVersion=${KUBE_VERSION}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
    // A fixed date keeps the link step reproducible and cacheable.
    `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
  ];
}

export const TOOLS: Tool[] = [
  {
    module: 'kube',
    packages: {
      'k8s.io/kubernetes/cmd/kube-apiserver': 'kube-apiserver',
      'k8s.io/kubernetes/cmd/kube-controller-manager': 'kube-controller-manager',
      'k8s.io/kubernetes/cmd/kube-scheduler': 'kube-scheduler',
      'k8s.io/kubernetes/cmd/kubectl': 'kubectl',
    },
    ldflags: [...versionFlags('k8s.io/component-base/version'), ...versionFlags('k8s.io/client-go/pkg/version')],
  },
  { module: 'etcd', packages: { 'go.etcd.io/etcd/server/v3': 'etcd' }, ldflags: [] },
  { module: 'kwok', packages: { 'sigs.k8s.io/kwok/cmd/kwok': 'kwok' }, ldflags: [] },
  {
    module: 'helm',
    packages: { 'helm.sh/helm/v4/cmd/helm': 'helm' },
    ldflags: [`-X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}`],
  },
];

/**
 * The data plane's tools, a set of their own: built only when the local environment serves (cluster:up --serve,
 * the tests as root), cached under their own hash so that adding one never rebuilds the control plane.
 */
export const DATA_PLANE_TOOLS: Tool[] = [
  // Traefik v3.6: the newest release whose module graph the module proxy serves in full (v3.7 needs DNS SDKs it does not).
  { module: 'traefik', packages: { 'github.com/traefik/traefik/v3/cmd/traefik': 'traefik' }, ldflags: [`-X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION}`] },
  // Prometheus 3.16 (module v0.316.0) with Kubernetes service discovery alone: the Debian package leaves
  // kubernetes_sd_configs out, and the other discovery plugins would only add cloud SDKs to compile.
  {
    module: 'prometheus',
    packages: { 'github.com/prometheus/prometheus/cmd/prometheus': 'prometheus' },
    ldflags: [`-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}`, '-X github.com/prometheus/common/version.Branch=release'],
    tags: ['remove_all_sd', 'enable_kubernetes_sd'],
  },
];

/**
 * Flux's source-controller and kustomize-controller (the GitOps loop the write-back is tested against). v1.9:
 * the newest releases whose module graphs the module proxy serves in full with this machine's Go (v1.10 needs
 * Go 1.27 and fluxcd/pkg modules that are not served; source-controller v1.9.1+ needs pkg/artifact v0.18.1+).
 */
export const FLUX_SOURCE_VERSION = 'v1.9.0';
export const FLUX_KUSTOMIZE_VERSION = 'v1.9.6';
export const GITOPS_TOOLS: Tool[] = [
  { module: 'flux-source-controller', packages: { 'github.com/fluxcd/source-controller': 'source-controller' }, ldflags: [] },
  { module: 'flux-kustomize-controller', packages: { 'github.com/fluxcd/kustomize-controller': 'kustomize-controller' }, ldflags: [] },
];

/**
 * The CNCF distribution registry (the OCI registry the local data plane runs, where images are pushed and the pod
 * runner pulls from), a set of its own so that it never rebuilds the others.
 */
export const DISTRIBUTION_VERSION = 'v3.1.2';
export const REGISTRY_TOOLS: Tool[] = [
  { module: 'registry', packages: { 'github.com/distribution/distribution/v3/cmd/registry': 'registry' }, ldflags: [`-X github.com/distribution/distribution/v3/version.version=${DISTRIBUTION_VERSION}`] },
];

/**
 * The peers the benchmarks compare Slipway with: Argo Rollouts v1.10.2, whose go.mod needs Go 1.26.10 (built with
 * the go1.27.3 toolchain from the module proxy); its own replace lines are copied into the wrapper. Built only by
 * `npm run bench:peers`, never by the tests.
 */
export const ARGO_ROLLOUTS_VERSION = 'v1.10.2';
export const PEER_TOOLS: Tool[] = [
  { module: 'argo-rollouts', packages: { 'github.com/argoproj/argo-rollouts/cmd/rollouts-controller': 'rollouts-controller' }, ldflags: [`-X github.com/argoproj/argo-rollouts/utils/version.version=${ARGO_ROLLOUTS_VERSION.slice(1)}`], toolchain: 'go1.27.3' },
];

export type Toolset = 'cluster' | 'dataplane' | 'gitops' | 'registry' | 'peers';
/** What `npm run cluster:build` (and so CI) builds: everything the tests and the demo run. */
export const TOOLSET_NAMES: Toolset[] = ['cluster', 'dataplane', 'gitops', 'registry'];
const TOOLSETS: Record<Toolset, Tool[]> = { cluster: TOOLS, dataplane: DATA_PLANE_TOOLS, gitops: GITOPS_TOOLS, registry: REGISTRY_TOOLS, peers: PEER_TOOLS };

export const BINARIES = TOOLS.flatMap((t) => Object.values(t.packages));

export function cacheRoot(): string {
  return process.env.SLIPWAY_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'slipway');
}

/** Environment for every go invocation: never fetch a toolchain, never link libc. */
export function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false' };
}

/** Fails with a message a person can act on when Go is missing or too old. */
export function checkGo(): string {
  let out: string;
  try {
    out = execFileSync('go', ['env', 'GOVERSION'], { env: goEnv(), encoding: 'utf8' }).trim();
  } catch {
    throw new Error('Go is not installed or not on PATH: the local control plane is built from Go modules (Go >= 1.26 needed)');
  }
  const m = /^go(\d+)\.(\d+)/.exec(out);
  const [major, minor] = [Number(m?.[1]), Number(m?.[2])];
  if (!m || major < MIN_GO[0] || (major === MIN_GO[0] && minor < MIN_GO[1])) {
    throw new Error(`Go ${out} is too old: the local control plane needs Go >= ${MIN_GO.join('.')}`);
  }
  return out;
}

/** Hash of everything that decides the binaries' content. */
export function toolsHash(goVersion: string, set: Toolset = 'cluster'): string {
  const h = createHash('sha256');
  h.update(`recipe ${RECIPE_REVISION}\n${goVersion}\n`);
  for (const tool of TOOLSETS[set]) {
    for (const file of ['go.mod', 'go.sum']) h.update(readFileSync(join(toolsDir, tool.module, file)));
    h.update(JSON.stringify(tool));
  }
  return h.digest('hex').slice(0, 16);
}

export function binDir(goVersion = checkGo(), set: Toolset = 'cluster'): string {
  return join(cacheRoot(), set, toolsHash(goVersion, set), 'bin');
}

function run(cmd: string, args: string[], cwd: string, log: (line: string) => void, toolchain?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...goEnv(), ...(toolchain ? { GOTOOLCHAIN: toolchain } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const collect = (chunk: Buffer): void => {
      tail = (tail + chunk.toString()).slice(-8000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else {
        log(tail);
        reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}) in ${cwd}:\n${tail}`));
      }
    });
  });
}

/** A directory lock so two concurrent test runs do not build into the same place. */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      const holder = Number(readFileSync(lock, 'utf8'));
      if (!isAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface BuildResult {
  binDir: string;
  built: string[];
  seconds: number;
}

/**
 * Returns the directory holding every binary, building what is missing. Each binary is linked into a scratch
 * directory and renamed into place, so an interrupted build never leaves a half-written file behind.
 */
export async function ensureBinaries(log: (line: string) => void = () => {}, set: Toolset = 'cluster'): Promise<BuildResult> {
  const started = Date.now();
  const goVersion = checkGo();
  const bin = binDir(goVersion, set);
  const tools = TOOLSETS[set];
  const missing = (tool: Tool): boolean => Object.values(tool.packages).some((b) => !existsSync(join(bin, b)));
  if (!tools.some(missing)) return { binDir: bin, built: [], seconds: 0 };

  mkdirSync(bin, { recursive: true });
  checkDisk(dirname(bin), 8, log);
  const built: string[] = [];
  await withLock(dirname(bin), async () => {
    for (const tool of tools.filter(missing)) {
      const scratch = join(dirname(bin), `scratch-${process.pid}`);
      rmSync(scratch, { recursive: true, force: true });
      mkdirSync(scratch);
      const names = Object.values(tool.packages);
      log(`building ${names.join(', ')} (first build of these modules takes minutes)`);
      const t0 = Date.now();
      const ldflags = ['-s', '-w', ...tool.ldflags].join(' ');
      const pkgs = Object.keys(tool.packages);
      // One invocation for all of a module's commands, so the packages they share compile once; with several
      // packages `-o dir/` names each binary after its package's last path element.
      const out = pkgs.length === 1 ? join(scratch, names[0] ?? '') : `${scratch}/`;
      const tags = tool.tags?.length ? ['-tags', tool.tags.join(',')] : [];
      // No DWARF from the compiler: the linker strips it anyway (-w); measured on the registry with an empty build
      // cache, 124-126 s against 132 s, the same binary but its build ID.
      await run('go', ['build', ...tags, '-gcflags=all=-dwarf=false', '-ldflags', ldflags, '-o', out, ...pkgs], join(toolsDir, tool.module), log, tool.toolchain);
      for (const name of names) renameSync(join(scratch, name), join(bin, name));
      rmSync(scratch, { recursive: true, force: true });
      built.push(...names);
      log(`built ${names.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  });
  return { binDir: bin, built, seconds: (Date.now() - started) / 1000 };
}

function checkDisk(dir: string, needGiB: number, log: (line: string) => void): void {
  let availGiB = NaN;
  try {
    const out = execFileSync('df', ['-Pk', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '';
    availGiB = Number(out.split(/\s+/)[3]) / 1024 / 1024;
  } catch {
    // df missing or odd: the build itself will say if the disk fills up.
  }
  if (!Number.isFinite(availGiB)) log(`could not check free disk space under ${dir}; going on`);
  else if (availGiB < needGiB) {
    throw new Error(`only ${availGiB.toFixed(1)} GiB free under ${dir}: building the control plane needs about ${needGiB} GiB (Go build cache included)`);
  }
}

/**
 * Directory of a module in the Go module cache, downloading it if needed (the module's files are read-only); a
 * module whose go.mod needs a newer Go than this machine's names the toolchain (as its Tool does).
 */
export function moduleDir(modulePath: string, version: string, toolchain?: string): string {
  const out = execFileSync('go', ['mod', 'download', '-json', `${modulePath}@${version}`], {
    env: { ...goEnv(), ...(toolchain ? { GOTOOLCHAIN: toolchain } : {}) },
    encoding: 'utf8',
    cwd: toolsDir,
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir || info.Error) throw new Error(`go mod download ${modulePath}@${version}: ${info.Error ?? 'no Dir'}`);
  if (!statSync(info.Dir).isDirectory()) throw new Error(`${info.Dir} is not a directory`);
  return info.Dir;
}
