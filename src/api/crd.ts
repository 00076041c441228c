// Turns the zod schemas into CustomResourceDefinitions: zod's OpenAPI 3.0 output, rewritten into the structural
// subset Kubernetes accepts (no anyOf for int-or-string, no additionalProperties beside properties, and the
// x-kubernetes-* markers attached with .meta()).
import { z } from 'zod';
import { GROUP, VERSION, type KindDefinition } from './common.ts';
import { experimentKind } from './experiment.ts';
import { modelDeploymentKind } from './modeldeployment.ts';
import { projectEnvironmentKind } from './projectenvironment.ts';

export const KINDS: KindDefinition[] = [modelDeploymentKind, experimentKind, projectEnvironmentKind];

type Schema = Record<string, unknown>;

const SAFE_INT = Number.MAX_SAFE_INTEGER;

function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== 'object') return node;
  const s = { ...(node as Schema) };
  if (s['x-kubernetes-int-or-string'] === true) {
    // zod writes the union as anyOf; Kubernetes wants the marker alone (checks on the value go in CEL).
    return {
      'x-kubernetes-int-or-string': true,
      ...(s.description ? { description: s.description } : {}),
      ...(s.maxLength ? { maxLength: s.maxLength } : {}),
      ...(s['x-kubernetes-validations'] ? { 'x-kubernetes-validations': s['x-kubernetes-validations'] } : {}),
    };
  }
  delete s.$schema;
  if (s.additionalProperties === false) delete s.additionalProperties;
  if (s.minimum === -SAFE_INT) delete s.minimum;
  if (s.maximum === SAFE_INT) delete s.maximum;
  const anyValue = (v: unknown): boolean => v === true || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);
  if (s.type === 'object' && s.properties && Object.keys(s.properties).length === 0 && (!s.additionalProperties || anyValue(s.additionalProperties))) {
    // A loose object (z.looseObject({})), e.g. a Job spec passed through as written: kept whole.
    delete s.additionalProperties;
    // An empty marker object such as `analysis: {}` keeps whatever a later version adds.
    s['x-kubernetes-preserve-unknown-fields'] = true;
    delete s.properties;
  }
  for (const [key, value] of Object.entries(s)) {
    if (['default', 'enum', 'properties', 'x-kubernetes-validations'].includes(key)) continue;
    s[key] = structural(value);
  }
  if (s.properties) {
    s.properties = Object.fromEntries(Object.entries(s.properties as Schema).map(([k, v]) => [k, structural(v)]));
  }
  return s;
}

export function openApiSchema(schema: z.ZodType): Schema {
  return structural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' })) as Schema;
}

export function customResourceDefinition(def: KindDefinition): Schema {
  const spec = openApiSchema(def.spec);
  // A new object reads back with observedGeneration 0 until the controller has seen it: kstatus (Helm 4's
  // --wait, Flux health checks) would otherwise take an object with no status for Current, i.e. done.
  const status = { ...openApiSchema(def.status), default: { observedGeneration: 0 } };
  const root: Schema = {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec,
      status,
    },
    ...(def.rootRules ? { 'x-kubernetes-validations': def.rootRules } : {}),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'slipway' } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: def.categories,
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {}, ...(def.scale ? { scale: def.scale } : {}) },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}
