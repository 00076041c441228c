// The generated CRD files, path → YAML text: crds/ (with a kustomization, for manifests/) and the Helm
// chart's crds/. Shared by the generator script and the drift test.
import yaml from 'js-yaml';
import { customResourceDefinition, KINDS } from './crd.ts';
import { GROUP } from './common.ts';

const HEADER = '# Generated from src/api by `npm run gen:crds`. Do not edit.\n';

export function crdFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const names: string[] = [];
  for (const def of KINDS) {
    const name = `${GROUP}_${def.plural}.yaml`;
    const text = HEADER + yaml.dump(customResourceDefinition(def), { lineWidth: -1, noRefs: true, sortKeys: false });
    names.push(name);
    files.set(`crds/${name}`, text);
    files.set(`charts/slipway/crds/${name}`, text);
  }
  files.set('crds/kustomization.yaml', `${HEADER}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n${names.map((n) => `  - ${n}\n`).join('')}`);
  return files;
}
