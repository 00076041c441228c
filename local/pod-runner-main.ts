// `node local/pod-runner-main.ts --kubeconfig K --dir D`: the local cluster's pod runner as a
// process of its own (started by startCluster with `serve`). SIGTERM stops every pod's processes and removes
// their network namespaces, leaving the pods' objects as they are.
import { parseArgs } from 'node:util';
import { KubeClient } from '../src/kube/client.ts';
import { PodRunner } from './pod-runner.ts';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, dir: { type: 'string' } } });
if (!values.kubeconfig || !values.dir) {
  process.stderr.write('usage: pod-runner-main.ts --kubeconfig FILE --dir DIR\n');
  process.exit(2);
}
const log = (line: string): void => {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
};
const client = await KubeClient.load({ kubeconfig: values.kubeconfig, userAgent: 'slipway-pod-runner' });
const runner = new PodRunner({ client, dir: values.dir, programs: { node: process.execPath }, log });
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping every pod`);
    void runner.stop(2000).finally(() => process.exit(0));
  });
}
await runner.start();
log('pod runner ready');
