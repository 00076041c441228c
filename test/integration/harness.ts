// What an integration test needs from the local control plane: kubectl against it, and a fresh namespace that
// is deleted when the test ends.
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { kubectlRunner } from '../../local/cluster.ts';
import { eventually } from '../../local/eventually.ts';

export interface TestCluster {
  kubeconfig: string;
  binDir: string;
  kubectl: (args: string[], input?: string) => Promise<string>;
}

export function testCluster(): TestCluster {
  const kubeconfig = process.env.SLIPWAY_TEST_KUBECONFIG;
  const binDir = process.env.SLIPWAY_TEST_BIN_DIR;
  if (!kubeconfig || !binDir) {
    throw new Error('no local control plane: run integration tests through npm test (its global setup starts one)');
  }
  return { kubeconfig, binDir, kubectl: kubectlRunner(binDir, kubeconfig) };
}

/** Creates a namespace for one test, ready for pods (its default ServiceAccount exists), deleted afterwards. */
export async function testNamespace(t: TestContext, cluster = testCluster()): Promise<string> {
  const slug = t.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  const name = `t-${slug}-${randomBytes(3).toString('hex')}`.replace(/-+/g, '-');
  await cluster.kubectl(['create', 'namespace', name]);
  await eventually(`ServiceAccount default in ${name}`, () => cluster.kubectl(['get', 'serviceaccount', 'default', '-n', name, '-o', 'name']));
  t.after(async () => {
    await cluster.kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
  });
  return name;
}

export async function getJson<T = Record<string, unknown>>(cluster: TestCluster, args: string[]): Promise<T> {
  return JSON.parse(await cluster.kubectl([...args, '-o', 'json'])) as T;
}

/**
 * Waits until no HTTPRoute outside `namespace` is left (a namespace an earlier test deleted goes away in the
 * background, and its route on the same Gateway and path would take part of this test's traffic).
 */
export async function onlyRoutesOf(cluster: TestCluster, namespace: string): Promise<void> {
  await eventually('HTTPRoutes of earlier tests gone', async () => {
    const list = await getJson<{ items: { metadata: { namespace: string } }[] }>(cluster, ['get', 'httproutes', '-A']);
    return list.items.every((r) => r.metadata.namespace === namespace);
  }, { timeoutMs: 180_000, intervalMs: 500 });
}

/**
 * A validating webhook nobody serves (a closed loopback port) with failurePolicy Fail, for creates (and updates)
 * of one resource in `namespace`: the API server answers 500 to them. Removed when the test ends; returns once
 * the API server applies it (a dry run of `probe`, the kubectl create arguments of one such object, fails).
 */
export async function failingWebhook(t: TestContext, cluster: TestCluster, namespace: string, rule: { apiGroup: string; resource: string; operations: string[] }, probe: string[]): Promise<string> {
  const name = `unreachable-${rule.resource}-${namespace}`;
  t.after(() => cluster.kubectl(['delete', 'validatingwebhookconfiguration', name, '--ignore-not-found']));
  await cluster.kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name },
    webhooks: [{ name: 'unreachable.slipway.dev', clientConfig: { url: 'https://127.0.0.1:9/validate' }, failurePolicy: 'Fail', sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 1,
      rules: [{ apiGroups: [rule.apiGroup], apiVersions: ['v1'], operations: rule.operations, resources: [rule.resource] }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } }],
  }));
  await eventually('the webhook to fail calls', async () => {
    try {
      await cluster.kubectl([...probe, '-n', namespace, '--dry-run=server']);
      return false;
    } catch (err) {
      return /failed calling webhook/.test(String(err));
    }
  });
  return name;
}
