// The local gateway: Traefik v3 (built from its Go module) running its Kubernetes Gateway API provider against
// the local API server, as a process on this machine. One GatewayClass (`traefik`) and one Gateway
// (`slipway-system/slipway`) whose HTTP listener is a loopback port: HTTPRoutes attached to it route real
// requests, by their weights, to the ready pod IPs their Services' EndpointSlices list (pods the pod runner runs).
// Traefik is told never to call home (version check, usage statistics): nothing leaves this machine.
import { join } from 'node:path';
import { eventually } from './eventually.ts';
import type { Started } from './processes.ts';

// Not slipway-system: that is where Slipway itself is installed (and uninstalled, namespace and all).
export const GATEWAY_NAMESPACE = 'slipway-local';
export const GATEWAY_NAME = 'slipway';
export const GATEWAY_CLASS = 'traefik';
const SERVICE_ACCOUNT = 'traefik';

export interface GatewayInfo {
  /** Where the Gateway's HTTP listener answers: http://127.0.0.1:<port>. */
  url: string;
  port: number;
  /** Traefik's own Prometheus metrics and ping. */
  metricsUrl: string;
  namespace: string;
  name: string;
}

/** RBAC for Traefik's Gateway API provider: read routes, services and endpoints; write Gateway API status. */
function rbac(): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: GATEWAY_NAMESPACE } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SERVICE_ACCOUNT, namespace: GATEWAY_NAMESPACE } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'slipway-local-traefik' },
        rules: [
          { apiGroups: [''], resources: ['namespaces', 'nodes', 'services', 'secrets', 'configmaps'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: ['gateway.networking.k8s.io'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: ['gateway.networking.k8s.io'], resources: ['*/status'], verbs: ['get', 'update', 'patch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'slipway-local-traefik' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'slipway-local-traefik' },
        subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: GATEWAY_NAMESPACE }],
      },
    ],
  });
}

function gatewayObjects(port: number): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: GATEWAY_CLASS }, spec: { controllerName: 'traefik.io/gateway-controller' } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: GATEWAY_NAME, namespace: GATEWAY_NAMESPACE },
        spec: {
          gatewayClassName: GATEWAY_CLASS,
          // Traefik serves a listener on the entryPoint with the same port.
          listeners: [{ name: 'web', port, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } }],
        },
      },
    ],
  });
}

export interface GatewayContext {
  kubectl: (args: string[], input?: string) => Promise<string>;
  start: (name: string, args: string[], program: string) => Started;
  server: string;
  caCert: string;
  binDir: string;
  ports: [number, number];
}

export async function startGateway(ctx: GatewayContext): Promise<GatewayInfo> {
  const [port, adminPort] = ctx.ports;
  await ctx.kubectl(['apply', '--server-side', '--field-manager=slipway-local', '-f', '-'], rbac());
  // A bound token for Traefik's ServiceAccount (the API server signs it; it lasts as long as a dev cluster does).
  const token = (await ctx.kubectl(['create', 'token', SERVICE_ACCOUNT, '-n', GATEWAY_NAMESPACE, '--duration=720h'])).trim();
  const traefik = ctx.start('traefik', [
    '--global.checknewversion=false',
    '--global.sendanonymoususage=false',
    `--entryPoints.web.address=127.0.0.1:${port}`,
    `--entryPoints.traefik.address=127.0.0.1:${adminPort}`,
    '--ping=true',
    '--ping.entryPoint=traefik',
    '--metrics.prometheus=true',
    '--metrics.prometheus.entryPoint=traefik',
    '--metrics.prometheus.addServicesLabels=true',
    '--metrics.prometheus.addRoutersLabels=true',
    '--providers.kubernetesgateway=true',
    `--providers.kubernetesgateway.endpoint=${ctx.server}`,
    `--providers.kubernetesgateway.token=${token}`,
    `--providers.kubernetesgateway.certauthfilepath=${ctx.caCert}`,
    '--providers.kubernetesgateway.statusaddress.ip=127.0.0.1',
    '--log.level=INFO',
    '--log.nocolor=true',
  ], join(ctx.binDir, 'traefik'));
  await ctx.kubectl(['apply', '--server-side', '--field-manager=slipway-local', '-f', '-'], gatewayObjects(port));
  await eventually('the Gateway Programmed by Traefik', async () => {
    const out = await ctx.kubectl(['get', 'gateway', GATEWAY_NAME, '-n', GATEWAY_NAMESPACE, '-o', 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}']);
    return out.trim() === 'True';
  }, { abort: traefik.exited, timeoutMs: 60_000, intervalMs: 250 });
  return { url: `http://127.0.0.1:${port}`, port, metricsUrl: `http://127.0.0.1:${adminPort}/metrics`, namespace: GATEWAY_NAMESPACE, name: GATEWAY_NAME };
}

/** An HTTPRoute on the local Gateway: one rule (optionally matching a path prefix) over the given backends. */
export function localHttpRoute(name: string, backendRefs: { name: string; port: number; weight?: number }[], pathPrefix?: string): string {
  return JSON.stringify({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name },
    spec: {
      parentRefs: [{ name: GATEWAY_NAME, namespace: GATEWAY_NAMESPACE }],
      rules: [{ ...(pathPrefix ? { matches: [{ path: { type: 'PathPrefix', value: pathPrefix } }] } : {}), backendRefs }],
    },
  });
}
