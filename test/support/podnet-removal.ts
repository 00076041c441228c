// Run by podnet.test.ts inside network and mount namespaces of its own (a private /run/netns, a dummy default
// route standing in for the host's), so that removing "the" pod network removes this sandbox's, never the one the
// local data plane is using. Prints what it observed as JSON.
import { addPod, BRIDGE, ensureBridge, podNamespaces, removePodNetwork, routeDevice } from '../../local/podnet.ts';

const pod = await (async () => {
  await ensureBridge();
  return addPod(`test-remove-${process.pid}`, '10.244.4.4');
})();
const before = { namespaces: await podNamespaces(), route: await routeDevice('10.244.4.4') };
await removePodNetwork();
const after = { namespaces: await podNamespaces(), route: await routeDevice('10.244.4.4') };
const refused = await addPod('after', '10.244.4.5').then(() => '', (err: unknown) => (err instanceof Error ? err.message : String(err)));
console.log(JSON.stringify({ bridge: BRIDGE, pod: pod.namespace, before, after, refused }));
