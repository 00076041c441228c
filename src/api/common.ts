// Schema pieces shared by every Slipway resource: Kubernetes conditions, quantities, object metadata, and the
// helpers that attach CEL rules and Kubernetes schema markers to zod schemas.
import { z } from 'zod';

export const GROUP = 'slipway.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface CelRule {
  rule: string;
  message: string;
  /** A CEL string expression for the message, when it should quote the offending value (message is the fallback). */
  messageExpression?: string;
  /** JSONPath-like field the error is reported on, relative to the object the rule sits on. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Attaches CEL rules (`x-kubernetes-validations`) to a schema; the CRD generator copies them verbatim. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  return schema.meta({ 'x-kubernetes-validations': rules });
}

export const name253 = z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain');
export const name63 = z.string().min(1).max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label');

/** What a Service may be named (RFC 1035 label): lowercase letters, digits and '-', starting with a letter. */
export const DNS1035_LABEL = '^[a-z]([-a-z0-9]*[a-z0-9])?$';

/** A resource quantity such as `500m`, `1Gi` or `2`: checked at admission by CEL's isQuantity. */
export const quantity = z
  .union([z.string().regex(/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/), z.number().int()])
  .meta({
    'x-kubernetes-int-or-string': true,
    maxLength: 64,
    'x-kubernetes-validations': [
      { rule: 'type(self) == int || isQuantity(self)', message: 'must be a quantity such as 500m, 2, 512Mi or 1Gi' },
    ],
  });

// Bounded so that the CEL check of each quantity fits the API server's cost budget.
const resourceList = z.record(z.string().max(253), quantity).meta({ maxProperties: 32 });

export const resourceRequirements = cel(
  z.object({
    requests: resourceList.optional(),
    limits: resourceList.optional(),
  }),
  {
    // The API server refuses such a pod template; say so at the door instead of in the controller.
    rule: '!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)',
    message: 'each resource request must be at most its limit (e.g. requests.cpu 500m with limits.cpu 1)',
  },
);

/** A Go duration as Kubernetes writes them: `30s`, `5m`, `1h30m`. */
export const duration = z
  .string()
  .max(32)
  .regex(/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/, 'must be a duration such as 30s, 5m or 1h30m');

export const conditionStatus = z.enum(['True', 'False', 'Unknown']);

/** metav1.Condition */
export const condition = z.object({
  type: z.string().min(1).max(316),
  status: conditionStatus,
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof condition>;

export const conditions = z
  .array(condition)
  .max(32)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

export const objectMeta = z.object({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  deletionTimestamp: z.string().optional(),
  creationTimestamp: z.string().optional(),
});

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** Everything the CRD generator needs to know about one kind. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
  spec: z.ZodType;
  status: z.ZodType;
  /** The scale subresource, for kinds an HPA may scale. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string };
  /** CEL rules on the whole object (e.g. on metadata.name). */
  rootRules?: CelRule[];
  printerColumns: PrinterColumn[];
  description: string;
}

/** The whole object of a Slipway kind: what the informer cache holds, parsed. */
export function resourceSchema<K extends string, S extends z.ZodType, T extends z.ZodType>(kind: K, spec: S, status: T) {
  return z.object({ apiVersion: z.string(), kind: z.literal(kind), metadata: objectMeta, spec, status: status.optional() });
}

export const readyColumn: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
export const ageColumn: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
