// The generated CRD files, path → YAML text, shared by the generator script, the drift test and the chart.
import yaml from 'js-yaml';
import { customResourceDefinition, KINDS } from './crd.ts';
import { GROUP } from './common.ts';

const HEADER = '# Generated from src/api by `npm run gen:crds`. Do not edit.\n';

export function crdFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const def of KINDS) {
    files.set(`crds/${GROUP}_${def.plural}.yaml`, HEADER + yaml.dump(customResourceDefinition(def), { lineWidth: -1, noRefs: true, sortKeys: false }));
  }
  return files;
}
